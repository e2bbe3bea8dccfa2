"""The pipeline's one-page summary: summary.md (a table a person reads), summary.json and summary.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ternkit.core.atomic import atomic_path, write_text
from ternkit.core.text import md

__all__ = ["write_summary", "energy_by_target"]


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def energy_by_target(report: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """{target: {"ternary_pj": .., "float_pj": .., "ratio": ..}} from report.json."""
    out = {}
    for t in report.get("targets", []):
        e = t.get("energy", {})
        out[t.get("name", "?")] = {"ternary_pj": e.get("per_inference_pj"),
                                   "float_pj": e.get("float_baseline_pj"),
                                   "ratio": e.get("ratio_vs_float")}
    return out


def write_summary(cfg: Any, run: Path, state: dict[str, Any]) -> dict[str, Any]:
    train = state["train"]["result"]
    evals = state["eval"]["result"]["models"]
    sim = state["simulate"]["result"]
    report_path = run / "report" / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    energy = energy_by_target(report)
    mem = train[cfg.method]["memory"]
    baseline = train.get(cfg.baseline) if cfg.baseline else None
    figure = "accuracy" if "accuracy" in evals["model.tern"] else "r2"  # a regression's figure is R^2
    accuracy = {
        f"{cfg.baseline} (reference)": evals.get(f"{cfg.baseline}.tern", {}).get(figure) if baseline else None,
        f"{cfg.method} (reference numpy)": evals["model.tern"].get(figure),
        f"ONNX ({cfg.onnx_format}, onnxruntime)": evals["model.onnx"].get(figure),
        f"{sim.get('backend') or cfg.backend} ({sim.get('neuron') or 'n/a'}, {sim.get('samples')} of them)":
            sim.get("accuracy"),
    }
    summary = {"name": cfg.name, "dataset": cfg.dataset, "evaluated_on": cfg.eval_spec, "model": cfg.model,
               "accuracy": accuracy, "agreement": sim.get("agreement"), "memory": mem,
               "baseline_memory": baseline["memory"] if baseline else None, "energy": energy,
               "stage_seconds": {k: v.get("seconds") for k, v in state.items()
                                 if isinstance(v, dict) and "seconds" in v}}
    lines = [f"# ternkit pipeline: {cfg.name}", "",
             f"{cfg.model} trained with {cfg.method} on `{cfg.dataset}` ({cfg.epochs} epochs, seed {cfg.seed}); "
             f"evaluated on `{cfg.eval_spec}`.", "", "## Training", "",
             "| method | train error | validation error | training time |", "| --- | --- | --- | --- |"]
    lines += [f"| {m} | {_pct(r['train_error'])} | {_pct(r['val_error'])} | {r['train_seconds']:.1f} s |"
              for m, r in train.items()]
    lines += ["", "## Accuracy", "", "| model | accuracy |", "| --- | --- |"] if figure == "accuracy" else [
        "", "## R² (regression, held out; shown x 100)", "", "| model | R² x 100 |", "| --- | --- |"]
    lines += [f"| {k} | {_pct(v)} |" for k, v in accuracy.items() if v is not None or baseline]
    lines += ["", f"Agreement of the {cfg.backend} simulation with the reference forward pass: "
              f"{_pct(sim.get('agreement'))} of {sim.get('samples')} samples.", "", "## Memory", "",
              "| model | parameters | bits per weight | zeros |", "| --- | --- | --- | --- |",
              f"| {cfg.method} | {mem['parameter_bytes'] / 1024:.1f} KiB | {mem['bits_per_weight']:.2f} | "
              f"{100 * mem['zero_fraction']:.1f} % |"]
    if baseline:
        b = baseline["memory"]
        lines.append(f"| {cfg.baseline} | {b['parameter_bytes'] / 1024:.1f} KiB | {b['bits_per_weight']:.2f} | – |")
        lines += ["", f"The {cfg.method} model is {b['parameter_bytes'] / mem['parameter_bytes']:.1f}× smaller."]
    if energy:
        lines += ["", "## Energy per inference (estimates; assumptions in report/report.md)", "",
                  "| target | ternary | float baseline (cpu-fp32) | ternary vs float |", "| --- | --- | --- | --- |"]
        def fmt(v: float | None) -> str:
            return "–" if v is None else f"{v / 1e3:.1f} nJ"

        for name, e in energy.items():
            r = e["ratio"]
            ratio = "–" if not r else (f"{1 / r:.0f}× less" if r < 1 else f"{r:.2f}× more")
            lines.append(f"| {md(name)} | {fmt(e['ternary_pj'])} | {fmt(e['float_pj'])} | {ratio} |")
    lines += ["", "## Time per stage", "", "| stage | seconds |", "| --- | --- |"]
    lines += [f"| {k} | {v:.1f} |" for k, v in summary["stage_seconds"].items() if v is not None]
    lines += ["", "Files: model.tern, model.onnx, model.lava.json, activity.json, report/, summary.png", ""]
    write_text(run / "summary.md", "\n".join(lines))
    write_text(run / "summary.json", json.dumps(summary, indent=2))
    _plot(run / "summary.png", accuracy, energy, cfg.name, "accuracy (%)" if figure == "accuracy" else "R² x 100")
    return {"files": ["summary.md", "summary.json", "summary.png"], "accuracy": accuracy,
            "agreement": sim.get("agreement")}


def _plot(path: Path, accuracy: dict[str, float | None], energy: dict[str, dict], title: str,
          xlabel: str = "accuracy (%)") -> None:
    """summary.png; labels (target names from TOML files, dataset specs) are plain text: mathtext and TeX off."""
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context({"text.usetex": False, "text.parse_math": False}):
        _draw(path, accuracy, energy, title, xlabel)


def _draw(path: Path, accuracy: dict[str, float | None], energy: dict[str, dict], title: str, xlabel: str) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if energy else 1, figsize=(11 if energy else 6, 3.6), squeeze=False)
    acc = {k: v for k, v in accuracy.items() if v is not None}
    ax = axes[0][0]
    ax.barh(list(acc), [100 * v for v in acc.values()], color="#4c72b0")
    ax.set_xlim(max(0, min(100 * v for v in acc.values()) - 10), 100)
    ax.set_xlabel(xlabel)
    for i, v in enumerate(acc.values()):
        ax.text(100 * v, i, f" {100 * v:.1f}", va="center", fontsize=8)
    ax.invert_yaxis()
    if energy:
        ax = axes[0][1]
        # every target's ternary estimate, and once the float baseline (the same architecture, float32 on CPU)
        bars = {f"ternary on {n}": e["ternary_pj"] for n, e in energy.items() if e["ternary_pj"]}
        float_pj = next((e["float_pj"] for e in energy.values() if e["float_pj"]), None)
        if float_pj:
            bars["float32 on cpu-fp32"] = float_pj
        colours = ["#4c72b0"] * (len(bars) - (1 if float_pj else 0)) + (["#dd8452"] if float_pj else [])
        ax.barh(list(bars), [v / 1e3 for v in bars.values()], color=colours)
        for i, v in enumerate(bars.values()):
            ax.text(v / 1e3, i, f" {v / 1e3:,.0f}", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("estimated energy per inference (nJ, log scale)")
        ax.invert_yaxis()
    fig.suptitle(f"ternkit pipeline: {title}")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
