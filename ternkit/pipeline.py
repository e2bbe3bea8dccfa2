"""`ternkit pipeline`: train -> export ONNX -> eval ONNX -> export Lava -> simulate -> report, in one run dir.

Every stage's settings come from one TOML file (see examples/pipeline.toml); with none, defaults on
mnist-sample. Stages record their results in `runs/<name>/pipeline.json` as they finish, so a failed stage
stops the run with its message, the finished stages are kept, and `--resume` skips them. Each stage calls the
public API -- `export_onnx`, `evaluate`, `lava_graph_for`, `simulate`, `report_model` -- the functions behind
the matching `ternkit` commands, so the pipeline's figures are the CLI's figures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ternkit.core.atomic import check_writable, write_text
from ternkit.core.errors import OptionError, TernkitError
from ternkit.core.readers import read_json, read_toml

__all__ = ["PipelineConfig", "load_pipeline_config", "check_pipeline", "run_pipeline", "STAGES"]

STAGES = ("train", "export-onnx", "eval", "export-lava", "export", "simulate", "report", "summary")


@dataclass
class PipelineConfig:
    name: str = "demo"
    dataset: str = "mnist-sample"
    test: str = ""  # external test set; empty: the validation split held out by training
    model: str = "mlp:256"
    method: str = "conntra"
    baseline: str = "float"  # also train this method for comparison; empty to skip
    epochs: int = 10
    seed: int = 0
    val_fraction: float = 0.2
    batch_size: int = 64
    techniques: dict[str, Any] = field(default_factory=dict)  # config.extra: {widen = {factor = 4}, penalty = ...}
    task: str = ""  # classify | regress | autoencode; empty: inferred from the labels
    onnx_format: str = "int2"
    exports: list[str] = field(default_factory=list)  # further backends to export with (c, nir, ...): stage export
    backend: str = "lava"
    neuron: str = "sigma-delta"
    timesteps: int = 0  # 0: the simulator's default for the neuron model
    limit: int = 200  # samples simulated
    targets: list[str] = field(default_factory=lambda: ["loihi", "loihi2", "mcu", "cpu-fp32"])
    runs_dir: str = "runs"

    @property
    def eval_spec(self) -> str:
        if self.test:
            return self.test
        return f"{self.dataset}@val:{self.seed}:{self.val_fraction}"

    @property
    def calibration_spec(self) -> str:
        """The training part of the data (what export lava would calibrate on by default)."""
        return f"{self.dataset}@train:{self.seed}:{self.val_fraction}" if self.val_fraction > 0 else self.dataset

    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


# [onnx] format -> the export's weight format (the flags of `ternkit export onnx`: --cast, --int8, ...)
ONNX_FORMATS = {"int2": "int2", "cast": "int2-cast", "int8": "int8", "float": "float", "nbits": "nbits"}

_SECTIONS = {"data": ("dataset", "test"), "train": ("model", "method", "baseline", "epochs", "seed", "val_fraction",
                                                     "batch_size", "task", "techniques"),
             "onnx": ("format",), "export": ("formats",),
             "simulate": ("backend", "neuron", "timesteps", "limit"), "report": ("targets",)}


def load_pipeline_config(path: str | None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read a pipeline TOML; unknown keys and wrong types are errors, so a typo cannot silently do nothing."""
    cfg, raw = PipelineConfig(), {}
    if path:
        raw = read_toml(path, "pipeline TOML", OptionError)  # bounded, regular files only, no deep nesting
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SECTIONS and isinstance(value, dict):
            for k, v in value.items():
                if k not in _SECTIONS[key]:
                    raise OptionError(f"{path}: unknown key [{key}] {k}")
                flat[{("onnx", "format"): "onnx_format", ("export", "formats"): "exports"}.get((key, k), k)] = v
        elif key in ("name", "runs_dir"):
            flat[key] = value
        else:
            raise OptionError(f"{path}: unknown key {key!r}")
    flat.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for k, v in flat.items():
        default = getattr(cfg, k)
        ok = isinstance(v, type(default)) or (isinstance(default, float) and isinstance(v, int))
        if not ok or isinstance(v, bool) != isinstance(default, bool):
            raise OptionError(f"pipeline setting {k} should be {type(default).__name__}, got {v!r}")
        setattr(cfg, k, float(v) if isinstance(default, float) else v)
    if not cfg.name or "/" in cfg.name or cfg.name.startswith("."):
        raise OptionError(f"pipeline name {cfg.name!r} must be a plain directory name")
    if cfg.limit < 1:
        raise OptionError(f"simulate limit must be >= 1, got {cfg.limit}")
    if cfg.onnx_format not in ONNX_FORMATS:
        raise OptionError(f"onnx format {cfg.onnx_format!r} is not one of {', '.join(ONNX_FORMATS)}")
    if not cfg.targets or not all(isinstance(t, str) for t in cfg.targets):
        raise OptionError("report targets must be a non-empty list of names or TOML paths")
    check_pipeline(cfg)
    return cfg


