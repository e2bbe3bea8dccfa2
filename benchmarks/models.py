"""Edge models with CoNNTrA vs float backprop: accuracy, training time, ONNX and Lava agreement (issues 15, 16).

Four models, each trained on the MNIST sample (`mnist-sample`, the default 80/20 split) and tested on the
official MNIST test set (t10k IDX files, given with --mnist-test DIR), with --method conntra and --method float
for the same epochs and otherwise default settings, through the public API `ternkit.trainer.train`:

- `resnet`:  the spec `resnet:16-32` (residual CNN with BatchNorm);
- `dscnn`:   the spec `cnn:16c3s2bn-dw3bn-32c1bn-dw3s2bn-64c1bn-gap` (depthwise-separable CNN);
- `kws`:     `--model examples/kws_dscnn.py:build` (the DS-CNN example, plain torch code);
- `resnet_small`: `--model examples/resnet_small.py:build` (the small-ResNet example).

Per model and seed, both methods run back to back in one process (order alternating with the seed), so the
time ratio conntra/float is measured in one run. For every CoNNTrA artifact: ONNX (INT2) argmax agreement with
`TernaryModel.forward` on the whole test set (onnxruntime, `ternkit.export_onnx` + `OnnxModel`), and the
fixed-point sigma-delta Lava emulation's agreement (`build_graph` calibrated on 2,000 training images, then
`emulate`); with --lava-sim N also the real Lava simulator on N test images, bit for bit against the emulation.
Then, for both example models: the user loop (`examples/_user_loop.py`, `ternkit.optim.CoNNTrA`) and
`ternkit train --model FILE.py:build` (the CLI, a subprocess) for the same seed must give the same artifact
(equal fingerprints).

    python benchmarks/models.py --mnist-test DIR [--epochs 15] [--seeds 0,1] [--workers 2] [--only resnet,kws]
    python benchmarks/models.py --table          # re-print the table from the JSON

Prints a table and writes benchmarks/results/models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# benchmarks/ holds onnx.py and lava.py: keep this folder off sys.path so `import onnx` / `import lava` find
# the packages (spawned workers inherit sys.path)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
DEFAULT_OUT = HERE / "results" / "models.json"

MODELS = {
    "resnet": "resnet:16-32",
    "dscnn": "cnn:16c3s2bn-dw3bn-32c1bn-dw3s2bn-64c1bn-gap",
    "kws": "examples/kws_dscnn.py:build",
    "resnet_small": "examples/resnet_small.py:build",
}
EXAMPLES = ("kws", "resnet_small")


def _model_arg(name: str) -> str:
    spec = MODELS[name]
    return str(ROOT / spec) if name in EXAMPLES else spec


def _agreement(model, x: np.ndarray, ref: np.ndarray, lava_sim: int) -> dict:
    """ONNX INT2 and Lava sigma-delta (fixed point) argmax agreement with the reference on the test set."""
    from ternkit import export_onnx
    from ternkit.core import load_dataset
    from ternkit.export import OnnxModel
    from ternkit.export.lava.graph import build_graph, emulate

    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export_onnx(model, path, "int2")
        onnx = OnnxModel(path, threads=1)
        logits = np.concatenate([onnx.forward(x[i:i + 1000]) for i in range(0, len(x), 1000)])
        res["onnx_agreement"] = float((logits.argmax(1) == ref).mean())
        res["onnx_bytes"] = path.stat().st_size
    data = load_dataset("mnist-sample")  # calibration: training images only, never test images
    calib = data.x[np.sort(np.random.default_rng(0).permutation(len(data))[:2000])]
    t0 = time.perf_counter()
    try:
        g = build_graph(model, calib)
        out = np.concatenate([emulate(g, x[i:i + 1000])[0] for i in range(0, len(x), 1000)])
    except Exception as e:  # another engineer may be mid-refactor of the Lava mapping: record, don't die
        res["lava_error"] = f"{type(e).__name__}: {e}"[:300]
        return res
    res["lava_agreement"] = float((out.argmax(1) == ref).mean())
    res["lava_seconds"] = time.perf_counter() - t0
    if lava_sim:
        from ternkit.export.lava.sim import simulate_graph

        run = simulate_graph(g, x[:lava_sim])
        res["lava_sim_samples"] = lava_sim
        res["lava_sim_bit_exact"] = bool(np.array_equal(run.readout, out[:lava_sim]))
    return res


def run_pair(name: str, seed: int, epochs: int, test: str, lava_sim: int, agree: bool = True) -> dict:
    """float and conntra for one model and seed, back to back in this process; with `agree`, the ONNX and Lava
    agreement checks on the conntra artifact (calibrating a ResNet's Lava graph costs minutes of CPU)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from ternkit.core import load_dataset
    from ternkit.trainer import TrainConfig, train

    methods = ("float", "conntra") if seed % 2 == 0 else ("conntra", "float")
    rows = {}
    for method in methods:
        r = train(TrainConfig(dataset="mnist-sample", model=_model_arg(name), method=method, epochs=epochs,
                              seed=seed, test=test), progress=False)
        m = r.metrics
        row = {"test_accuracy": 1 - m["test_error"], "train_error": m["train_error"], "val_error": m["val_error"],
               "train_seconds": m["train_seconds"], "train_cpu_seconds": m["train_cpu_seconds"],
               "parameter_bytes": m["memory"]["parameter_bytes"],
               "val_error_per_epoch": [e["val_error"] for e in m["epochs"]]}
        if method == "conntra" and agree:
            test_set = load_dataset(test)
            ref = r.model.predict(test_set.x)
            row["artifact_test_accuracy"] = float((ref == test_set.y).mean())
            row["nodes"] = sorted({n.op.kind for n in r.model.nodes})
            t0 = time.perf_counter()
            row.update(_agreement(r.model, test_set.x, ref, lava_sim))
            row["agreement_seconds"] = time.perf_counter() - t0
        rows[method] = row
    return {"model": name, "seed": seed, "order": list(methods), **rows,
            "diff_pp": 100 * (rows["conntra"]["test_accuracy"] - rows["float"]["test_accuracy"]),
            "time_ratio": rows["conntra"]["train_seconds"] / rows["float"]["train_seconds"],
            "cpu_ratio": rows["conntra"]["train_cpu_seconds"] / rows["float"]["train_cpu_seconds"]}


def same_artifact(name: str, epochs: int, seed: int) -> dict:
    """User loop with ternkit.optim.CoNNTrA vs `ternkit train --model FILE.py:build` (a subprocess)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import importlib

    from ternkit.core import load_model

    sys.path.insert(0, str(ROOT / "examples"))
    build = importlib.import_module(Path(MODELS[name].split(":")[0]).stem).build
    from _user_loop import train_in_user_loop

    ours = train_in_user_loop(build, "mnist-sample", epochs=epochs, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.tern"
        cli = [str(Path(sys.executable).parent / "ternkit"), "train", "--dataset", "mnist-sample", "--model",
               _model_arg(name), "--epochs", str(epochs), "--seed", str(seed), "--quiet", "--out", str(out)]
        proc = subprocess.run(cli, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if proc.returncode:
            return {"model": name, "equal": False, "error": proc.stderr.strip()[-300:]}
        theirs = load_model(out)
    return {"model": name, "epochs": epochs, "seed": seed, "user_loop": ours.fingerprint(),
            "cli": theirs.fingerprint(), "equal": ours.fingerprint() == theirs.fingerprint()}


def summarise(runs: list[dict]) -> dict:
    out = {}
    for name in dict.fromkeys(r["model"] for r in runs):
        mine = [r for r in runs if r["model"] == name]
        s = {f"{m}_{k}": statistics.fmean(r[m][k] for r in mine)
             for m in ("conntra", "float") for k in ("test_accuracy", "train_seconds", "train_cpu_seconds")}
        for k in ("diff_pp", "time_ratio", "cpu_ratio"):
            s[k] = statistics.fmean(r[k] for r in mine)
        for k in ("onnx_agreement", "lava_agreement"):
            vals = [r["conntra"][k] for r in mine if r["conntra"].get(k) is not None]
            s[k] = min(vals) if vals else None
        s["seeds"] = [r["seed"] for r in mine]
        out[name] = s
    return out


def print_table(result: dict) -> None:
    print(f"\n{result['epochs']} epochs, seeds {result['seeds']}; test accuracy on the official MNIST test set "
          "(%), training seconds (wall / CPU), ratios conntra/float from one process per seed")
    print(f"{'model':<13}{'seed':>5}{'conntra':>9}{'float':>8}{'diff pp':>9}{'c s':>8}{'f s':>8}{'x wall':>8}"
          f"{'x cpu':>7}{'onnx %':>9}{'lava %':>8}")
    for r in result["runs"]:
        c, f = r["conntra"], r["float"]
        onnx = f"{100 * c['onnx_agreement']:9.2f}" if "onnx_agreement" in c else "        -"
        lava = (f"{100 * c['lava_agreement']:8.2f}" if "lava_agreement" in c else
                "   error" if "lava_error" in c else "       -")
        print(f"{r['model']:<13}{r['seed']:>5}{100 * c['test_accuracy']:9.2f}{100 * f['test_accuracy']:8.2f}"
              f"{r['diff_pp']:+9.2f}{c['train_seconds']:8.1f}{f['train_seconds']:8.1f}{r['time_ratio']:8.2f}"
              f"{r['cpu_ratio']:7.2f}{onnx}{lava}")
    for name, s in result["summary"].items():
        lava = f"{100 * s['lava_agreement']:8.2f}" if s["lava_agreement"] is not None else "       -"
        onnx = f"{100 * s['onnx_agreement']:9.2f}" if s["onnx_agreement"] is not None else "        -"
        print(f"{name:<13}{'mean':>5}{100 * s['conntra_test_accuracy']:9.2f}{100 * s['float_test_accuracy']:8.2f}"
              f"{s['diff_pp']:+9.2f}{s['conntra_train_seconds']:8.1f}{s['float_train_seconds']:8.1f}"
              f"{s['time_ratio']:8.2f}{s['cpu_ratio']:7.2f}{onnx}{lava}")
    for a in result.get("same_artifact", []):
        print(f"same artifact, {a['model']}: user loop vs ternkit train --model, {a.get('epochs')} epochs, seed "
              f"{a.get('seed')}: {'equal' if a['equal'] else 'DIFFERENT'} ({a.get('user_loop', a.get('error'))})")


def _run_workers(jobs: list[list[str]], common: list[str], workers: int, t0: float) -> list[dict]:
    """Each job in its own process (the real Lava simulator needs the fork start method, which a process
    pool's spawn would preclude), at most `workers` at once; results in job order."""
    results: list[dict | None] = [None] * len(jobs)
    pending, running = list(enumerate(jobs)), []
    with tempfile.TemporaryDirectory() as tmp:
        while pending or running:
            while pending and len(running) < workers:
                i, job = pending.pop(0)
                path = Path(tmp) / f"{i}.json"
                proc = subprocess.Popen([sys.executable, __file__, *job, *common, "--result", str(path)])
                running.append((i, job, path, proc))
            time.sleep(1)
            for item in [r for r in running if r[3].poll() is not None]:
                running.remove(item)
                i, job, path, proc = item
                if proc.returncode:
                    raise SystemExit(f"models.py: worker {' '.join(job)} failed (exit {proc.returncode})")
                results[i] = json.loads(path.read_text())
                print(f"done {' '.join(job[1:3])} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return [r for r in results if r is not None]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist-test", help="directory of the official MNIST test set (t10k IDX files)")
    ap.add_argument("--only", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--workers", type=int, default=2, help="processes training (model, seed) pairs in parallel")
    ap.add_argument("--agree-seeds", help="seeds whose conntra artifacts get the ONNX/Lava checks (default: all)")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="combine the runs of earlier outputs into --out")
    ap.add_argument("--lava-sim", type=int, default=0, help="also run N test images in the real Lava simulator")
    ap.add_argument("--same-epochs", type=int, default=2, help="epochs of the user-loop-vs-CLI artifact check")
    ap.add_argument("--no-same", action="store_true", help="skip the user-loop-vs-CLI artifact check")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--table", action="store_true", help="only re-print the table of --out")
    ap.add_argument("--pair", nargs=2, metavar=("MODEL", "SEED"), help=argparse.SUPPRESS)  # worker: one pair
    ap.add_argument("--same", metavar="MODEL", help=argparse.SUPPRESS)  # worker: one artifact check
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--agree", default="yes", help=argparse.SUPPRESS)  # worker: where to write its JSON
    args = ap.parse_args()
    out = Path(args.out)
    if args.pair or args.same:
        res = (run_pair(args.pair[0], int(args.pair[1]), args.epochs, f"idx:{args.mnist_test}:t10k", args.lava_sim,
                        args.agree != "no") if args.pair else same_artifact(args.same, args.same_epochs, 0))
        Path(args.result).write_text(json.dumps(res))
        return 0
    if args.table:
        print_table(json.loads(out.read_text()))
        return 0
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        if len({p["epochs"] for p in parts}) != 1:
            print("models.py: --merge needs outputs of the same --epochs", file=sys.stderr)
            return 2
        runs = sorted((r for p in parts for r in p["runs"]), key=lambda r: (list(MODELS).index(r["model"]), r["seed"]))
        result = {**parts[0], "seeds": sorted({r["seed"] for r in runs}), "runs": runs, "summary": summarise(runs),
                  "same_artifact": [a for p in parts for a in p["same_artifact"]],
                  "wall_seconds": sum(p["wall_seconds"] for p in parts), "merged_from": len(parts)}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        print_table(result)
        return 0
    if not args.mnist_test or not Path(args.mnist_test).is_dir():
        print("models.py: give the official MNIST test set's directory with --mnist-test DIR", file=sys.stderr)
        return 2
    names, seeds = args.only.split(","), [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    agree = set(seeds) if args.agree_seeds is None else {int(s) for s in args.agree_seeds.split(",") if s}
    jobs = [["--pair", n, str(s), "--agree", "yes" if s in agree else "no"] for s in seeds for n in names]
    if not args.no_same:
        jobs += [["--same", n] for n in names if n in EXAMPLES]
    common = ["--mnist-test", args.mnist_test, "--epochs", str(args.epochs), "--lava-sim", str(args.lava_sim),
              "--same-epochs", str(args.same_epochs)]
    done = _run_workers(jobs, common, args.workers, t0)
    runs = [d for d in done if "diff_pp" in d]
    same_results = [d for d in done if "equal" in d]
    result = {"epochs": args.epochs, "seeds": seeds, "test": "official MNIST test set (t10k)",
              "config": "TrainConfig defaults: batch 64, lr 1e-3 constant, val_fraction 0.2, frac 1e-2 -> 1e-4",
              "runs": runs, "summary": summarise(runs), "same_artifact": same_results,
              "wall_seconds": time.perf_counter() - t0}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"\nwrote {out} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
