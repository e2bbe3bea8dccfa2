"""`ternkit export lava MODEL -o OUT.lava.json [--neuron sigma-delta|if] [--timesteps T] [--float]
[--calibrate DATASET]`: write the Lava process graph as versioned JSON (reloadable, validated on load)."""

from __future__ import annotations

import argparse

from ternkit.core import OptionError, TernaryModel, load_model
from ternkit.core.atomic import check_writable


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


def graph_for(model: TernaryModel, args: argparse.Namespace) -> dict:
    """The graph the options describe (`ternkit.export.lava.export.lava_graph_for`)."""
    from ternkit.export.lava.export import lava_graph_for

    return lava_graph_for(model, neuron=args.neuron, timesteps=args.timesteps, fixed=not args.float_sim,
                          calibrate=args.calibrate, percentile=args.percentile,
                          where=str(getattr(args, "model", "the model")))


def run(args: argparse.Namespace) -> int:
    from ternkit.export.lava.export import weight_bits
    from ternkit.export.lava.graph import save_graph

    if not args.out.endswith(".json"):
        raise OptionError(f"-o {args.out}: the output file name must end in .json (e.g. model.lava.json)")
    model = load_model(args.model)
    check_writable(args.out)  # before calibration, not after
    graph = graph_for(model, args)
    save_graph(graph, args.out)
    bits = sorted(set(weight_bits(graph)) - {None})
    print(f"wrote {args.out} ({graph['numerics']}, {graph['neuron']} neurons, {len(graph['populations'])} "
          f"populations, {sum(len(p['synapses']) for p in graph['populations'])} synapse groups, "
          f"{graph['window']} timesteps per sample (+{graph['latency']} latency), "
          f"weight bits {bits or 'float'}; calibrated on {graph['source']})")
    return 0
