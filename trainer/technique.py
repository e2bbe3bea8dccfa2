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
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from ternkit.core.errors import OptionError

from .config import TrainConfig
from .loop import Hooks
from .network import Network

__all__ = ["Technique", "techniques_for", "reseed", "register", "registered", "Registration", "option", "Options",
           "options_extra", "check_extra"]

Builder = Callable[[TrainConfig], list["Technique"]]
# (config with the schedule resolved, training samples) -> (settings with defaults, what to record, why)
DefaultsHook = Callable[[TrainConfig, int], tuple[Any, Any, str]]


def option(flag: str, **argparse: Any) -> Any:
    """A typed settings field that the CLI offers as `flag` (argparse keywords: help, type, choices, metavar);
    None = not given."""
    return field(default=None, metadata={"flag": flag, "argparse": argparse})


class Options:
    """Base of a technique's typed settings as the CLI gives them: a dataclass of `option(...)` fields.

    `to_extra` turns the given values into the technique's `config.extra` entry (validated: bad input fails
    before any training), or None when the technique is not asked for. `ternkit train` makes its flags from
    these declarations (`registered()`), so a technique's flags, their parsing and their checks sit with it."""

    group: str | None = None  # the --help section its flags appear in (None: the main list)

    def to_extra(self) -> Any:
        raise NotImplementedError

    @classmethod
    def flags(cls) -> list[tuple[str, str, dict[str, Any]]]:
        """(field name, flag, argparse keywords) of every option."""
        return [(f.name, f.metadata["flag"], f.metadata["argparse"]) for f in fields(cls)]  # type: ignore[arg-type]


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
    options: type[Options] | None = None  # its typed CLI settings
    settings: Callable[[TrainConfig], Any] | None = None  # validates `config.extra[key]` (None: not asked for)


_REGISTRY: dict[str, Registration] = {}


def register(key: str, *, order: int, defaults: DefaultsHook | None = None, options: type[Options] | None = None,
             settings: Callable[[TrainConfig], Any] | None = None) -> Callable[[Builder], Builder]:
    """Decorator on a technique module's `from_config(config) -> [Technique, ...]`: registers it under `key`.

    `order` fixes the attach order (e.g. dropout after approx: it wraps approx's op; penalty before prune:
    pruning may rank by HALO's lambdas). Registering a key twice replaces the first (a module reloaded)."""
    def decorate(build: Builder) -> Builder:
        _REGISTRY[key] = Registration(key, order, build, defaults, options, settings)
        return build
    return decorate


def registered() -> list[Registration]:
    """Every registration, in attach order."""
    return sorted(_REGISTRY.values(), key=lambda r: (r.order, r.key))


def techniques_for(config: TrainConfig) -> list[Technique]:
    """The techniques `config.extra` asks for (and data parallelism when launched as several processes)."""
    return [t for r in registered() for t in r.build(config)]


def options_extra(values: dict[str, Any], *, epochs: int | None = None) -> dict[str, Any]:
    """`config.extra` from the CLI's values (flag dest -> value) of every registered technique's options, each
    checked on its own and then together (e.g. pruning by HALO's lambdas needs the HALO penalty)."""
    extra: dict[str, Any] = {}
    for reg in registered():
        if reg.options is None:
            continue
        given = {name: values.get(flag.lstrip("-").replace("-", "_")) for name, flag, _ in reg.options.flags()}
        entry = reg.options(**given).to_extra()
        if entry is not None:
            extra[reg.key] = entry
    probe = TrainConfig(epochs=max(1, epochs or 1), extra=extra)
    for reg in registered():
        if reg.settings is not None:
            reg.settings(probe)
    return extra


def check_extra(config: TrainConfig) -> None:
    """Every registered technique's settings in `config.extra` validated (bad input before any training), and a
    key no technique registered refused by name (for callers that hold only technique settings)."""
    known = {r.key for r in registered()}
    unknown = sorted(set(config.extra) - known)
    if unknown:
        raise OptionError(f"unknown technique {unknown[0]!r}; known: {', '.join(sorted(known))}")
    for reg in registered():
        if reg.settings is not None:
            reg.settings(config)
