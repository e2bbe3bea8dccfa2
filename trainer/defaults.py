"""Defaults taken from measurements: the one place where a config's "not given" becomes a value.

`TrainConfig` leaves `epochs`, `batch_size` and `lr` at None unless the user sets them; `resolve_defaults`
fills them from the size of the training split, and a technique's settings (HALO's strength, the wide teacher's
epochs) from the defaults its registration declares (`trainer.technique.register(..., defaults=)`). An
explicit value always wins. The resolved config is
what trains, what the checkpoint identity compares and what the artifact's provenance records; the returned
record says which values were defaults and why (it becomes `metrics["schedule"]`).

Why the schedule adapts: at a fixed batch 64 and rate 1e-3, iris (120 training samples) gets 2 steps per
epoch, and 10 epochs left it at 53-63 % validation accuracy; batch 8 and rate 1e-2 reach 95.6 % in the same
10 epochs (3 seeds, every method). Digits (1,438): batch 16, rate 3e-3 -> 96-98 % in 10 epochs vs 90-96 %.
MNIST sample (4,000): batch 64, rate 1e-3 is what every MNIST figure in docs/benchmarks.md was measured with.
Tier boundaries lie between those sizes (roughly their geometric means). Without `--epochs`, a run gets at
least MIN_STEPS optimisation steps (about what 10 epochs of the MNIST sample take) and 10 epochs, at most 200.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .config import TrainConfig
from .technique import registered

__all__ = ["resolve_defaults", "schedule_for", "TIERS", "MIN_STEPS", "MIN_EPOCHS", "MAX_EPOCHS"]

# (training samples below, batch size, Adam rate, where it was measured)
TIERS: tuple[tuple[float, int, float, str], ...] = (
    (400, 8, 1e-2, "fewer than 400 (measured on iris, 120)"),
    (2400, 16, 3e-3, "fewer than 2,400 (measured on digits, 1,438)"),
    (float("inf"), 64, 1e-3, "2,400 or more (measured on the MNIST sample, 4,000)"),
)
MIN_STEPS = 600  # ~ 10 epochs of the MNIST sample at batch 64 (630 steps)
MIN_EPOCHS = 10
MAX_EPOCHS = 200  # a handful of samples would otherwise train for hundreds of one-step epochs


def schedule_for(n_samples: int, batch_size: int | None = None, lr: float | None = None,
                 epochs: int | None = None) -> dict[str, Any]:
    """Batch size, rate and epochs for `n_samples` training samples; given values are kept as they are.

    Batch and rate depend on the data size only (never on epochs), so a run resumed with more `--epochs`
    resolves to the same batch and rate and its checkpoint identity still matches."""
    _, tier_batch, tier_lr, where = next(t for t in TIERS if n_samples < t[0])
    given = {"batch_size": batch_size is not None, "lr": lr is not None, "epochs": epochs is not None}
    batch = tier_batch if batch_size is None else batch_size
    rate = tier_lr if lr is None else lr
    steps_per_epoch = max(1, -(-n_samples // batch))
    if epochs is None:
        epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, -(-MIN_STEPS // steps_per_epoch)))
    defaults = [k for k, v in given.items() if not v]
    why = []
    chosen = " and ".join(name for name, key in (("batch", "batch_size"), ("rate", "lr")) if not given[key])
    if chosen:
        why.append(f"{chosen} for {n_samples:,} training samples, {where}")
    if not given["epochs"]:
        why.append(f"epochs: at least {MIN_STEPS} steps and {MIN_EPOCHS} epochs")
    return {"batch_size": batch, "lr": rate, "epochs": epochs, "steps": epochs * steps_per_epoch,
            "train_samples": n_samples, "defaults": defaults, "why": "; ".join(why) or "all given"}


def resolve_defaults(config: TrainConfig, n_samples: int) -> tuple[TrainConfig, dict[str, Any]]:
    """The config with every "not given" filled in, and the record of what was filled in and why.

    Idempotent: resolving a resolved config changes nothing (and records no defaults)."""
    sched = schedule_for(n_samples, config.batch_size, config.lr, config.epochs)
    resolved = replace(config, batch_size=sched["batch_size"], lr=sched["lr"], epochs=sched["epochs"],
                       extra=dict(config.extra))
    for reg in registered():  # each technique's (and widening's) measured defaults, where it has any
        if reg.defaults is None or reg.key not in resolved.extra:
            continue
        settings, shown, why = reg.defaults(resolved, n_samples)
        if settings != resolved.extra[reg.key]:
            sched["defaults"].append(reg.key)
            sched[reg.key] = shown
            sched["why"] = _join(sched["why"], why)
        resolved.extra[reg.key] = settings
    return resolved.validate(), sched


def _join(why: str, more: str) -> str:
    return more if why == "all given" else f"{why}; {more}"
