"""Plug-ins of the one training loop (penalties, teachers, faster matmuls, dropout, data parallelism).

A technique attaches to the network and the loop's hooks before training and may transform the network
after it. Each technique module registers itself with `@register(KEY, order=...)` on its builder (the trainer
package imports every technique module, as `core/ops/__init__` imports the operations); `techniques_for(config)`
builds the ones a config asks for, in registration order. A technique's settings live in `config.extra` under
its key, so the checkpoint identity covers them; a registration may also fill in measured defaults for them
(`trainer.defaults` asks each). This module imports no technique: they import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .loop import Hooks
from .network import Network

__all__ = ["Technique", "techniques_for", "reseed", "register", "registered", "Registration"]

Builder = Callable[[TrainConfig], list["Technique"]]
# (config with the schedule resolved, training samples) -> (settings with defaults, what to record, why)
DefaultsHook = Callable[[TrainConfig, int], tuple[Any, Any, str]]


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


@dataclass(frozen=True)
class Registration:
    """One technique (or stage) known to the trainer: its `config.extra` key, where it runs among the others,
    what it builds for a config, and its measured defaults (None: it has none)."""

    key: str
    order: int
    build: Builder
    defaults: DefaultsHook | None = None


_REGISTRY: dict[str, Registration] = {}


def register(key: str, *, order: int, defaults: DefaultsHook | None = None) -> Callable[[Builder], Builder]:
    """Decorator on a technique module's `from_config(config) -> [Technique, ...]`: registers it under `key`.

    `order` fixes the attach order (e.g. dropout after approx: it wraps approx's op; penalty before prune:
    pruning may rank by HALO's lambdas). Registering a key twice replaces the first (a module reloaded)."""
    def decorate(build: Builder) -> Builder:
        _REGISTRY[key] = Registration(key, order, build, defaults)
        return build
    return decorate


def registered() -> list[Registration]:
    """Every registration, in attach order."""
    return sorted(_REGISTRY.values(), key=lambda r: (r.order, r.key))


def techniques_for(config: TrainConfig) -> list[Technique]:
    """The techniques `config.extra` asks for (and data parallelism when launched as several processes)."""
    return [t for r in registered() for t in r.build(config)]
