"""`train_run(config)`: one plain run: data -> network -> rule -> the one loop -> the artifact and its metrics.

Stages above it (go wide then narrow, the comparison runs) live in `api.py` and `widen.py` and call this; it
never calls them, so the trainer's imports run one way."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ternkit.core.atomic import write_text
from ternkit.core.data import Dataset, Split, load_split, normalisation
from ternkit.core.errors import OptionError
from ternkit.core.io import save_model
from ternkit.core.metrics import operation_totals, parameter_memory
from ternkit.core.model import InputSpec, TernaryModel
from ternkit.core.outputs import with_output_affine
from ternkit.core.version import ternkit_version

from .batchnorm import recalibrate_batchnorm
from .config import TrainConfig
from .conntra import ConntraRule, ExactConntraRule
from .defaults import resolve_defaults
from .loop import Hooks, accuracy, fit
from .network import Network, build_network, to_artifact
from .rules import AdamRule, UpdateRule
from .technique import Technique, techniques_for
from .usermodel import build_user_network, is_user_model

__all__ = ["TrainResult", "train_run", "make_rule", "memory_summary", "metrics_path", "PARAMETRISATION"]

PARAMETRISATION = {"conntra": "discrete", "ste": "ste", "float": "float"}


@dataclass
class TrainResult:
    model: TernaryModel
    metrics: dict[str, Any]
    net: Network


def metrics_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".metrics.json")


def make_rule(config: TrainConfig, net: Network, total_steps: int, extra_params=()) -> UpdateRule:
    common = dict(lr=config.lr, extra_params=extra_params, lr_schedule=config.lr_schedule)
    if config.method != "conntra":
        return AdamRule(net, total_steps, **common)
    if config.mode == "exact":
        return ExactConntraRule(net, total_steps, block=config.exact_block, coords_per_step=config.exact_coords,
                                seed=config.seed, **common)
    return ConntraRule(net, total_steps, frac_start=config.frac_start, frac_end=config.frac_end,
                       zero_bonus=config.zero_bonus, kernel=config.kernel, **common)


class _Targets:
    """Regression targets standardised with the training split's mean and std (classes pass through)."""

    def __init__(self, y: np.ndarray | None):
        self.mean = self.std = None
        if y is not None:
            self.mean = y.mean(0).astype(np.float64)
            self.std = np.where(y.std(0) < 1e-6, 1.0, y.std(0)).astype(np.float64)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        return y if self.mean is None else ((y - self.mean) / self.std).astype(np.float32)


def target_scaling(train: Dataset) -> _Targets:
    return _Targets(None if train.task == "classify" else train.y)


def _tensors(x: np.ndarray, y: np.ndarray, spec: InputSpec,
             device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(spec.normalise(x)).to(device), torch.from_numpy(y).to(device)


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when torch sees a device, else the CPU. The artifact is the same either way."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device cuda: torch sees no CUDA device (use --device cpu or auto)")
    return torch.device(name)


def memory_summary(model: TernaryModel) -> dict[str, Any]:
    """Bytes of the learned parameters as deployed, and the same parameters in float32/float64: core's
    definition (`ternkit.core.metrics.parameter_memory`), the same figures `ternkit report` shows."""
    return parameter_memory(model)


def _check_traceable(net: torch.nn.Module, spec: InputSpec, labels: list[str], task: str) -> None:
    """Trace the untrained network once, as the end of training will: an operation the tracer cannot map, or
    data-dependent control flow, is then one line before any training (and before a checkpoint is written)."""
    from .trace import to_artifact as trace_artifact

    rng = torch.random.get_rng_state()  # the trace must not change the run's random numbers
    try:
        trace_artifact(net, input_spec=spec, labels=list(labels), check=False, task=task)
    finally:
        torch.random.set_rng_state(rng)


