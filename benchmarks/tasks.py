"""Regression and anomaly detection: CoNNTrA vs float, and the deployed ONNX and C outputs vs the reference.

Part `regression`: scikit-learn's diabetes data (442 patients, 10 features, a disease-progression target
25..346), written as a CSV and read as `csv:FILE:target` (the task is inferred: regression). Trained with the
measured defaults on 80 %, R^2 on the held-out 20 % (`@val`), per seed. The ONNX export (onnxruntime) and the
C build (host cc; its scores are checked bit-identical to the numpy emulation, whose outputs are then
dequantised with TK_OUTPUT_SCALE) are compared with `TernaryModel.forward` on the held-out rows: the largest
|output - reference| / |reference|.

Part `anomaly`: an autoencoder (mlp:32x16x32, 64 -> 64) on scikit-learn's digits. Digits are split 70/30
(stratified, seed 0); for each digit d the model is trained on the training part's other nine digits (an
`npz:` file with x only: y = x) and scored on the test part (label 1 = digit d, an anomaly): the ROC AUC of the
per-sample reconstruction error, for CoNNTrA, float and the CoNNTrA model's C build.

    OMP_NUM_THREADS=1 python benchmarks/tasks.py [--only regression,anomaly] [--seeds 0,1,2] [--quick]

Prints tables and writes benchmarks/out/tasks.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/onnx.py would shadow the onnx package: keep this folder off sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from ternkit.core import load_dataset  # noqa: E402
from ternkit.core.data import split_dataset  # noqa: E402
from ternkit.export import simulate  # noqa: E402
from ternkit.export.c.program import build_program, emulate  # noqa: E402
from ternkit.export.evaluate import evaluate, regression_scores  # noqa: E402
from ternkit.export.onnx.export import export_onnx  # noqa: E402
from ternkit.export.onnx.infer import OnnxModel  # noqa: E402
from ternkit.trainer import TrainConfig, train  # noqa: E402

HERE = Path(__file__).resolve().parent


def _rel(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(out - ref) / np.maximum(np.abs(ref), 1e-9)))


def _c_outputs(model, calib_x: np.ndarray, x: np.ndarray, calib_spec: str, data) -> tuple[np.ndarray, bool]:
    """Dequantised C outputs for x (numpy emulation) and whether the real C build's scores equal it."""
    prog = build_program(model, calib_x, calib_spec)
    rec = simulate(model, data, "c", calibrate=calib_spec)
    return emulate(prog, x) * prog.steps[-1].scale, bool(rec["emulation_identical"])


def regression(tmp: Path, seeds: list[int], quick: bool) -> list[dict]:
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    path = tmp / "diabetes.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*d.feature_names, "target"])
        for row, t in zip(d.data, d.target, strict=True):
            w.writerow([*(f"{v:.9g}" for v in row), int(t)])
    spec = f"csv:{path}:target"
    rows = []
    for seed in seeds:
        for method in ("conntra", "float"):
            t0 = time.process_time()
            r = train(TrainConfig(dataset=spec, model="mlp:64", method=method, seed=seed, device="cpu",
                                  epochs=3 if quick else None), progress=False)
            cpu = time.process_time() - t0
            held = f"{spec}@val:{seed}:0.2"
            ev = evaluate(r.model, held)
            row = {"seed": seed, "method": method, "r2": ev["r2"], "mae": ev["mae"], "mse": ev["mse"],
                   "cpu_seconds": cpu, "parameter_bytes": r.metrics["memory"]["parameter_bytes"]}
            if method == "conntra":
                val = load_dataset(held, "regress")
                ref = r.model.forward(val.x)
                onnx_path = tmp / f"d{seed}.onnx"
                export_onnx(r.model, onnx_path)
                row["onnx_max_rel"] = _rel(OnnxModel(onnx_path).forward(val.x), ref)
                calib = f"{spec}@train:{seed}:0.2"
                c_out, same = _c_outputs(r.model, load_dataset(calib, "regress").x, val.x, calib, val)
                row["c_max_rel"], row["c_identical_to_emulation"] = _rel(c_out, ref), same
                row["c_mean_rel"] = float(np.mean(np.abs(c_out - ref) / np.abs(ref)))
                row["c_max_err_of_range"] = float(np.abs(c_out - ref).max() / (ref.max() - ref.min()))
                row["c_r2"] = regression_scores(c_out, val.y)["r2"]
            rows.append(row)
    return rows


