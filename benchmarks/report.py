"""Memory and energy per target for an MNIST MLP and CNN, ternary vs the float32 baseline.

Trains (unless given) MLP 784-256-10 and CNN cnn:8c5s2-16c5s2-64 with CoNNTrA on mnist-sample (10 epochs,
seed 0), simulates each in Lava (sigma-delta, fixed point) for the activity record, and reports on the official
MNIST test set: operation counts and activation sparsity from the numpy reference on all 10,000 images,
neuromorphic counts from the Lava record. Prints a table; JSON in benchmarks/out/report.json and each full
report in benchmarks/out/report_<model>/.

    .venv/bin/python benchmarks/report.py [--mlp M.tern] [--cnn C.tern] [--sim-limit 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ternkit.core import load_dataset, load_model
from ternkit.core.atomic import write_text
from ternkit.targets import build_report, load_target, read_activity, write_report

OUT = Path(__file__).resolve().parent / "out"
TEST = "idx:/work/shared/datasets/mnist"
MODELS = {"mlp": "mlp:256", "cnn": "cnn:8c5s2-16c5s2-64"}
TARGETS = ("loihi", "loihi2", "mcu", "cpu-fp32")


def _ternkit(*argv: str) -> None:
    cmd = [sys.executable, "-m", "ternkit", *argv]
    print("$ ternkit " + " ".join(argv), flush=True)
    subprocess.run(cmd, check=True)


def _model(name: str, given: str | None, epochs: int) -> Path:
    if given:
        return Path(given)
    path = OUT / f"report_{name}.tern"
    if not path.exists():
        _ternkit("train", "--dataset", "mnist-sample", "--model", MODELS[name], "--method", "conntra",
                 "--epochs", str(epochs), "--seed", "0", "--quiet", "--out", str(path))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlp")
    ap.add_argument("--cnn")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--sim-limit", type=int, default=300, help="test images streamed through Lava")
    ap.add_argument("--test", default=TEST)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    test = load_dataset(args.test)
    targets = [load_target(t) for t in TARGETS]
    results = {}
    for name, given in (("mlp", args.mlp), ("cnn", args.cnn)):
        path = _model(name, given, args.epochs)
        act_path = OUT / f"report_{name}.activity.json"
        _ternkit("simulate", str(path), "--backend", "lava", "--dataset", args.test, "--limit", str(args.sim_limit),
                 "-o", str(act_path))
        model = load_model(path)
        activity = read_activity(act_path, len(model.weight_layers))
        r = build_report(model, targets, x=test.x, activity=activity, model_path=str(path), dataset=args.test)
        write_report(r, OUT / f"report_{name}")
        results[name] = {
            "model": str(path), "spec": MODELS[name] if not given else None,
            "accuracy_test": float((model.predict(test.x) == test.y).mean()),
            "lava": {"samples": activity.samples, "agreement": activity.agreement, "accuracy": activity.accuracy},
            "memory": {k: r["memory"][k] for k in (
                "weights", "parameters", "weight_bytes", "parameter_bytes", "entropy_parameter_bytes",
                "float32_parameter_bytes", "neurobench_footprint_bytes", "bits_per_weight", "entropy_bits_per_weight",
                "bits_per_learned_parameter", "entropy_bits_per_learned_parameter", "compression_vs_float32",
                "compression_vs_float64", "peak_activation_elements")},
            "operations": r["operations"]["totals"],
            "float_baseline_pj": r["float_baseline"]["per_inference_pj"],
            "targets": {t["name"]: {"pj": t["energy"]["per_inference_pj"],
                                    "ratio_vs_float": t["energy"]["ratio_vs_float"], "fits": t["fit"]["fits"],
                                    "dense_alternative_pj": (t["energy"]["dense_alternative"] or {}).get(
                                        "per_inference_pj"),
                                    "use": t["fit"].get("cores_needed", t["fit"].get("weight_memory_used"))}
                        for t in r["targets"]},
        }
    write_text(OUT / "report.json", json.dumps({"test": args.test, "targets": TARGETS, "results": results}, indent=2))
    _print(results)
    return 0


def _print(results: dict) -> None:
    print("\nmodel  target     fits  use                 energy/inf   float32 base   ratio     x less  dense alt")
    for name, res in results.items():
        for t, e in res["targets"].items():
            use = f"{e['use']} cores" if isinstance(e["use"], int) else f"{100 * e['use']:.1f} % of flash/DRAM"
            print(f"{name:<6} {t:<10} {'yes' if e['fits'] else 'no':<5} {use:<19} {e['pj'] / 1e3:>9.2f} nJ "
                  f"{res['float_baseline_pj'] / 1e3:>10.2f} nJ {e['ratio_vs_float']:>8.4f} "
                  f"{1 / e['ratio_vs_float']:>8.1f}  "
                  + ("-" if e["dense_alternative_pj"] is None else f"{e['dense_alternative_pj'] / 1e3:.2f} nJ"))
    print("\nmodel  weights   stored B  float32 B  bits/weight  entropy bits/w  bits/learned param  x f32  x f64  "
          "entropy bits/param  test acc")
    for name, res in results.items():
        m = res["memory"]
        print(f"{name:<6} {m['weights']:>8,} {m['parameter_bytes']:>9,} {m['float32_parameter_bytes']:>10,} "
              f"{m['bits_per_weight']:>11.3f} {m['entropy_bits_per_weight']:>15.3f} "
              f"{m['bits_per_learned_parameter']:>19.3f} {m['compression_vs_float32']:>6.1f} "
              f"{m['compression_vs_float64']:>6.1f} {m['entropy_bits_per_learned_parameter']:>19.3f} "
              f"{100 * res['accuracy_test']:>8.2f} %")
    for name, res in results.items():
        o = res["operations"]
        print(f"{name}: dense MACs {o['dense_macs']:,}, non-zero-weight MACs {o['nonzero_weight_macs']:,}, "
              f"effective MACs {o['effective_macs']:,.0f}, connection sparsity {o['connection_sparsity']:.3f}, "
              f"activation sparsity {o['activation_sparsity']:.3f}; Lava agreement {res['lava']['agreement']}")


if __name__ == "__main__":
    sys.exit(main())
