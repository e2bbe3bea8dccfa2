"""Plug-ins of the one training loop (penalties, teachers, faster matmuls, dropout, data parallelism).

A technique attaches to the network and the loop's hooks before training and may transform the network
after it. `techniques_for(config)` builds the ones a config asks for, in a fixed order; each technique's
settings live in `config.extra` under its own key, so the checkpoint identity covers them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .loop import Hooks
from .network import Network

__all__ = ["Technique", "techniques_for", "reseed"]


def reseed(gen: torch.Generator, seed: int, salt: int, step: int) -> torch.Generator:
    """Seed `gen` from (run seed, technique, step): a technique's random draws are a pure function of the step,
    like the batch order, so a run resumed from a checkpoint (or a replayed step) draws the same samples with
    no RNG state to save."""
    return gen.manual_seed(((seed * 1_000_003 + salt) * 1_000_000_007 + step) % (1 << 63))


class Technique:
    name = "technique"

    def attach(self, net: Network, hooks: Hooks, config: TrainConfig) -> list[nn.Parameter]:
        """Install hooks / layer ops; return extra parameters the rule's Adam should fit."""
        return []

    def finish(self, net: Network, config: TrainConfig) -> dict[str, Any]:
        """Transform the trained network (e.g. prune) before it becomes the artifact; return metrics."""
        return {}


def techniques_for(config: TrainConfig) -> list[Technique]:
    """The techniques `config.extra` asks for. Each technique module registers itself here (one line each)."""
    found: list[Technique] = []
    from .distributed import from_env as data_parallel  # one of several torchrun processes
    found += data_parallel()
    from .approx import from_config as approx  # --approx topk|bernoulli|crs: sampled matmuls while training
    found += approx(config)
    from .dropout import from_config as dropout  # --dropout batchwise:P|mask:P (after approx: wraps its op)
    found += dropout(config)
    from .halo import from_config as penalty  # --penalty halo|l1 (before prune: prune may rank by HALO's lambdas)
    found += penalty(config)
    from .prune import from_config as prune  # --prune FRACTION, after training
    found += prune(config)
    return found
