"""Faster training: approximate matmuls (sampled column-row pairs) and batchwise dropout, in one run.

Trains on the mnist-sample (all 5,000 images), tests on the official 10,000-image MNIST test set, and prints
- approximate ops on 784-800-800-10: exact vs topk/bernoulli/crs at ratios 0.7/0.5/0.3 (float), and exact vs
  each sampler at 0.5 for STE and CoNNTrA: test accuracy, counted training MACs, time per epoch;
- batchwise vs mask dropout (p = 0.5 on hidden units) on 784-W-W-10 for W = 500/1000/2000 (float), and at
  W = 800 for STE and CoNNTrA, and batchwise + topk 0.5 combined (float, CoNNTrA).
Time per epoch = the median step time (wall and CPU, timed from one before-step hook to the next) times the
steps per epoch: the median shrugs off the bursts of other jobs on a shared machine; mean epoch wall time
is recorded too. Run with OMP_NUM_THREADS=1 so every configuration is disturbed alike.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/accelerators.py [--epochs 6] [--batch-size 128] [--seed 0]
        [--lr-schedule cosine] [--out benchmarks/out/accelerators.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ternkit.core.atomic import write_text
from ternkit.core.data import load_split
from ternkit.trainer import Hooks, TrainConfig, train

OUT = Path(__file__).parent / "out" / "accelerators.json"
TEST = "idx:/work/shared/datasets/mnist"


class StepTimer:
    """A before-step hook: the wall and CPU time between consecutive steps of one epoch."""

    def __init__(self, steps_per_epoch: int):
        self.steps_per_epoch, self.last, self.wall, self.cpu = steps_per_epoch, None, [], []

    def __call__(self, net, step: int) -> None:
        now = (time.perf_counter(), time.process_time())
        if self.last is not None and step % self.steps_per_epoch != 0:  # not across an epoch's evaluation
            self.wall.append(now[0] - self.last[0])
            self.cpu.append(now[1] - self.last[1])
        self.last = now


def run(split, args, name: str, method: str, width: int, extra: dict) -> dict:
    steps = -(-len(split.train) // args.batch_size)
    timer = StepTimer(steps)
    cfg = TrainConfig(dataset="mnist-sample", test=TEST, model=f"mlp:{width}x{width}", method=method,
                      epochs=args.epochs, batch_size=args.batch_size, lr_schedule=args.lr_schedule, seed=args.seed,
                      val_fraction=0.0, extra=extra)
    m = train(cfg, split=split, hooks=Hooks(before_step=[timer]), progress=False).metrics
    macs = m.get("approx") or m.get("dropout") or {}
    if "approx" in m and "dropout" in m:  # combined: dropout counts the submatrix, approx samples within it
        macs = {"mac_ratio": m["dropout"]["mac_ratio"] * m["approx"]["mac_ratio"]}
    row = {"name": name, "method": method, "width": width, "extra": extra, "test_acc": 100 * (1 - m["test_error"]),
           "train_acc": 100 * (1 - m["train_error"]), "mac_ratio": macs.get("mac_ratio", 1.0),
           "epoch_wall_median": statistics.median(timer.wall) * steps,
           "epoch_cpu_median": statistics.median(timer.cpu) * steps,
           "epoch_wall_mean": m["train_seconds"] / args.epochs}
    print(f"  {method:<8} {width:>5} {name:<24} test {row['test_acc']:6.2f} %  MACs x{row['mac_ratio']:.3f}  "
          f"epoch {row['epoch_wall_median']:.2f} s wall / {row['epoch_cpu_median']:.2f} s CPU "
          f"(mean {row['epoch_wall_mean']:.2f})", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr-schedule", default="cosine", choices=("constant", "cosine"),
                    help="Adam's rate for every run (default cosine: a constant rate's late loss spikes made single "
                         "runs end up to 2.8 pp below their own previous epoch)")
    ap.add_argument("--widths", default="500,800,1000,2000", help="hidden widths of the float dropout comparison")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: approx, dropout, methods (the STE, "
                    "CoNNTrA and combined dropout rows)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"JSON output (default {OUT})")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    split = load_split("mnist-sample", args.seed, 0.0, TEST)
    rows: list[dict] = []
    t0 = time.perf_counter()
    skip = set(args.skip.split(",")) - {""}
    if "approx" not in skip:
        print(f"approximate ops, 784-800-800-10, {args.epochs} epochs, batch {args.batch_size}")
        rows.append(run(split, args, "exact", "float", 800, {}))
        for ratio in (0.7, 0.5, 0.3):
            for sampler in ("topk", "bernoulli", "crs"):
                rows.append(run(split, args, f"{sampler} {ratio}", "float", 800,
                                {"approx": {"method": sampler, "ratio": ratio}}))
        for method in ("ste", "conntra"):
            rows.append(run(split, args, "exact", method, 800, {}))
            for sampler in ("topk", "bernoulli", "crs"):
                rows.append(run(split, args, f"{sampler} 0.5", method, 800,
                                {"approx": {"method": sampler, "ratio": 0.5}}))
    if "dropout" not in skip:
        print(f"dropout p=0.5 (hidden), 784-W-W-10, {args.epochs} epochs, batch {args.batch_size}")
        for width in [int(w) for w in args.widths.split(",")]:
            for kind in ("mask", "batchwise"):
                rows.append(run(split, args, f"{kind}:0.5", "float", width,
                                {"dropout": {"kind": kind, "rates": [0.5]}}))
    if "dropout" not in skip and "methods" not in skip:
        for method in ("ste", "conntra"):
            for kind in ("mask", "batchwise"):
                rows.append(run(split, args, f"{kind}:0.5", method, 800, {"dropout": {"kind": kind, "rates": [0.5]}}))
        for method in ("float", "conntra"):
            rows.append(run(split, args, "batchwise:0.5 + topk 0.5", method, 800,
                            {"dropout": {"kind": "batchwise", "rates": [0.5]},
                             "approx": {"method": "topk", "ratio": 0.5}}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps({"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
                                     "lr_schedule": args.lr_schedule, "seconds": time.perf_counter() - t0,
                                     "rows": rows}, indent=2))
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
