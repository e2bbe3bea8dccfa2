"""`ternkit pipeline [pipeline.toml]`: every stage from training to the energy report, in one run directory."""

from __future__ import annotations

import argparse

from ternkit.commands import SUMMARIES
from ternkit.pipeline import STAGES, load_pipeline_config, run_pipeline


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help=SUMMARIES["pipeline"],
                       description="Run " + " -> ".join(STAGES) + " with the settings of one TOML file "
                       "(see examples/pipeline.toml); with no file, defaults on mnist-sample. Output: runs/<name>/.")
    p.add_argument("config", nargs="?", default=None, help="pipeline TOML file (optional)")
    p.add_argument("--name", default=None, help="run name (directory under runs/); overrides the file")
    p.add_argument("--epochs", type=int, default=None, help="override the training epochs")
    p.add_argument("--limit", type=int, default=None, help="override the number of simulated samples")
    p.add_argument("--runs-dir", default=None, help="where run directories go (default: runs)")
    p.add_argument("--resume", action="store_true", help="skip the stages a previous run of this name finished")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_pipeline_config(args.config, {"name": args.name, "epochs": args.epochs, "limit": args.limit,
                                             "runs_dir": args.runs_dir})
    run_pipeline(cfg, resume=args.resume)
    summary = cfg.run_dir() / "summary.md"
    print("\n" + summary.read_text(encoding="utf-8"))
    print(f"summary: {summary}  (figures: {summary.with_suffix('.png')}, report: {cfg.run_dir() / 'report'})")
    return 0
