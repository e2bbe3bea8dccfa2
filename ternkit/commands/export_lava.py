"""`ternkit export lava MODEL -o OUT.lava.json [--neuron sigma-delta|if] [--timesteps T] [--float]
[--calibrate DATASET]`: write the Lava process graph as versioned JSON (reloadable, validated on load)."""

from __future__ import annotations

import argparse

import numpy as np

from ternkit.core import ArtifactError, OptionError, TernaryModel, load_dataset, load_model
from ternkit.core.atomic import check_writable
from ternkit.core.data import is_builtin

CALIBRATION_SAMPLES = 2000


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lava", help="export the Lava process graph (JSON) of a ternary model",
                       description="Map a .tern model to Lava processes (Dense/Conv synapses, sigma-delta or "
                       "integrate-and-fire neurons, a readout) with fixed-point parameters for Loihi 2, and write "
                       "the graph as JSON. Units, shifts and thresholds are set from calibration data.")
    p.add_argument("model", help="a .tern artifact")
    p.add_argument("-o", "--out", required=True, help="the .lava.json file to write")
    add_graph_options(p)
    p.add_argument("--float", dest="float_sim", action="store_true",
                   help="write the floating-point graph (Lava's floating_pt models) instead of fixed point")
    p.set_defaults(run=run)


def add_graph_options(p: argparse.ArgumentParser) -> None:
    """Options shared with `ternkit simulate` (the graph it builds is the one export writes)."""
    p.add_argument("--neuron", choices=("sigma-delta", "if"), default="sigma-delta",
                   help="sigma-delta: graded-spike ReLU neurons (exact); if: rate-coded integrate-and-fire")
    p.add_argument("--timesteps", type=int, default=32, help="rate-coding timesteps per sample for --neuron if "
                   "(default 32)")
    p.add_argument("--calibrate", metavar="DATASET", default=None,
                   help="data that sets units and thresholds (default: the training part of the model's dataset, "
                   "if it is a bundled one: iris, digits, mnist-sample)")
    p.add_argument("--percentile", default="100",
                   help="threshold balancing for --neuron if: this percentile of each layer's activations "
                   "(default 100: the maximum), or 'auto': the best of 100..95 on held-out calibration data")


def _provenance_number(value, field: str, where: str, integer: bool) -> float:
    """A training setting from a model's provenance, which is data from the model's author: checked."""
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or abs(value) > 2**63 or not np.isfinite(float(value)):
        raise ArtifactError(f"{where}: provenance field {field} must be {'an integer' if integer else 'a number'}, "
                            f"got {str(value)[:40]!r}")
    return value


def calibration_data(model: TernaryModel, spec: str | None, n: int = CALIBRATION_SAMPLES,
                     held_out: int = 0, where: str = "the model") -> tuple[np.ndarray, np.ndarray, str]:
    if spec is None:
        # provenance is data, never a file to follow: only a bundled training set is used without --calibrate
        prov = model.provenance if isinstance(model.provenance, dict) else {}
        cfg = prov.get("config") if isinstance(prov.get("config"), dict) else {}
        named = prov.get("dataset")
        if not isinstance(named, str):
            raise OptionError(f"{where} does not name its training dataset; give --calibrate DATASET")
        if not is_builtin(named):
            raise OptionError(f"give --calibrate DATASET: {where} was trained on {named[:200]!r}, which is not a "
                              "bundled dataset, and a model never makes ternkit read a file")
        fraction = float(_provenance_number(cfg.get("val_fraction", 0.2), "config.val_fraction", where, False))
        seed = int(_provenance_number(cfg.get("seed", prov.get("seed", 0)) or 0, "config.seed", where, True))
        if not 0 <= fraction < 1 or not 0 <= seed < 2**32:
            raise ArtifactError(f"{where}: provenance seed {seed} / val_fraction {fraction} out of range")
        spec = f"{named}@train:{seed}:{fraction}" if fraction > 0 else named  # 0: all trained on
    data = load_dataset(spec)
    if data.shape != tuple(model.input.shape):
        raise OptionError(f"calibration data {spec} has samples of shape {data.shape}, the model expects "
                          f"{tuple(model.input.shape)}")
    perm = np.random.default_rng(0).permutation(len(data))
    if held_out:  # keep at least a quarter of the data for calibration
        n = min(n, max(1, len(data) - held_out, 3 * len(data) // 4))
    return data.x[np.sort(perm[:n])], data.x[np.sort(perm[n:n + held_out])], spec


def graph_for(model: TernaryModel, args: argparse.Namespace) -> dict:
    from ternkit.export.lava_graph import build_graph, choose_percentile

    auto = args.percentile == "auto"
    try:
        percentile = 100.0 if auto else float(args.percentile)
    except ValueError:
        raise OptionError(f"--percentile must be a number in (0, 100] or 'auto', got {args.percentile!r}") from None
    if not 0 < percentile <= 100:
        raise OptionError(f"--percentile must be in (0, 100], got {args.percentile}")
    x, held_out, spec = calibration_data(model, args.calibrate, held_out=1000 if auto else 0,
                                         where=str(getattr(args, "model", "the model")))
    kw = {"neuron": args.neuron, "timesteps": args.timesteps, "fixed": not args.float_sim}
    if auto and args.neuron == "if":
        percentile = choose_percentile(model, x, held_out, args.timesteps, fixed=not args.float_sim)
    return build_graph(model, x, percentile=percentile, source=spec, **kw)


def run(args: argparse.Namespace) -> int:
    from ternkit.export.lava_graph import save_graph

    if not args.out.endswith(".json"):
        raise OptionError(f"-o {args.out}: the output file name must end in .json (e.g. model.lava.json)")
    model = load_model(args.model)
    check_writable(args.out)  # before calibration, not after
    graph = graph_for(model, args)
    save_graph(graph, args.out)
    bits = sorted({layer["synapse"]["num_weight_bits"] for layer in graph["layers"]} - {None})
    print(f"wrote {args.out} ({graph['numerics']}, {graph['neuron']} neurons, {len(graph['layers'])} layers, "
          f"{graph['window']} timesteps per sample (+{graph['latency']} latency), "
          f"weight bits {bits or 'float'}; calibrated on {graph['source']})")
    return 0
