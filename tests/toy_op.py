"""A toy operation defined outside ternkit's source, as a plug-in would: x / (1 + |x|) (torch's Softsign).
Importing it registers the operation; `install_handlers` adds its handlers to the backends that can run it
(ONNX has a Softsign operator; the C export's lookup-table kernel runs any elementwise function) and its
arithmetic to the report. Nothing in ternkit is edited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ternkit.core.ops import OPS, Unary, register

KIND = "toy_softsign"


@register
@dataclass(eq=False)
class ToySoftsign(Unary):
    kind: ClassVar[str] = KIND
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.Softsign",)
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.nn.functional.softsign",)

    def fn(self, x: np.ndarray) -> np.ndarray:
        return x / (np.float32(1) + np.abs(x))


def install_handlers() -> list[tuple[dict, str]]:
    """One handler per backend that can run it; returns the (table, key) pairs to remove afterwards."""
    from ternkit.export.c.handlers import HANDLERS as C
    from ternkit.export.c.handlers import Lut
    from ternkit.export.onnx.graph import HANDLERS as ONNX
    from ternkit.targets.ops import ARITHMETIC

    ONNX[KIND] = lambda b, n, xs: b.node("Softsign", xs, f"{n.name}_softsign")
    C[KIND] = Lut()
    ARITHMETIC[KIND] = lambda op, c: {"add": c.outputs}
    return [(ONNX, KIND), (C, KIND), (ARITHMETIC, KIND)]


def uninstall(added: list[tuple[dict, str]]) -> None:
    for table, key in added:
        table.pop(key, None)
    OPS.pop(KIND, None)
