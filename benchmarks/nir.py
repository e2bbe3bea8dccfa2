"""NIR benchmark: argmax agreement of the rate-coded NIR network (IF neurons, reset to zero) with the reference
forward pass against T, on the official MNIST test set; and Norse against ternkit's NIR simulator.

    .venv/bin/python benchmarks/nir.py [--test idx:DIR:t10k] [--n N] [--T 16,32,64,128] [--norse 200] [--quick]
                                       [--mlp M.tern] [--cnn C.tern] [--pool-cnn P.tern]

Models (trained here unless given; CoNNTrA, mnist-sample, 10 epochs, seed 0, into benchmarks/out/): the MLP
784-256-10 (`mlp:256`), the default small CNN (`cnn` = 16c5s2-32c5s2-100) and a CNN with average pooling
(`cnn:16c3s2-32c3s2-ap2`). Thresholds are calibrated for each T on 2,000 training images (the model's own
split), never on test images. For each model at T = 32 the .nir file is also written, read back with
`nir.read`, and run in Norse (nirtorch 2.6 `nir_to_torch` + Norse's mapping) on `--norse` test images: the
spike counts must equal ternkit's. Prints a table; writes benchmarks/out/nir.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

# this file is named nir.py: keep its own folder off sys.path so `import nir` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from ternkit.core import TernaryModel, load_dataset, load_model, save_model  # noqa: E402
from ternkit.export.calibration import calibration_data  # noqa: E402
from ternkit.export.nir.calibrate import calibrate  # noqa: E402
from ternkit.export.nir.graph import build_graph  # noqa: E402
from ternkit.export.nir.sim import run_batches  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
DEFAULT_TEST = f"idx:{HERE.parent.parent / 'shared' / 'datasets' / 'mnist'}:t10k"
SPECS = {"mlp": "mlp:256", "cnn": "cnn", "pool-cnn": "cnn:16c3s2-32c3s2-ap2"}


def trained(name: str, path: Path | None) -> tuple[TernaryModel, str]:
    path = path or OUT / f"nir_{name}.tern"
    if path.exists():
        return load_model(path), str(path)
    from ternkit.trainer import TrainConfig, train

    cfg = TrainConfig(dataset="mnist-sample", model=SPECS[name], method="conntra", epochs=10, seed=0)
    model = train(cfg, progress=False).model
    OUT.mkdir(parents=True, exist_ok=True)
    save_model(model, path)
    return model, str(path)


def norse_check(model: TernaryModel, graph, x: np.ndarray, T: int) -> dict:
    """Write the graph, read it with nir.read, run it in Norse; compare spike counts with ternkit's."""
    try:
        import nir
        import nirtorch
        import torch
        from norse.torch.utils.import_nir import _import_norse_module as norse_map
    except ImportError as e:
        return {"skipped": f"norse not installed ({e})"}
    from ternkit.export.nir.nirfile import write_nir

    def affine(n):
        m = torch.nn.Linear(n.weight.shape[1], n.weight.shape[0])
        m.weight.data = torch.from_numpy(np.asarray(n.weight, np.float32))
        m.bias.data = torch.from_numpy(np.asarray(n.bias, np.float32))
        return m

    with tempfile.TemporaryDirectory() as tmp:
        write_nir(graph, Path(tmp) / "m.nir")
        module = nirtorch.nir_to_torch(nir.read(Path(tmp) / "m.nir"), {
            nir.IF: norse_map, nir.Conv2d: norse_map, nir.SumPool2d: norse_map, nir.Flatten: norse_map,
            nir.Affine: affine})
    xn = model.input.normalise(x)
    ours = run_batches(graph, xn, T).counts
    theirs = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in xn:  # one sample at a time: NIR's Flatten has no batch dimension
            state, total = None, 0
            for _ in range(T):
                out, state = module(torch.from_numpy(s), state)
                total = total + out
            theirs.append(total.numpy())
    seconds = time.perf_counter() - t0
    theirs = np.stack(theirs).astype(np.int64)
    return {"samples": len(x), "equal_samples": int((theirs == ours).all(1).sum()),
            "max_count_difference": int(np.abs(theirs - ours).max()), "norse_seconds": round(seconds, 2)}


