"""`ternkit report MODEL [--target NAME|FILE.toml ...] [--activity run.json] [--dataset SPEC] -o DIR`.

Memory and estimated energy per inference on each target, beside the float32 baseline: report.json,
report.md, memory.png and energy.png. Activation sparsity comes from the numpy reference run on `--dataset`
(default: the dataset the model was trained on, if it is a bundled one -- a model never makes ternkit read a
file); neuromorphic activity from `--activity` when given. The choices are `ternkit.targets.report_model`'s.
"""

from __future__ import annotations

import argparse
import sys

from ternkit.commands import SUMMARIES
from ternkit.core.text import plain
from ternkit.targets import report_model, shipped_targets, write_report
from ternkit.targets.make import DEFAULT_LIMIT


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help=SUMMARIES["report"],
                       description="Memory, operation counts and estimated energy per inference on each target, "
                                   "with the float32 baseline of the same architecture.",
                       epilog=f"shipped targets: {', '.join(shipped_targets())}")
    p.add_argument("model", help="a .tern artifact")
    p.add_argument("--target", action="append", metavar="NAME|FILE.toml",
                   help="a shipped target or a TOML spec; repeat for several (default: all shipped targets)")
    p.add_argument("--activity", metavar="RUN.json", help="activity record written by `ternkit simulate`")
    p.add_argument("--build", metavar="DIR", help="a Cortex-M4 build (`ternkit simulate --backend cortex-m4 --build "
                   "DIR`): the mcu target reports its measured flash and RAM")
    p.add_argument("--dataset", metavar="SPEC", help="data to measure activation sparsity on (default: the "
                   "model's training dataset if it is a bundled one: iris, digits, mnist-sample)")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                   help=f"samples to measure on (default: {DEFAULT_LIMIT})")
    p.add_argument("-o", "--out", default="report", metavar="DIR", help="output directory (default: report/)")
    p.add_argument("--quiet", action="store_true", help="print only the output directory")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    build = None
    if args.build:  # measured figures are data to targets: the build directory is read here, by export
        from ternkit.export.c.sim import build_figures

        build = build_figures(args.build)
    report = report_model(args.model, args.target, dataset=args.dataset, activity=args.activity, limit=args.limit,
                          build=build, build_where=str(args.build))
    paths = write_report(report, args.out)
    for w in report["warnings"]:
        print(f"ternkit report: warning: {plain(w, 1000)}", file=sys.stderr)
    if args.quiet:
        print(args.out)
        return 0
    print(f"{'target':<10} {'fits':<5} {'energy/inference':>17} {'float32':>12} {'ratio':>8}")
    for t in report["targets"]:
        e = t["energy"]
        fits = "yes" if t["fit"]["fits"] else "no"
        print(f"{plain(t['name'], 40):<10} {fits:<5} {e['per_inference_pj'] / 1e3:>14.2f} nJ "
              f"{e['float_baseline_pj'] / 1e3:>9.2f} nJ {e['ratio_vs_float']:>8.3g}")
    for t in report["targets"]:
        if t.get("measured"):
            mm = t["measured"]
            print(f"{plain(t['name'], 40)}: measured flash {mm['flash_bytes']:,.0f} B, RAM {mm['ram_bytes']:,.0f} B"
                  + (f", {mm['instructions_per_inference']:,.0f} instructions per inference"
                     if mm.get("instructions_per_inference") is not None else "")
                  + f" ({mm['source']}); energy estimated")
    m = report["memory"]
    print(f"parameters {m['parameter_bytes']:,} B as stored ({m['bits_per_learned_parameter']:.3f} bits per weight; "
          f"float32 {m['float32_parameter_bytes']:,} B)")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