def train_run(config: TrainConfig, *, out: str | Path | None = None, resume: bool = False, progress: bool = True,
              split: Split | None = None, hooks: Hooks | None = None, net: Network | None = None,
              techniques: list[Technique] | None = None) -> TrainResult:
    """One run per `config` (its `net` when given); with `out`, write the artifact, its metrics JSON and a
    checkpoint each epoch. Techniques attach here; widening is not one (see `ternkit.trainer.api.train`)."""
    config.validate()
    torch.manual_seed(config.seed)
    split = split or load_split(config.dataset, config.seed, config.val_fraction, config.test, task=config.task)
    if not isinstance(config.dataset, str) or not isinstance(config.test, str | None):
        # the API's arrays or torch dataset: provenance and checkpoints name the data, they do not hold it
        config = dataclasses.replace(
            config, dataset=config.dataset if isinstance(config.dataset, str) else f"<{split.train.name}>",
            test=config.test if isinstance(config.test, str | None) else f"<{split.test.name}>")
    config, schedule = resolve_defaults(config, len(split.train))  # None = not given: measured defaults
    mean, std = normalisation(split.train)
    spec = InputSpec(split.train.shape, mean, std)
    labels = split.train.labels
    task, targets = split.train.task, target_scaling(split.train)
    if net is None and is_user_model(config.model):
        net = build_user_network(config.model, spec.shape, len(labels), config.method, seed=config.seed,
                                 levels=config.levels, scale_mode=config.scale)
        _check_traceable(net, spec, labels, task)  # an untraceable model is refused before step 1, no files
    net = net or build_network(config.model, spec.shape, len(labels), PARAMETRISATION[config.method],
                               seed=config.seed, levels=config.levels, scale_mode=config.scale)
    device = resolve_device(config.device)
    net.to(device)
    train_t = _tensors(split.train.x, targets(split.train.y), spec, device)
    val_t = _tensors(split.val.x, targets(split.val.y), spec, device)
    steps = config.epochs * max(1, -(-len(train_t[0]) // config.batch_size))
    hooks = hooks or Hooks()
    techniques = techniques_for(config) if techniques is None else techniques
    extra_params = [p for t in techniques for p in t.attach(net, hooks, config)]
    rule = make_rule(config, net, steps, extra_params)
    ckpt = Path(str(out) + ".ckpt") if out else None
    t0 = time.perf_counter()
    history = fit(net, rule, train_t, val_t, epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                  hooks=hooks, checkpoint=ckpt, resume=resume, identity=config.identity(), progress=progress)
    metrics: dict[str, Any] = {
        "method": config.method, "train_seconds": history["train_seconds"],
        "train_cpu_seconds": history["train_cpu_seconds"],
        "wall_seconds": time.perf_counter() - t0, "epochs": history["epochs"],
        "train_error": history["epochs"][-1]["train_error"], "val_error": history["epochs"][-1]["val_error"],
        "schedule": schedule,  # the batch size, rate and epochs used, which of them were defaults, and why
        "task": task, "task_note": split.train.note,  # regression errors: MSE of standardised targets (~1 - R^2)
    }
    for t in techniques:
        metrics.update(t.finish(net, config))
    metrics["batchnorm_recalibrated"] = recalibrate_batchnorm(net, train_t[0])
    if techniques or metrics["batchnorm_recalibrated"]:  # the network changed (pruning, statistics): report it
        metrics["train_error"] = 1 - accuracy(net, *train_t)
        metrics["val_error"] = 1 - accuracy(net, *val_t) if len(val_t[0]) else None
    if split.test is not None:
        test_t = _tensors(split.test.x, targets(split.test.y), spec, device)
        metrics["test_error"] = 1 - accuracy(net, *test_t)
        metrics["test_dataset"] = config.test
    provenance = {"dataset": config.dataset, "seed": config.seed, "method": config.method,
                  "config": config.to_dict(), "ternkit_version": ternkit_version(), "train_samples": len(split.train),
                  "val_samples": len(split.val), "task": task}
    model = to_artifact(net, spec, labels, config.levels, provenance, task=task)
    if task != "classify":  # trained on standardised targets: the artifact answers in the data's units
        model = with_output_affine(model, targets.std, targets.mean)
    metrics["memory"] = memory_summary(model)
    metrics["bits_per_weight"] = metrics["memory"]["bits_per_weight"]
    metrics["operations"] = operation_totals(model)  # connections (MACs) per inference, as the report counts
    model.metrics = {k: v for k, v in metrics.items() if k != "epochs"}
    if out is not None and hooks.is_main:
        save_model(model, out)
        write_text(metrics_path(out), json.dumps(metrics, indent=2))
    return TrainResult(model, metrics, net)
