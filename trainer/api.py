"""The trainer's public entry points: `train(config)` and `train_methods(config, compare)`.

`train` runs everything a config asks for, as `ternkit train` does: the plain run (`run.train_run`, where the
registered techniques attach), or go wide then narrow when `config.extra` holds widening settings (a stage
above the run: teacher -> imitation -> merge -> fine-tune). `train_methods` adds the comparison runs of
`--compare`. The CLI parses, calls `train_methods`, prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from ternkit.core.atomic import OutputError, check_writable
from ternkit.core.data import Split
from ternkit.core.errors import OptionError

from .config import METHODS, TrainConfig
from .distributed import is_main_process
from .loop import Hooks
from .network import Network
from .run import PARAMETRISATION, TrainResult, make_rule, memory_summary, metrics_path, train_run
from .technique import Technique
from .widen import KEY as WIDEN_KEY
from .widen import go_wide_then_narrow

__all__ = ["TrainResult", "train", "train_methods", "compare_path", "make_rule", "memory_summary", "metrics_path",
           "PARAMETRISATION"]

RESUME_WIDEN = "--resume is not supported with --widen/--teacher (the stages restart)"


def train(config: TrainConfig, *, out: str | Path | None = None, resume: bool = False, progress: bool = True,
          split: Split | None = None, hooks: Hooks | None = None, net: Network | None = None,
          techniques: list[Technique] | None = None) -> TrainResult:
    """Train per `config`, every technique and stage it asks for; with `out`, write the artifact, its metrics
    JSON and (plain runs) a checkpoint each epoch.

    `hooks`, `net` and `techniques` reach into one plain run; a widening config refuses them rather than
    silently training something else."""
    if WIDEN_KEY in config.extra:
        if resume:
            raise OptionError(RESUME_WIDEN)
        if hooks is not None or net is not None or techniques is not None:
            raise OptionError("go wide then narrow builds its own networks and techniques: hooks, net and "
                              "techniques apply to a plain run (use ternkit.trainer.run.train_run)")
        return go_wide_then_narrow(config, out=out, progress=progress, split=split)
    return train_run(config, out=out, resume=resume, progress=progress, split=split, hooks=hooks, net=net,
                     techniques=techniques)


def compare_path(out: str | Path, method: str) -> Path:
    """Where a comparison run writes: model.tern -> model.float.tern."""
    out = str(out)
    stem = out[: -len(".tern")] if out.endswith(".tern") else out
    return Path(f"{stem}.{method}.tern")


def train_methods(config: TrainConfig, compare: Iterable[str] = (), *, out: str | Path | None = None,
                  resume: bool = False, progress: bool = True) -> dict[str, TrainResult]:
    """`config`'s run, then the same run with each method in `compare` (once each, `config.method` skipped),
    written next to `out` as OUT.METHOD.tern. Outputs are checked writable before each run trains; a failed
    write says where the training so far is kept."""
    methods = list(dict.fromkeys([config.method, *compare]))
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise OptionError(f"--compare must be one of {', '.join(METHODS)}, got {bad[0]!r}")
    if resume and WIDEN_KEY in config.extra:
        raise OptionError(RESUME_WIDEN)
    results: dict[str, TrainResult] = {}
    for method in methods:
        run_out = None if out is None else (Path(out) if method == config.method else compare_path(out, method))
        results[method] = _checked(replace(config, method=method).validate(), run_out, resume, progress)
    return results


def _checked(config: TrainConfig, out: Path | None, resume: bool, progress: bool) -> TrainResult:
    if out is None:
        return train(config, resume=resume, progress=progress)
    ckpt = Path(str(out) + ".ckpt")
    if is_main_process():  # fail before training, not after it, when the outputs cannot be written
        for path in (out, metrics_path(out), ckpt):
            check_writable(path)
    try:
        return train(config, out=out, resume=resume, progress=progress)
    except OutputError as e:
        kept = f"; training so far is kept in {ckpt}: fix this and rerun with --resume" if ckpt.is_file() else ""
        raise OutputError(f"{e}{kept}") from None
