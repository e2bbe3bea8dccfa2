"""`ternkit simulate MODEL --backend lava|onnx --dataset SPEC [--limit N] [--neuron sigma-delta|if]
[--timesteps T] [--float-sim] [--graph G.lava.json] [--json] [-o activity.json]`.

Accuracy, agreement with the numpy reference (`TernaryModel.forward`), throughput and activity per inference,
written as a "ternkit-activity" record that `ternkit report` reads (schema: docs/lava.md).
"""

from __future__ import annotations

import argparse
import json

from ternkit.commands import SUMMARIES
from ternkit.commands.export_lava import add_graph_options
from ternkit.core import OptionError, load_model
from ternkit.core.atomic import check_writable, write_text


def _backends() -> tuple[str, ...]:
    from ternkit.export.simulate import BACKENDS

    return tuple(BACKENDS)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help=SUMMARIES["simulate"],
                       description="Simulate a .tern model: Lava (neuromorphic, "
                       "fixed point by default) or onnxruntime; report accuracy, agreement with the numpy "
                       "reference, samples/s and activity (messages, synaptic ops, neuron updates) per inference.")
    p.add_argument("model", help="a .tern artifact")
    p.add_argument("--backend", choices=("lava", "onnx", "c", "cortex-m4"), default="lava",
                   help="lava, onnx, c (the C export built with the host cc) or cortex-m4 (cross-built, run in qemu)")
    p.add_argument("--dataset", default="mnist-sample", help="dataset spec (default: mnist-sample)")
    p.add_argument("--limit", type=int, default=None, help="simulate N samples spread evenly over the dataset")
    add_graph_options(p)
    p.add_argument("--float-sim", action="store_true", help="Lava floating-point models instead of fixed point")
    p.add_argument("--graph", metavar="G.lava.json", help="simulate this exported graph instead of building one")
    p.add_argument("--nbits", action="store_true",
                   help="--backend onnx: run the --nbits export (MatMulNBits, 2-bit weights in RAM) instead of INT2")
    p.add_argument("--json", action="store_true", help="print the activity record as JSON")
    p.add_argument("-o", "--out", metavar="ACTIVITY.json", help="write the activity record here")
    p.add_argument("--build", metavar="DIR", help="--backend c|cortex-m4: keep the build here (model.c, model.o, "
                   "firmware.elf, mcu.json with the measured figures; `ternkit report --build DIR` reads it)")
    p.set_defaults(run=run)


def table(r: dict) -> str:
    head = (f"{r['backend']}{' ' + r['neuron'] if r['neuron'] else ''}"
            f"{' (' + r['numerics'] + ')' if 'numerics' in r else ''} on {r['dataset']}: {r['samples']} samples, "
            f"accuracy {100 * r['accuracy']:.2f} %, agreement with the reference {100 * r['agreement']:.2f} %, "
            f"{r['samples_per_second']:.1f} samples/s, {r['timesteps']} timesteps per inference")
    rows = ["layer  kind     neurons  fan-out  messages/inf  synops/inf  updates/inf  input sparsity"]
    for e in r["layers"]:
        rows.append(f"{e['index']:>5}  {e['kind']:<7} {e['neurons']:>8} {e['fan_out']:>8.1f} "
                    f"{e['messages_per_inference']:>13.1f} {e['synaptic_ops_per_inference']:>11.0f} "
                    f"{e['neuron_updates_per_inference']:>12.0f} {100 * e['input_activation_sparsity']:>13.1f} %")
    ratio = r["synaptic_ops_per_inference"] / max(r["dense_macs_per_inference"], 1)
    rows.append(f"total synaptic ops/inference {r['synaptic_ops_per_inference']:.0f} vs dense MACs "
                f"{r['dense_macs_per_inference']} ({100 * ratio:.1f} %)")
    return "\n".join([head, *rows])


def run(args: argparse.Namespace) -> int:
    from ternkit.export.simulate import simulate, simulation_data

    if args.out and not args.out.endswith(".json"):
        raise OptionError(f"-o {args.out}: the activity file name must end in .json")
    if args.backend != "lava" and (args.graph or args.float_sim):
        raise OptionError("--graph and --float-sim apply to --backend lava only")
    if args.backend == "lava" and args.nbits:
        raise OptionError("--nbits applies to --backend onnx only")
    options = {"nbits": args.nbits} if args.backend == "onnx" else {}
    if args.backend == "lava":
        options = {"neuron": args.neuron, "timesteps": args.timesteps, "fixed": not args.float_sim,
                   "calibrate": args.calibrate, "percentile": args.percentile, "where": str(args.model)}
    if args.build and args.backend not in ("c", "cortex-m4"):
        raise OptionError("--build applies to --backend c and cortex-m4 only")
    if args.backend in ("c", "cortex-m4"):
        options = {"calibrate": args.calibrate, "build": args.build, "where": str(args.model)}
    model = load_model(args.model)
    if args.out:
        check_writable(args.out)  # before the simulation, not after
    if args.graph:
        from ternkit.export.lava.graph import load_graph

        options.update(graph=load_graph(args.graph), graph_where=str(args.graph))
    if args.backend == "lava":  # lava-nc is optional: say how to install it (after the input checks, before any work)
        from ternkit.export.lava.compat import require_lava

        require_lava()
    data = simulation_data(model, args.dataset, args.limit)
    record = simulate(model, data, args.backend, model_path=str(args.model), dataset=args.dataset, **options)
    if args.out:
        write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(json.dumps(record) if args.json else table(record))
    if not args.json and args.backend in ("c", "cortex-m4"):
        from ternkit.export.c.sim import c_summary

        print(c_summary(record))
    return 0
