"""The FPGA route measured (issue 29): QONNX export checked by qonnx's executor, hls4ml's C++ emulation.

Two models trained with CoNNTrA on the MNIST sample (`mnist-sample`, seed 0): the MLP 784-256-10 (10 epochs) and
the CNN `cnn:8c5s2-16c5s2-64` (8 epochs), kept in benchmarks/out/. On the first N official MNIST test images
(t10k IDX files, --test): qonnx's executor against `TernaryModel.forward` (max |logit difference|), then hls4ml
1.3.0 (io_parallel, Vitis backend, compiled with g++) in four settings:

- `chosen`: the precisions ternkit chooses from the model's ranges (width 18; docs/fpga.md);
- `chosen+a8`: the same with an 8-bit activation Quant after every ReLU (agreement is against the float
  reference; max |diff| against the quantised graph's numpy twin);
- `fixed<16,6>`: hls4ml's default, one type for the whole model (`granularity="model"`);
- `fixed<32,12>`: the wide uniform type.

For each: argmax agreement with the reference, max |logit difference|, accuracy, the type hls4ml gave the
dense/conv weights, the bits of all weights and of all parameters, compile time.

    python benchmarks/fpga.py [--test idx:/work/shared/datasets/mnist] [--n 1000] [--only mlp,cnn]
    python benchmarks/fpga.py --variants chosen+a8   # re-measure some settings, merged into the JSON
    python benchmarks/fpga.py --table          # re-print the table from the JSON

Prints a table and writes benchmarks/results/fpga.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # benchmarks/onnx.py shadows `onnx`

import numpy as np  # noqa: E402

from ternkit.core import load_dataset, load_model  # noqa: E402
from ternkit.export.qonnx.backend import _WEIGHTED  # noqa: E402
from ternkit.export.qonnx.export import export_qonnx  # noqa: E402
from ternkit.export.qonnx.graph import quantised_forward  # noqa: E402
from ternkit.export.qonnx.hls import hls4ml_model, weight_storage  # noqa: E402

OUT = HERE / "results" / "fpga.json"
MODELS = {"mlp": ("mlp:256", 10), "cnn": ("cnn:8c5s2-16c5s2-64", 8)}
VARIANTS = {"chosen": {}, "chosen+a8": {"act_bits": 8}, "fixed<16,6>": {"uniform": "fixed<16,6>"},
            "fixed<32,12>": {"uniform": "fixed<32,12>"}}


def train(name: str) -> Path:
    spec, epochs = MODELS[name]
    out = HERE / "out" / f"fpga_{name}.tern"
    if not out.exists():
        subprocess.run([sys.executable, "-m", "ternkit", "train", "--dataset", "mnist-sample", "--model", spec,
                        "--method", "conntra", "--epochs", str(epochs), "--seed", "0", "--quiet", "--out",
                        str(out)], check=True)
    return out


def measure(name: str, test: str, n: int, variants: list[str]) -> dict:
    model = load_model(train(name))
    data = load_dataset(test)
    x, y = data.x[:n], data.y[:n]
    calib = load_dataset("mnist-sample").spread(64).x  # training images set the ranges (never the test set)
    ref = model.forward(x)
    t0 = time.perf_counter()
    q = export_qonnx(model, None, check_samples=x)
    row = {"model": name, "spec": MODELS[name][0], "samples": int(n), "reference_accuracy":
           float((ref.argmax(1) == y).mean()), "max_logit": float(np.abs(ref).max()),
           "qonnx_max_abs_diff": q.max_abs_diff, "qonnx_seconds": time.perf_counter() - t0, "hls4ml": {}}
    for variant in variants:
        kw = VARIANTS[variant]
        run = hls4ml_model(model, calib, **kw)
        try:
            t1 = time.perf_counter()
            out = run.predict(x)
            seconds = time.perf_counter() - t1
            storage = weight_storage(run)
        finally:
            run.close()
        twin = ref if run.act is None else quantised_forward(model, x, run.act)
        weights = [p for r in storage if r["class"] in _WEIGHTED for p in r["params"] if p["name"] == "weight"]
        row["hls4ml"][variant] = {
            "agreement": float((out.argmax(1) == ref.argmax(1)).mean()), "accuracy": float((out.argmax(1) == y).mean()),
            "max_abs_diff": float(np.abs(out - twin).max()), "max_abs_diff_reference": float(np.abs(out - ref).max()),
            "weight_types": sorted({p["type"] for p in weights}), "weight_layers": len(weights),
            "weight_bits": int(sum(p["total_bits"] for p in weights)),
            "parameter_bits": int(sum(p["total_bits"] for r in storage for p in r["params"])),
            "compile_seconds": run.compile_seconds, "predict_samples_per_second": n / max(seconds, 1e-9),
            "layers": storage}
        print(f"  {name} {variant}: agreement {row['hls4ml'][variant]['agreement']:.4f}", flush=True)
    return row


def table(res: dict) -> str:
    lines = [f"{res['samples']} official MNIST test images; hls4ml {res['versions']['hls4ml']}, qonnx "
             f"{res['versions']['qonnx']}, {res['machine']}",
             "| model | qonnx max \\|Δ\\| | hls4ml precisions | agreement | max \\|Δ\\| | accuracy "
             "| dense/conv weights | weight bits | all parameter bits | compile s |",
             "| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for row in res["rows"]:
        for variant, v in row["hls4ml"].items():
            lines.append(f"| {row['model']} ({row['spec']}) | {row['qonnx_max_abs_diff']:.1e} | {variant} | "
                         f"{100 * v['agreement']:.1f} % | {v['max_abs_diff']:.2g} | {100 * v['accuracy']:.1f} % | "
                         f"{', '.join(t.replace(',0>', '>') for t in v['weight_types'])} | {v['weight_bits']:,} | "
                         f"{v['parameter_bits']:,} | {v['compile_seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", default="idx:/work/shared/datasets/mnist")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--only", default="mlp,cnn")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="hls4ml settings to measure (others kept)")
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(OUT.read_text())))
        return
    import hls4ml

    from ternkit.export.qonnx.execute import qonnx_version

    variants = args.variants.split(",")
    rows = [measure(name, args.test, args.n, variants) for name in args.only.split(",")]
    if OUT.exists() and set(variants) != set(VARIANTS):  # merge into the earlier run
        old = {r["model"]: r for r in json.loads(OUT.read_text())["rows"]}
        for r in rows:
            if r["model"] in old:
                merged = old[r["model"]]["hls4ml"]
                merged.update(r["hls4ml"])
                r["hls4ml"] = {v: merged[v] for v in VARIANTS if v in merged}
    res = {"samples": args.n, "test": args.test, "machine": f"{platform.machine()}, {platform.python_version()}",
           "versions": {"hls4ml": hls4ml.__version__, "qonnx": qonnx_version()}, "rows": rows}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    print(table(res))


if __name__ == "__main__":
    main()
