"""A MobileNetV2-style network (examples/mobilenet_v2.py: inverted residuals with ReLU6, width 0.35) trained
on the MNIST sample with CoNNTrA and with float backprop for the same epochs (default settings otherwise,
through the public API `ternkit.trainer.train`), tested on the official MNIST test set (t10k IDX files, --mnist-test
DIR). Both methods run back to back in one process, so the time ratio is measured in one run. For the CoNNTrA
artifact: ONNX (INT2, onnxruntime) argmax agreement with `TernaryModel.forward` on the whole test set, and the C
export's (calibrated on 2,000 training images) -- its numpy emulation on the whole test set, and the real C
built with the host compiler on --c-samples test images, bit for bit against the emulation.

    python benchmarks/mobilenet.py --mnist-test DIR [--epochs 10] [--seed 0]
    python benchmarks/mobilenet.py --table          # re-print the table from the JSON

Prints a table and writes benchmarks/results/mobilenet.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # `import onnx` finds the package
ROOT = HERE.parent
DEFAULT_OUT = HERE / "results" / "mobilenet.json"
MODEL = str(ROOT / "examples" / "mobilenet_v2.py") + ":build"


def agreement(model, x: np.ndarray, ref: np.ndarray, c_samples: int) -> dict:
    from ternkit import export_onnx
    from ternkit.core import load_dataset
    from ternkit.export import OnnxModel
    from ternkit.export.c.emit import export_c
    from ternkit.export.c.program import emulate

    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export_onnx(model, path, "int2")
        onnx = OnnxModel(path, threads=1)
        logits = np.concatenate([onnx.forward(x[i:i + 1000]) for i in range(0, len(x), 1000)])
        res["onnx_agreement"] = float((logits.argmax(1) == ref).mean())
        data = load_dataset("mnist-sample")  # calibration: training images only, never test images
        calib = data.x[np.sort(np.random.default_rng(0).permutation(len(data))[:2000])]
        prog = export_c(model, Path(tmp) / "c", calib, source="mnist-sample")
        scores = emulate(prog, x)
        res["c_agreement"] = float((scores.argmax(1) == ref).mean())
        res["c_arena_bytes"] = prog.arena_bytes
        if c_samples and shutil.which("cc"):
            from ternkit.export.c.build import build_host, run_host

            run = run_host(build_host(Path(tmp) / "c", Path(tmp)), x[:c_samples], model.num_classes, Path(tmp))
            res["c_host_samples"] = c_samples
            res["c_host_bit_exact"] = bool(np.array_equal(run.scores, scores[:c_samples]))
    return res


def run(epochs: int, seed: int, test: str, c_samples: int, save: str | None = None) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from ternkit.core import load_dataset
    from ternkit.trainer import TrainConfig, train

    rows = {}
    methods = ("float", "conntra") if seed % 2 == 0 else ("conntra", "float")
    for method in methods:
        r = train(TrainConfig(dataset="mnist-sample", model=MODEL, method=method, epochs=epochs, seed=seed,
                              test=test), progress=False)
        m = r.metrics
        row = {"test_accuracy": 1 - m["test_error"], "val_error": m["val_error"], "train_seconds": m["train_seconds"],
               "train_cpu_seconds": m["train_cpu_seconds"], "parameter_bytes": m["memory"]["parameter_bytes"]}
        if method == "conntra":
            test_set = load_dataset(test)
            ref = r.model.predict(test_set.x)
            row["artifact_test_accuracy"] = float((ref == test_set.y).mean())
            row["nodes"] = len(r.model.nodes)
            row["kinds"] = sorted({n.op.kind for n in r.model.nodes})
            if save:
                from ternkit.core import save_model

                save_model(r.model, save)
            try:
                row.update(agreement(r.model, test_set.x, ref, c_samples))
            except Exception as e:  # keep the training figures; the artifact is saved for a second try
                row["agreement_error"] = f"{type(e).__name__}: {e}"[:300]
        rows[method] = row
    return {"seed": seed, "epochs": epochs, "order": list(methods), **rows,
            "diff_pp": 100 * (rows["conntra"]["test_accuracy"] - rows["float"]["test_accuracy"]),
            "time_ratio": rows["conntra"]["train_seconds"] / rows["float"]["train_seconds"],
            "cpu_ratio": rows["conntra"]["train_cpu_seconds"] / rows["float"]["train_cpu_seconds"]}


def print_table(res: dict) -> None:
    f, c = res["float"], res["conntra"]
    print(f"MobileNetV2 (width 0.35) on mnist-sample, {res['epochs']} epochs, seed {res['seed']}, official test set")
    print("| method | test accuracy | train s (wall) | train s (CPU) | parameter bytes |")
    print("| --- | --- | --- | --- | --- |")
    for name, row in (("float", f), ("conntra", c)):
        print(f"| {name} | {100 * row['test_accuracy']:.2f} % | {row['train_seconds']:.0f} | "
              f"{row['train_cpu_seconds']:.0f} | {row['parameter_bytes']} |")
    print(f"conntra - float: {res['diff_pp']:+.2f} pp; time ratio (wall) {res['time_ratio']:.2f}x, "
          f"(CPU) {res['cpu_ratio']:.2f}x")
    if "agreement_error" in c:
        print(f"agreement not measured: {c['agreement_error']}")
        return
    print(f"ONNX INT2 agreement {100 * c['onnx_agreement']:.2f} %, C agreement {100 * c['c_agreement']:.2f} % "
          f"(C on the host bit-exact vs its emulation on {c.get('c_host_samples', 0)} images: "
          f"{c.get('c_host_bit_exact')}), C arena {c['c_arena_bytes']} bytes")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-test", help="directory of the official MNIST test set (t10k IDX files)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--c-samples", type=int, default=500)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--save", help="also write the CoNNTrA artifact here")
    ap.add_argument("--table", action="store_true", help="re-print the table from the JSON")
    args = ap.parse_args()
    if args.table:
        print_table(json.loads(Path(args.out).read_text()))
        return 0
    if not args.mnist_test or not Path(args.mnist_test).is_dir():
        print("mobilenet.py: give the official MNIST test set's directory with --mnist-test DIR", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    res = run(args.epochs, args.seed, f"idx:{args.mnist_test}:t10k", args.c_samples, args.save)
    res["command"] = " ".join(["python", "benchmarks/mobilenet.py", *sys.argv[1:]])
    res["wall_seconds"] = time.perf_counter() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