def check_pipeline(cfg: PipelineConfig) -> None:
    """Every setting of every stage checked before stage 1 runs, so a bad value late in the file (epochs = -1,
    timesteps = -3, an unknown target) is one line before anything is trained or written."""
    from ternkit.core.readers import MAX_TIMESTEPS
    from ternkit.core.text import cut
    from ternkit.export.backend import get as get_backend
    from ternkit.targets import load_target
    from ternkit.trainer import TrainConfig
    from ternkit.trainer.technique import check_extra

    for k, v in cfg.__dict__.items():
        for s in v if isinstance(v, list) else [v]:
            if isinstance(s, str) and any(ord(c) < 32 or ord(c) == 127 for c in s):
                raise OptionError(f"pipeline setting {k} holds a control character (NUL, newline, ...): {cut(s)}")
    for method in [cfg.method] + ([cfg.baseline] if cfg.baseline else []):
        try:
            TrainConfig(dataset=cfg.dataset, model=cfg.model, method=method, epochs=cfg.epochs, seed=cfg.seed,
                        val_fraction=cfg.val_fraction, batch_size=cfg.batch_size, test=cfg.test or None,
                        task=cfg.task or None, extra=dict(cfg.techniques)).validate()
            check_extra(TrainConfig(method=method, epochs=cfg.epochs, extra=dict(cfg.techniques)))
        except OptionError as e:  # the trainer's messages name its flags; say which setting it is here
            raise OptionError(f"pipeline [train]: {str(e).replace('--', '')}") from None
    get_backend(cfg.backend)
    if not isinstance(cfg.exports, list) or not all(isinstance(e, str) for e in cfg.exports):
        raise OptionError("pipeline [export] formats must be a list of backend names")
    for name in cfg.exports:
        if get_backend(name).export is None:
            raise OptionError(f"pipeline [export] formats: backend {cut(name)} has no export")
    if cfg.backend == "lava" and cfg.neuron not in ("sigma-delta", "if"):
        raise OptionError(f"pipeline [simulate] neuron must be sigma-delta or if, got {cut(cfg.neuron)}")
    if not 0 <= cfg.timesteps <= MAX_TIMESTEPS:
        raise OptionError(f"pipeline [simulate] timesteps must be in 0..{MAX_TIMESTEPS} (0: the default), "
                          f"got {cfg.timesteps}")
    for t in cfg.targets:
        load_target(t)


def _train(cfg: PipelineConfig, run: Path, state: dict, resume: bool = False) -> dict:
    from ternkit.trainer import TrainConfig, train

    results = {}
    for method in [cfg.method] + ([cfg.baseline] if cfg.baseline and cfg.baseline != cfg.method else []):
        tc = TrainConfig(dataset=cfg.dataset, model=cfg.model, method=method, epochs=cfg.epochs, seed=cfg.seed,
                         val_fraction=cfg.val_fraction, batch_size=cfg.batch_size, test=cfg.test or None,
                         task=cfg.task or None, extra=dict(cfg.techniques))  # every technique, widening too
        out = run / ("model.tern" if method == cfg.method else f"{method}.tern")
        # an interrupted stage left OUT.ckpt: with --resume, training continues from it
        m = train(tc, out=out, progress=True, resume=resume).metrics
        results[method] = {"artifact": out.name, "train_error": m["train_error"], "val_error": m["val_error"],
                           "test_error": m.get("test_error"), "train_seconds": m["train_seconds"],
                           "memory": m["memory"]}
    return results


def _export_onnx(cfg: PipelineConfig, run: Path, state: dict) -> dict:
    from ternkit.core import load_model
    from ternkit.export import export_onnx

    model = load_model(run / "model.tern")
    check_writable(run / "model.onnx")
    written = export_onnx(model, run / "model.onnx", ONNX_FORMATS[cfg.onnx_format])
    return {"artifact": "model.onnx", "bytes": written.size}


def _eval(cfg: PipelineConfig, run: Path, state: dict) -> dict:
    from ternkit.export import evaluate

    results = {}
    for name in ["model.tern", "model.onnx"] + [r["artifact"] for m, r in state["train"]["result"].items()
                                                 if m != cfg.method]:
        r = evaluate(run / name, cfg.eval_spec)
        results[name] = {k: r[k] for k in ("task", "accuracy", "mse", "mae", "r2", "auc", "n") if k in r}
    return {"dataset": cfg.eval_spec, "models": results}


def _export_lava(cfg: PipelineConfig, run: Path, state: dict) -> dict:
    from ternkit.core import load_model
    from ternkit.export import lava_graph_for, save_graph

    model = load_model(run / "model.tern")
    if model.task != "classify":  # Lava reads out class decisions; a regression deploys through ONNX or C
        return {"skipped": f"a {model.task} model: the Lava export takes classifiers"}
    save_graph(lava_graph_for(model, calibrate=cfg.calibration_spec, where=str(run / "model.tern")),
               run / "model.lava.json")
    return {"artifact": "model.lava.json"}