def anomaly(tmp: Path, quick: bool) -> list[dict]:
    digits = load_dataset("digits")
    train_part, test_part = split_dataset(digits, 0.3, seed=0)
    rows = []
    for held_out in range(3 if quick else 10):
        normal = train_part.y != held_out
        train_file, test_file = tmp / f"ae{held_out}.npz", tmp / f"ae{held_out}_test.npz"
        np.savez(train_file, x=train_part.x[normal])
        np.savez(test_file, x=test_part.x, y=(test_part.y == held_out).astype(np.int64))
        row: dict = {"held_out_digit": held_out, "train": int(normal.sum()), "test": len(test_part),
                     "anomalies": int((test_part.y == held_out).sum())}
        for method in ("conntra", "float"):
            t0 = time.process_time()
            r = train(TrainConfig(dataset=f"npz:{train_file}", model="mlp:32x16x32", method=method, seed=0,
                                  device="cpu", epochs=3 if quick else 30), progress=False)
            row[f"{method}_cpu_seconds"] = time.process_time() - t0
            row[f"{method}_auc"] = evaluate(r.model, f"npz:{test_file}")["auc"]
            if method == "conntra":
                test = load_dataset(f"npz:{test_file}")
                c_out, same = _c_outputs(r.model, train_part.x[normal][:500], test.x, f"npz:{train_file}",
                                         load_dataset(f"npz:{test_file}", "autoencode"))
                row["c_auc"] = regression_scores(c_out, test.x.reshape(len(test), -1), test.y == 1)["auc"]
                row["c_identical_to_emulation"] = same
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="regression,anomaly")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--quick", action="store_true", help="few epochs, three digits: a smoke run, not figures")
    ap.add_argument("--out", default=str(HERE / "out" / "tasks.json"))
    args = ap.parse_args(argv)
    parts, seeds = args.only.split(","), [int(s) for s in args.seeds.split(",")]
    results: dict = {"command": "python benchmarks/tasks.py " + " ".join(argv or sys.argv[1:])}
    with tempfile.TemporaryDirectory(prefix="ternkit-tasks-") as t:
        tmp = Path(t)
        if "regression" in parts:
            rows = results["regression"] = regression(tmp, seeds, args.quick)
            print("diabetes (csv, regression), R^2 on the held-out 20 %")
            print(f"{'seed':>4} {'method':<8} {'R2':>7} {'MAE':>7} {'params B':>8} {'CPU s':>6} "
                  f"{'ONNX max rel':>12} {'C max rel':>10} {'C mean rel':>10} {'C max/range':>11} {'C R2':>7} "
                  f"{'C == emu':>8}")
            for r in rows:
                extra = (f"{r['onnx_max_rel']:12.2e} {r['c_max_rel']:10.2e} {r['c_mean_rel']:10.2e} "
                         f"{r['c_max_err_of_range']:11.2e} {r['c_r2']:7.4f} "
                         f"{str(r['c_identical_to_emulation']):>8}" if "c_max_rel" in r else "")
                print(f"{r['seed']:>4} {r['method']:<8} {r['r2']:7.4f} {r['mae']:7.2f} {r['parameter_bytes']:8d} "
                      f"{r['cpu_seconds']:6.1f} {extra}")
            for m in ("conntra", "float"):
                r2 = [r["r2"] for r in rows if r["method"] == m]
                print(f"mean R2 {m}: {np.mean(r2):.4f} (min {min(r2):.4f})")
        if "anomaly" in parts:
            rows = results["anomaly"] = anomaly(tmp, args.quick)
            print("\ndigits autoencoder, one digit held out as the anomaly: ROC AUC of the reconstruction error")
            print(f"{'digit':>5} {'conntra':>8} {'float':>8} {'diff':>7} {'C':>8} {'C-ref':>8} {'C == emu':>8}")
            for r in rows:
                print(f"{r['held_out_digit']:>5} {r['conntra_auc']:8.4f} {r['float_auc']:8.4f} "
                      f"{r['conntra_auc'] - r['float_auc']:7.4f} {r['c_auc']:8.4f} "
                      f"{r['c_auc'] - r['conntra_auc']:8.4f} "
                      f"{str(r['c_identical_to_emulation']):>8}")
            for key in ("conntra_auc", "float_auc", "c_auc"):
                print(f"mean {key}: {np.mean([r[key] for r in rows]):.4f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