def run_model(name: str, model: TernaryModel, x: np.ndarray, y: np.ndarray, Ts: list[int], norse_n: int) -> dict:
    ref = model.predict(x)
    calib, _, source = calibration_data(model, None)
    rows = []
    for T in Ts:
        for integer in ((False, True) if T == 32 else (False,)):
            t0 = time.process_time()
            params = calibrate(model, calib, T, integer_weights=integer)
            t1 = time.process_time()
            graph = build_graph(model, params, integer_weights=integer, timesteps=T)
            run = run_batches(graph, model.input.normalise(x), T)
            t2 = time.process_time()
            pred = run.counts.argmax(1)
            srt = np.sort(run.counts, 1)
            rows.append({"T": T, "integer_weights": integer, "agreement": float((pred == ref).mean()),
                         "accuracy": float((pred == y).mean()), "ties": float((srt[:, -1] == srt[:, -2]).mean()),
                         "spikes_per_inference": float(sum(s.sum() for s in run.spikes.values())) / len(x),
                         "calibration_cpu_s": round(t1 - t0, 2), "simulation_cpu_s": round(t2 - t1, 2)})
            if T == 32 and not integer and norse_n:
                rows[-1]["norse"] = norse_check(model, graph, x[:norse_n], T)
            print(f"  {name} T={T}{' integer' if integer else ''}: agreement {100 * rows[-1]['agreement']:.2f} %",
                  flush=True)
    return {"reference_accuracy": float((ref == y).mean()), "calibration": source, "rows": rows,
            "nodes": [n.op.kind for n in model.nodes]}


def print_table(result: dict) -> None:
    print(f"\nNIR (IF, reset to zero) on {result['test']} ({result['samples']} images); thresholds calibrated per T")
    print("| model | T | weights | agreement | accuracy (ref.) | output ties | spikes/inference | Norse = ternkit |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for name, m in result["models"].items():
        for r in m["rows"]:
            n = r.get("norse")
            norse = "" if n is None else (n.get("skipped") or f"{n['equal_samples']}/{n['samples']} samples equal")
            print(f"| {name} | {r['T']} | {'integer' if r['integer_weights'] else 'a*q'} | "
                  f"{100 * r['agreement']:.2f} % | {100 * r['accuracy']:.2f} % ({100 * m['reference_accuracy']:.2f} %)"
                  f" | {100 * r['ties']:.1f} % | {r['spikes_per_inference']:.0f} | {norse} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--test", default=DEFAULT_TEST)
    ap.add_argument("--n", type=int, default=None, help="test images (default: all)")
    ap.add_argument("--T", default="16,32,64,128")
    ap.add_argument("--norse", type=int, default=200, help="test images run in Norse at T = 32 (0: none)")
    ap.add_argument("--quick", action="store_true", help="500 images, T = 32, the MLP only, 50 in Norse")
    ap.add_argument("--table", action="store_true", help="only print the table of the JSON file")
    ap.add_argument("--only", default=None, help="comma-separated models: " + ", ".join(SPECS))
    ap.add_argument("--json", default="nir.json", help="file name in benchmarks/out/ (default nir.json)")
    for name in SPECS:
        ap.add_argument(f"--{name}", type=Path, default=None, help=f"a trained model instead of {SPECS[name]}")
    a = ap.parse_args()
    if a.table:
        print_table(json.loads((OUT / a.json).read_text()))
        return
    names = ["mlp"] if a.quick else (a.only.split(",") if a.only else list(SPECS))
    if set(names) - set(SPECS):
        ap.error(f"--only takes {', '.join(SPECS)}")
    n = 500 if a.quick else a.n
    Ts = [32] if a.quick else [int(t) for t in a.T.split(",")]
    data = load_dataset(a.test)
    if n is not None:
        data = data.spread(n)
    result = {"test": a.test, "samples": len(data), "machine": platform.machine(), "models": {}}
    for name in names:
        model, path = trained(name, getattr(a, name.replace("-", "_")))
        print(f"{name}: {path}", flush=True)
        result["models"][name] = {"path": path, "spec": SPECS[name],
                                  **run_model(name, model, data.x, data.y, Ts, 50 if a.quick else a.norse)}
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / a.json).write_text(json.dumps(result, indent=1) + "\n")  # after each model: partial runs count
    print_table(result)
    print(f"wrote {OUT / a.json}")


if __name__ == "__main__":
    main()
