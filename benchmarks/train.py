"""CoNNTrA vs straight-through vs float backprop: the CoNNTrA paper's comparison, measured in one run.

Training error, validation error, test error (MNIST: the official 10k test set), memory of the learned
parameters and training time, for each method on the same data, split, epochs and seeds.

    python benchmarks/train.py [--quick] [--only iris,digits,mnist-256,...,kws,resnet_small] [--mnist-test DIR]
                               [--seeds N] [--methods conntra,conntra-torch,...]

Training time is the CPU time of the training loop (`time.process_time`) beside the wall time: on a shared
machine the wall time swings with the other load, CPU time much less; ratios are taken within one run.

Prints a table and writes benchmarks/out/train.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from ternkit.trainer import TrainConfig, train

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_TEST = HERE.parent.parent / "shared" / "datasets" / "mnist"

# name: (config overrides, seeds, methods); method "conntra-exact" = conntra in exact mode, "conntra-torch" = conntra
# with its step as torch operations (kernel="torch"; "conntra" takes the compiled CPU step where it builds)
EXPERIMENTS = {
    "iris": (dict(dataset="iris", model="mlp:16", epochs=100, batch_size=16, lr=1e-2), [0, 1, 2, 3, 4],
             ["conntra", "conntra-exact", "ste", "float"]),
    "digits": (dict(dataset="digits", model="mlp:64", epochs=30, batch_size=32), [0, 1, 2],
               ["conntra", "ste", "float"]),
    "mnist-256": (dict(dataset="mnist-sample", model="mlp:256", epochs=30, batch_size=64, val_fraction=0.0),
                  [0, 1, 2], ["conntra", "conntra-torch", "ste", "float"]),
    "mnist-512": (dict(dataset="mnist-sample", model="mlp:512", epochs=30, batch_size=64, val_fraction=0.0),
                  [0], ["conntra", "ste", "float"]),
    "mnist-256x256": (dict(dataset="mnist-sample", model="mlp:256x256", epochs=30, batch_size=64, val_fraction=0.0),
                      [0], ["conntra", "ste", "float"]),
    # the two example CNNs (plain torch code made ternary by ternarize): the DS-CNN and the small ResNet
    "kws": (dict(dataset="mnist-sample", model=str(ROOT / "examples" / "kws_dscnn.py") + ":build", epochs=3,
                 batch_size=64, val_fraction=0.0), [0, 1, 2], ["conntra", "conntra-torch", "ste", "float"]),
    "resnet_small": (dict(dataset="mnist-sample", model=str(ROOT / "examples" / "resnet_small.py") + ":build",
                          epochs=3, batch_size=64, val_fraction=0.0), [0, 1, 2],
                     ["conntra", "conntra-torch", "ste", "float"]),
}
DEFAULT_ONLY = "iris,digits,mnist-256,mnist-512,mnist-256x256"


def run_one(overrides: dict, method: str, seed: int) -> dict:
    mode = "exact" if method == "conntra-exact" else "gradient"
    kernel = "torch" if method == "conntra-torch" else "auto"
    cfg = TrainConfig(**{**overrides, "method": method.split("-")[0], "mode": mode, "seed": seed, "kernel": kernel})
    if mode == "exact":
        cfg.exact_coords = 16
    m = train(cfg, progress=False).metrics
    mem = m["memory"]
    return {"method": method, "seed": seed, "train_error": m["train_error"], "val_error": m["val_error"],
            "test_error": m.get("test_error"), "train_seconds": m["train_seconds"],
            "train_cpu_seconds": m["train_cpu_seconds"],
            "parameter_bytes": mem["parameter_bytes"], "bits_per_weight": mem["bits_per_weight"],
            "ratio_vs_float32": mem["ratio_vs_float32"], "ratio_vs_float64": mem["ratio_vs_float64"],
            "zero_fraction": mem["zero_fraction"] if method != "float" else None}


def _mean(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r[key] is not None]
    return statistics.fmean(vals) if vals else None


def _pct(v: float | None) -> str:
    return "     -" if v is None else f"{100 * v:6.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=DEFAULT_ONLY, help=f"comma-separated, of {', '.join(EXPERIMENTS)}")
    ap.add_argument("--quick", action="store_true", help="3 epochs, one seed: a smoke run")
    ap.add_argument("--mnist-test", default=str(DEFAULT_TEST), help="directory of the official MNIST test set")
    ap.add_argument("--seeds", type=int, help="seeds 0..N-1 instead of each experiment's own")
    ap.add_argument("--methods", help="comma-separated subset of each experiment's methods")
    ap.add_argument("--out", default=str(HERE / "out" / "train.json"))
    args = ap.parse_args()
    results, t0 = {}, time.perf_counter()
    for name in args.only.split(","):
        overrides, seeds, methods = EXPERIMENTS[name]
        overrides = dict(overrides)
        if overrides["dataset"] == "mnist-sample" and Path(args.mnist_test).is_dir():
            overrides["test"] = f"idx:{args.mnist_test}"
        if args.seeds:
            seeds = list(range(args.seeds))
        if args.methods:
            methods = [m for m in methods if m in args.methods.split(",") or m == "float"]  # float: the unit
        if args.quick:
            overrides["epochs"], seeds = min(3, overrides["epochs"]), seeds[:1]
        # the method order alternates with the seed, so that a drift in the machine's load hits every method
        rows = [run_one(overrides, method, seed) for i, seed in enumerate(seeds)
                for method in (methods if i % 2 == 0 else methods[::-1])]
        summary = {}
        for method in methods:
            mine = [r for r in rows if r["method"] == method]
            summary[method] = {k: _mean(mine, k) for k in ("train_error", "val_error", "test_error", "train_seconds",
                                                             "train_cpu_seconds",
                                                             "parameter_bytes", "bits_per_weight", "ratio_vs_float32",
                                                             "ratio_vs_float64", "zero_fraction")}
            tests = [r["test_error"] for r in mine if r["test_error"] is not None]
            summary[method]["test_error_sd"] = statistics.stdev(tests) if len(tests) > 1 else None
        float_s = summary["float"]["train_seconds"]
        float_cpu = summary["float"]["train_cpu_seconds"]
        for method in methods:
            summary[method]["time_vs_float"] = summary[method]["train_seconds"] / float_s
            summary[method]["cpu_vs_float"] = summary[method]["train_cpu_seconds"] / float_cpu
        results[name] = {"config": overrides, "seeds": seeds, "runs": rows, "summary": summary}
        print(f"\n{name}: {overrides['model']} on {overrides['dataset']}, {overrides['epochs']} epochs, "
              f"batch {overrides['batch_size']}, seeds {seeds} (errors in %, means over seeds)")
        print(f"{'method':<14}{'train':>7}{'val':>7}{'test':>7}{'sd':>6}{'KiB':>9}{'bits/w':>7}{'vs f32':>7}"
              f"{'vs f64':>7}{'zeros':>7}{'train s':>9}{'x float':>8}{'cpu s':>8}{'x float':>8}")
        for method, s in summary.items():
            zeros = "     -" if s["zero_fraction"] is None else f"{100 * s['zero_fraction']:6.1f}"
            sd = "     -" if s["test_error_sd"] is None else f"{100 * s['test_error_sd']:6.2f}"
            print(f"{method:<14}{_pct(s['train_error']):>7}{_pct(s['val_error']):>7}{_pct(s['test_error']):>7}{sd}"
                  f"{s['parameter_bytes'] / 1024:9.1f}{s['bits_per_weight']:7.2f}{s['ratio_vs_float32']:7.1f}"
                  f"{s['ratio_vs_float64']:7.1f}{zeros:>7}{s['train_seconds']:9.1f}{s['time_vs_float']:8.2f}"
                  f"{s['train_cpu_seconds']:8.1f}{s['cpu_vs_float']:8.2f}")
        sys.stdout.flush()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results, "wall_seconds": time.perf_counter() - t0}, indent=2))
    print(f"\nwrote {out} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
