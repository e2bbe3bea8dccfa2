"""Lava benchmark: agreement with the reference, throughput and activity of ternary networks on Lava's Loihi 2
CPU simulator, next to onnxruntime on the same samples.

    .venv/bin/python benchmarks/lava.py [--model M.tern] [--test idx:DIR:t10k] [--n 1000] [--T 4,8,16,32,64]
                                        [--cnn C.tern] [--quick]

Without --model it trains the MNIST MLP 784-256-10 of the training benchmark (CoNNTrA, mnist-sample, 30 epochs,
all 5,000 images, seed 0) into benchmarks/out/lava_mlp.tern. Calibration (units, IF thresholds) uses the model's
training data, never the test images. Every Lava run is also checked bit for bit against the numpy emulation of
the same fixed-point graph. Prints a table; writes benchmarks/out/lava.json and lava_agreement_vs_T.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

# this file is named lava.py: keep its own folder off sys.path so `import lava` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from ternkit.core import TernaryModel, load_dataset, load_model, save_model  # noqa: E402
from ternkit.export.activity import activations_activity  # noqa: E402
from ternkit.export.lava.compat import lava_version  # noqa: E402
from ternkit.export.lava.graph import build_graph, choose_percentile, emulate  # noqa: E402
from ternkit.export.lava.sim import lava_activity, simulate_graph  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
DEFAULT_TEST = f"idx:{HERE.parent.parent / 'shared' / 'datasets' / 'mnist'}:t10k"


def trained_mlp(path: Path) -> TernaryModel:
    if path.exists():
        return load_model(path)
    from ternkit.trainer import TrainConfig, train

    cfg = TrainConfig(dataset="mnist-sample", model="mlp:256", method="conntra", epochs=30, batch_size=64,
                      val_fraction=0.0, seed=0)
    model = train(cfg, progress=False).model
    save_model(model, path)
    return model


def calibration(model: TernaryModel, n: int = 2000, held_out: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(calibration images, other training images for choosing the IF threshold percentile): never test data."""
    data = load_dataset(model.provenance.get("dataset", "mnist-sample"))
    perm = np.random.default_rng(0).permutation(len(data))
    return data.x[np.sort(perm[:n])], data.x[np.sort(perm[n:n + held_out])]


def onnx_run(model: TernaryModel, x: np.ndarray) -> dict:
    import tempfile

    from ternkit.export.onnx.export import export_onnx
    from ternkit.export.onnx.infer import OnnxModel

    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, Path(tmp) / "m.onnx", "int2")
        m = OnnxModel(Path(tmp) / "m.onnx", threads=1)
        m.forward(x[:1])
        t0 = time.perf_counter()
        logits = np.concatenate([m.forward(x[i:i + 1]) for i in range(len(x))])
        t1 = time.perf_counter()
    layers, macs = activations_activity(model, x)
    return {"pred": logits.argmax(1), "samples_per_second": len(x) / (t1 - t0),
            "synops": sum(e["synaptic_ops_per_inference"] for e in layers), "dense_macs": macs}


def lava_run(model: TernaryModel, calib: np.ndarray, x: np.ndarray, ref: np.ndarray, y: np.ndarray, **kw) -> dict:
    g = build_graph(model, calib, **kw)
    t0 = time.perf_counter()
    run = simulate_graph(g, x)
    wall = time.perf_counter() - t0
    exact = None
    if g["numerics"] == "fixed_pt":
        out, _ = emulate(g, x)
        exact = bool(np.array_equal(out, run.readout))
    layers = lava_activity(g, run)
    pred = run.readout.argmax(1)
    return {"neuron": g["neuron"], "numerics": g["numerics"], "timesteps": g["timesteps"],
            "percentile": kw.get("percentile", 100.0),
            "steps_per_sample": g["window"], "agreement": float((pred == ref).mean()),
            "accuracy": float((pred == y).mean()), "samples_per_second": len(x) / wall,
            "steady_samples_per_second": run.steady_samples_per_second, "startup_seconds": run.startup_seconds,
            "wall_seconds": wall, "bit_exact_vs_emulation": exact,
            "synops": sum(e["synaptic_ops_per_inference"] for e in layers),
            "messages": sum(e["messages_per_inference"] for e in layers),
            "neuron_updates": sum(e["neuron_updates_per_inference"] for e in layers),
            "dense_macs": sum(layer["dense_macs"] for layer in g["layers"]),
            "weight_bits": [layer["synapse"]["num_weight_bits"] for layer in g["layers"]], "layers": layers}


