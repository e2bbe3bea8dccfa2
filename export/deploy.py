"""`export_model`: export a model with any registered backend by name -- what `ternkit export FORMAT` and the
pipeline call. Each backend's own export function (`export_onnx`, `export_c`, `export_lava`) is the typed
alternative for Python callers who know the backend."""

from __future__ import annotations

import os
from typing import Any

from ternkit.core import OptionError, TernaryModel, load_model

from .backend import Written, get, given_options

__all__ = ["export_model"]


def export_model(backend: str, model: TernaryModel | str | os.PathLike, out: str | os.PathLike | None,
                 **options: Any) -> Written:
    """Write `model` (a TernaryModel or a .tern path) for `backend` to `out`; `options` are the backend's export
    options (`Backend.export_options`, by dest), others refused in one line. Calibration data (`calibrate=`)
    may be a dataset spec, an array of raw samples or a Dataset."""
    b = get(backend)
    if b.export is None:
        raise OptionError(f"backend {backend} has no export; use `ternkit simulate --backend {backend}`")
    given = given_options(b, "export", options)
    if b.out_required and out is None:
        raise OptionError(f"give -o OUT: where to write the {b.label} export")
    where = "the model"
    if not isinstance(model, TernaryModel):
        where = str(model)
        model = load_model(model)
    b.check_require("export")
    return b.export(model, None if out is None else str(out), where=where, **given)
