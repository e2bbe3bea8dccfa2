"""Data-parallel throughput: training samples per second with 1 and 2 processes on this machine.

Each setting runs the real CLI (`python -m ternkit train ... --nproc N`) in a fresh process with the same
data, model, global batch, seed and epochs; samples/second = epochs * training rows / the loop's wall
seconds (data loading, start-up and per-epoch evaluation excluded). The settings run interleaved, `--repeats`
times, and the best of each is kept, because the machine is shared and noisy.

    python benchmarks/distributed.py [--dataset idx:/work/shared/datasets/mnist] [--epochs 2] [--repeats 2]

Prints a table and writes benchmarks/out/distributed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ternkit.core import load_model

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = "idx:" + str(HERE.parent.parent / "shared" / "datasets" / "mnist")
# (label, processes, threads per process)
SETTINGS = [("1 proc x 1 thread", 1, 1), ("1 proc x 2 threads", 1, 2), ("2 procs x 1 thread", 2, 1)]


def run_one(dataset: str, model: str, method: str, batch: int, epochs: int, nproc: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.tern"
        cmd = [sys.executable, "-m", "ternkit", "train", "--dataset", dataset, "--model", model, "--method", method,
               "--batch-size", str(batch), "--epochs", str(epochs), "--seed", "0", "--quiet", "--json",
               "--out", str(out), "--nproc", str(nproc)]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        metrics = json.loads(out.with_name("m.metrics.json").read_text())
        samples = int(load_model(out).provenance["train_samples"])
    return {"train_seconds": metrics["train_seconds"], "train_samples": samples,
            "samples_per_second": epochs * samples / metrics["train_seconds"], "val_error": metrics["val_error"],
            "world_size": metrics.get("data_parallel", {}).get("world_size", 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=DEFAULT_DATA)
    ap.add_argument("--models", default="mlp:256,cnn")
    ap.add_argument("--methods", default="float,conntra")
    ap.add_argument("--batches", default="64,1024")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    cases = [(m, meth, int(b)) for m in args.models.split(",") for meth in args.methods.split(",")
             for b in args.batches.split(",")]
    best: dict[tuple, dict] = {}
    for _ in range(args.repeats):
        for case in cases:
            for label, nproc, threads in SETTINGS:
                r = run_one(args.dataset, *case, args.epochs, nproc, threads)
                key = (*case, label)
                if key not in best or r["samples_per_second"] > best[key]["samples_per_second"]:
                    best[key] = r
    print(f"dataset {args.dataset}, {args.epochs} epochs, best of {args.repeats}, {os.cpu_count()} CPU cores")
    head = f"{'model':<22} {'method':<8} {'batch':>5}" + "".join(f" {s[0]:>19}" for s in SETTINGS) + "  2p/1p(1t)"
    print(head + "\n" + "-" * len(head))
    table = []
    for case in cases:
        sps = [best[(*case, s[0])]["samples_per_second"] for s in SETTINGS]
        print(f"{case[0]:<22} {case[1]:<8} {case[2]:>5}" + "".join(f" {v:>15.0f} s/s" for v in sps)
              + f"  {sps[2] / sps[0]:9.2f}x")
        table.append({"model": case[0], "method": case[1], "batch": case[2],
                      **{s[0]: best[(*case, s[0])] for s in SETTINGS}, "speedup_2p_vs_1p1t": sps[2] / sps[0],
                      "speedup_2p_vs_1p2t": sps[2] / sps[1]})
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "distributed.json").write_text(json.dumps(
        {"dataset": args.dataset, "epochs": args.epochs, "repeats": args.repeats, "cpu_count": os.cpu_count(),
         "command": " ".join(["python", "benchmarks/distributed.py", *sys.argv[1:]]), "results": table}, indent=2))


if __name__ == "__main__":
    main()