def plot(rows: list[dict], balanced: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [r["timesteps"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(ts, [100 * r["agreement"] for r in rows], "o-", label="IF, threshold = max activation")
    ax.plot(ts, [100 * r["agreement"] for r in balanced], "s--", label="IF, percentile chosen on train data")
    ax.axhline(97, ls=":", c="gray", label="target 97 %")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("timesteps T per sample")
    ax.set_ylabel("agreement with reference (%)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def print_table(result: dict) -> None:
    macs = result["sigma_delta"]["dense_macs"]
    print(f"{result['model']} on {result['test']}, {result['samples']} images; "
          f"reference accuracy {100 * result['reference_accuracy']:.2f} %")
    print("| run | T | pct | steps/sample | agreement | accuracy | samples/s (wall) | steady samples/s | × onnxruntime "
          "| synaptic ops/inf | ÷ dense MACs | bit-exact |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    ort_sps = result["onnx"]["samples_per_second"]
    rows = [("sigma-delta fixed", result["sigma_delta"]), ("sigma-delta float", result["sigma_delta_float"])]
    rows += [("IF fixed", r) for r in result["if"]] + [("IF fixed, balanced", r) for r in result["if_balanced"]]
    if "cnn_sigma_delta" in result:
        rows.append(("CNN sigma-delta fixed", result["cnn_sigma_delta"]))
    for name, r in rows:
        pct = f"{r['percentile']:g}" if r["neuron"] == "if" else "-"
        print(f"| {name} | {r['timesteps']} | {pct} | {r['steps_per_sample']} | {100 * r['agreement']:.2f} % | "
              f"{100 * r['accuracy']:.2f} % | {r['samples_per_second']:.1f} | {r['steady_samples_per_second']:.1f} | "
              f"1/{ort_sps / r['samples_per_second']:.0f} | {r['synops']:.0f} | {r['synops'] / r['dense_macs']:.3f} | "
              f"{'yes' if r['bit_exact_vs_emulation'] else '-' if r['bit_exact_vs_emulation'] is None else 'NO'} |")
    o = result["onnx"]
    print(f"| onnxruntime INT2, batch 1 | - | - | - | {100 * o['agreement']:.2f} % | - | {ort_sps:.0f} | - | 1 | "
          f"{o['synops']:.0f} (non-zero MACs) | {o['synops'] / macs:.3f} | - |")
    print(f"dense MACs per inference: {macs}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--cnn", type=Path, default=None, help="also run sigma-delta on this conv model")
    ap.add_argument("--test", default=DEFAULT_TEST)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--T", default="4,8,16,32,64")
    ap.add_argument("--quick", action="store_true", help="100 samples, T = 8,32")
    ap.add_argument("--table", action="store_true", help="only print the table of benchmarks/out/lava.json")
    args = ap.parse_args()
    if args.table:
        print_table(json.loads((OUT / "lava.json").read_text()))
        return
    if args.quick:
        args.n, args.T = 100, "8,32"
    OUT.mkdir(exist_ok=True)
    model = load_model(args.model) if args.model else trained_mlp(OUT / "lava_mlp.tern")
    test = load_dataset(args.test)
    x, y = test.x[:args.n], test.y[:args.n]
    ref = model.predict(x)
    calib, held_out = calibration(model)
    result = {"machine": platform.platform(), "python": platform.python_version(), "lava_nc": lava_version(),
              "model": str(args.model or OUT / "lava_mlp.tern"), "test": args.test, "samples": len(x),
              "reference_accuracy": float((ref == y).mean())}
    ox = onnx_run(model, x)
    result["onnx"] = {k: v for k, v in ox.items() if k != "pred"} | {"agreement": float((ox["pred"] == ref).mean())}
    result["sigma_delta"] = lava_run(model, calib, x, ref, y)
    result["sigma_delta_float"] = lava_run(model, calib, x, ref, y, fixed=False)
    ts = [int(t) for t in args.T.split(",")]
    result["if"] = [lava_run(model, calib, x, ref, y, neuron="if", timesteps=t) for t in ts]
    result["if_balanced"] = [lava_run(model, calib, x, ref, y, neuron="if", timesteps=t,
                                      percentile=choose_percentile(model, calib, held_out, t)) for t in ts]
    if args.cnn:
        cnn = load_model(args.cnn)
        result["cnn_sigma_delta"] = lava_run(cnn, calibration(cnn)[0], x, cnn.predict(x), y)
    (OUT / "lava.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result["if"], result["if_balanced"], OUT / "lava_agreement_vs_T.png")

    print_table(result)
    print(f"wrote {OUT / 'lava.json'} and {OUT / 'lava_agreement_vs_T.png'}")


if __name__ == "__main__":
    main()