def _export(cfg: PipelineConfig, run: Path, state: dict) -> dict:
    """Every backend named in [export] formats, each with its own defaults (calibrated on the training part)."""
    from ternkit.export import export_model, get

    written = {}
    for name in cfg.exports:
        b = get(name)
        declared = {o.dest for o in b.export_options}
        options = {"calibrate": cfg.calibration_spec} if "calibrate" in declared else {}
        w = export_model(name, run / "model.tern", run / b.default_out, **options)
        written[name] = [str(p.relative_to(run)) for p in w.paths]
    return {"artifacts": written}


def _simulate(cfg: PipelineConfig, run: Path, state: dict) -> dict:
    from ternkit.core import load_model
    from ternkit.export import get, simulate

    backend, note = cfg.backend, None
    if backend == "lava" and load_model(run / "model.tern").task != "classify":
        backend, note = "onnx", "a regression model: simulated with onnx (Lava takes classifiers)"
    # the pipeline's settings that the backend declares as simulate options (and whose value it takes)
    declared = {o.dest: o for o in get(backend).simulate_options}
    wanted = {"neuron": cfg.neuron, "calibrate": cfg.calibration_spec, "timesteps": cfg.timesteps or None}
    options = {k: v for k, v in wanted.items() if k in declared and v is not None and (
        declared[k].choices is None or v in declared[k].choices)}
    act = simulate(run / "model.tern", cfg.eval_spec, backend, limit=cfg.limit, out=run / "activity.json",
                   **options)
    extra = {"note": note} if note else {}
    return {"artifact": "activity.json", **extra,
            **{k: act.get(k) for k in ("backend", "neuron", "timesteps", "samples",
                                                                       "accuracy", "agreement", "samples_per_second",
                                                                       "synaptic_ops_per_inference",
                                                                       "dense_macs_per_inference")}}


def _report(cfg: PipelineConfig, run: Path, state: dict) -> dict:
    from ternkit.targets import report_model, write_report

    report = report_model(run / "model.tern", cfg.targets, activity=run / "activity.json")
    write_report(report, run / "report")
    return {"directory": "report", "files": sorted(p.name for p in (run / "report").iterdir())}


def _summary(cfg: PipelineConfig, run: Path, state: dict) -> dict:
    from ternkit.summary import write_summary

    return write_summary(cfg, run, state)


_STAGE_FUNCS: dict[str, Callable[[PipelineConfig, Path, dict], dict]] = {
    "train": _train, "export-onnx": _export_onnx, "eval": _eval, "export-lava": _export_lava, "export": _export,
    "simulate": _simulate, "report": _report, "summary": _summary,
}


def _interrupted(e: BaseException) -> bool:
    """True for an error a Ctrl-C turned into: one landing in an import arrives wrapped (a C extension's
    initialisation raises ImportError, a class body's `__set_name__` RuntimeError), its cause the interrupt."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def run_pipeline(cfg: PipelineConfig, resume: bool = False, log: Callable[[str], None] = print) -> dict:
    """Run every stage in order; returns the state (also in runs/<name>/pipeline.json)."""
    check_pipeline(cfg)  # the whole file, before any stage writes anything
    run = cfg.run_dir()
    state_path = run / "pipeline.json"
    check_writable(state_path)  # creates the run directory; a read-only or full disk fails here, in one line
    settings = {k: v for k, v in cfg.__dict__.items()}
    state: dict[str, Any] = {"settings": settings}
    if resume and state_path.exists():
        try:
            old = read_json(state_path, "pipeline state JSON", OptionError)
        except OptionError as e:
            raise OptionError(f"{e}; run without --resume to start over") from None
        if not isinstance(old, dict):
            raise OptionError(f"{state_path} is corrupt; run without --resume to start over")
        if old.get("settings") != settings:
            raise OptionError(f"settings differ from the run in {run}; use another name or drop --resume")
        state = old
    for stage in STAGES:
        if resume and state.get(stage, {}).get("status") == "done":
            log(f"[{stage}] done earlier, skipped")
            continue
        log(f"[{stage}] ...")
        t0 = time.perf_counter()
        try:
            result = _train(cfg, run, state, resume) if stage == "train" else _STAGE_FUNCS[stage](cfg, run, state)
        except BaseException as e:
            if _interrupted(e):  # Ctrl-C: exit 130 (the CLI), not a failed stage
                log(f"[{stage}] interrupted; finished stages are kept: rerun with --resume")
                if isinstance(e, KeyboardInterrupt):
                    raise
                raise KeyboardInterrupt from None
            if not isinstance(e, TernkitError):
                raise
            state[stage] = {"status": "failed", "error": str(e), "seconds": time.perf_counter() - t0}
            write_text(state_path, json.dumps(state, indent=2))
            raise TernkitError(f"stage {stage} failed: {e} (finished stages are kept; fix and rerun with "
                               "--resume)") from None
        state[stage] = {"status": "done", "seconds": time.perf_counter() - t0, "result": result}
        write_text(state_path, json.dumps(state, indent=2))
        log(f"[{stage}] done in {state[stage]['seconds']:.1f} s")
    return state
