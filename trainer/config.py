"""Training settings: one dataclass the CLI fills and the checkpoint records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ternkit.core.dataset import TASKS
from ternkit.core.errors import OptionError
from ternkit.core.text import cut

from .native import KERNELS

__all__ = ["TrainConfig", "METHODS", "MODES", "SCHEDULES", "DEVICES"]

METHODS = ("conntra", "ste", "float")
MODES = ("gradient", "exact")
SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    dataset: str = "mnist-sample"
    model: str = "mlp:256"
    method: str = "conntra"
    mode: str = "gradient"  # CoNNTrA only
    # None = not given: `trainer.defaults.resolve_defaults` picks them from the training split's size
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None  # Adam: all weights (float, ste) or scales and biases (conntra)
    lr_schedule: str = "constant"  # or cosine: from lr to 0 over the run
    seed: int = 0
    val_fraction: float = 0.2
    test: str | None = None
    levels: int = 1  # weights in {-levels..levels}; 1 = ternary
    scale: str = "channel"  # channel | layer
    frac_start: float = 1e-2
    frac_end: float = 1e-4
    zero_bonus: float = 0.0
    exact_block: int = 2
    exact_coords: int = 32
    device: str = "auto"  # auto | cpu | cuda; not part of the identity: the artifact is the same on either
    kernel: str = "auto"  # CoNNTrA's CPU step: auto | native | torch (trainer/native.py); not part of the identity
    task: str | None = None  # classify | regress | autoencode; None: inferred from the labels
    extra: dict[str, Any] = field(default_factory=dict)  # settings of plug-in techniques, recorded as given

    def validate(self) -> TrainConfig:
        checks = [
            (self.method in METHODS, f"--method must be one of {', '.join(METHODS)}, got {self.method!r}"),
            (self.mode in MODES, f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}"),
            (self.epochs is None or 1 <= self.epochs <= 100_000, f"--epochs must be in 1..100000, got {self.epochs}"),
            (self.batch_size is None or 1 <= self.batch_size <= 1_000_000,
             f"--batch-size must be positive, got {self.batch_size}"),
            (self.lr is None or 0 < self.lr < 10, f"--lr must be in (0, 10), got {self.lr}"),
            (self.lr_schedule in SCHEDULES,
             f"--lr-schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}"),
            (0 <= self.val_fraction < 1, f"--val-fraction must be in [0, 1), got {self.val_fraction}"),
            (1 <= self.levels <= 7, f"--levels must be in 1..7, got {self.levels}"),
            (self.scale in ("channel", "layer"), f"--scale must be channel or layer, got {self.scale!r}"),
            (0 < self.frac_end <= self.frac_start <= 1, "need 0 < --frac-end <= --frac-start <= 1"),
            (self.zero_bonus >= 0, f"--zero-bonus must be >= 0, got {self.zero_bonus}"),
            (1 <= self.exact_block <= 6, f"--exact-block must be in 1..6, got {self.exact_block}"),
            (self.exact_coords >= 1, f"--exact-coords must be >= 1, got {self.exact_coords}"),
            (isinstance(self.seed, int) and 0 <= self.seed < 2**32,  # the range `SPEC@val:SEED` split specs take
             f"--seed must be in 0..{2**32 - 1}, got {cut(self.seed, 40)}"),
            (self.device in DEVICES, f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}"),
            (self.kernel in KERNELS, f"--conntra-kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}"),
            (self.task in (None, *TASKS), f"--task must be one of {', '.join(TASKS)}, got {self.task!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise OptionError(message)
        if self.method != "conntra" and self.levels != 1:
            raise OptionError("--levels applies to --method conntra only")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """Settings a resumed run must share with the checkpoint (epochs may grow)."""
        d = self.to_dict()
        d.pop("epochs")
        d.pop("device")
        d.pop("kernel")  # the same rule either way (bit-exact resume needs the same form: docs/algorithms.md)
        d["extra"].pop("distributed", None)  # how the processes meet (timeout, rendezvous), not what they train
        return d
