"""`StepContext`: what a technique decides for one training step and the update rule reads.

Techniques used to write such facts onto the layers (`layer.active = ...`); they now put them here, keyed by
the parameter they concern, and the loop hands the context to the rule with each step (`Hooks.context`). In
your own loop: `opt.step(context=ctx)`. Nothing is written onto your modules or parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["StepContext", "Submatrix"]

# (rows, columns) of a weight that take part in a step; None = all of that dimension
Submatrix = tuple[torch.Tensor | None, torch.Tensor | None]


@dataclass
class StepContext:
    """Per-step state. `active[weight] = (rows, cols)`: only that submatrix of the weight saw data this step
    (batchwise dropout), so a rule that honours it (CoNNTrA) updates only that submatrix and its averages."""

    active: dict[torch.Tensor, Submatrix] = field(default_factory=dict)

    def restrict(self, weight: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None) -> None:
        """Update only weight[rows][:, cols] this step (both None: the whole weight)."""
        if rows is None and cols is None:
            self.active.pop(weight, None)
        else:
            self.active[weight] = (rows, cols)

    def clear(self) -> None:
        self.active.clear()
