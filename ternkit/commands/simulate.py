"""`ternkit simulate MODEL --backend lava|onnx --dataset SPEC [--limit N] [--neuron sigma-delta|if]
[--timesteps T] [--float-sim] [--graph G.lava.json] [--json] [-o activity.json]`.

Accuracy, agreement with the numpy reference (`TernaryModel.forward`), throughput and activity per inference,
written as a "ternkit-activity" record that `ternkit report` reads (schema: docs/lava.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ternkit.commands import SUMMARIES
from ternkit.commands.export_lava import add_graph_options, graph_for
from ternkit.core import ArtifactError, Dataset, OptionError, TernaryModel, load_dataset, load_model
from ternkit.core.atomic import check_writable, write_text


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


def _data(model: TernaryModel, spec: str, limit: int | None) -> Dataset:
    data = load_dataset(spec)
    if limit is not None:
        if limit < 1:
            raise OptionError(f"--limit must be at least 1, got {limit}")
        data = data.spread(limit)
    if data.shape != tuple(model.input.shape):
        raise OptionError(f"{spec} has samples of shape {data.shape}, the model expects {tuple(model.input.shape)}")
    if len(data.labels) > model.num_classes:
        raise OptionError(f"{spec} has {len(data.labels)} classes, the model only {model.num_classes}")
    return data


def simulate_lava(model: TernaryModel, data: Dataset, args: argparse.Namespace) -> dict:
    from ternkit.export.activity import activity_record
    from ternkit.export.lava_compat import lava_version
    from ternkit.export.lava_graph import load_graph
    from ternkit.export.lava_sim import lava_activity, simulate_graph

    if args.graph:
        graph = load_graph(args.graph)
        if (graph["numerics"] == "floating_pt") != args.float_sim:
            raise OptionError(f"{args.graph} holds a {graph['numerics']} graph: "
                              f"{'add' if graph['numerics'] == 'floating_pt' else 'drop'} --float-sim")
        if graph["labels"] != list(model.labels) or graph["input"]["shape"] != list(model.input.shape):
            raise ArtifactError(f"{args.graph} was not exported from {args.model} (labels or input shape differ)")
        if [layer["index"] for layer in graph["layers"]] != [i for i, layer in enumerate(model.layers)
                                                              if layer.kind in ("dense", "conv2d")]:
            raise ArtifactError(f"{args.graph} does not match the layers of {args.model}")
    else:
        graph = graph_for(model, args)
    run_ = simulate_graph(graph, data.x)
    pred = run_.readout.argmax(1)
    ref = model.predict(data.x)
    return activity_record(
        backend="lava", neuron=graph["neuron"], timesteps=graph["window"], samples=run_.samples,
        accuracy=float((pred == data.y).mean()), agreement=float((pred == ref).mean()),
        samples_per_second=run_.samples_per_second, layers=lava_activity(graph, run_),
        dense_macs=sum(layer["dense_macs"] for layer in graph["layers"]),
        coding_timesteps=graph["timesteps"], numerics=graph["numerics"], model=str(args.model),
        model_fingerprint=model.fingerprint(),
        dataset=args.dataset, steady_samples_per_second=run_.steady_samples_per_second,
        startup_seconds=run_.startup_seconds, run_seconds=run_.run_seconds, chunks=run_.chunks,
        calibration=graph.get("source"), lava_version=lava_version(),
        weight_bits=[layer["synapse"]["num_weight_bits"] for layer in graph["layers"]])


def simulate_onnx(model: TernaryModel, data: Dataset, args: argparse.Namespace) -> dict:
    from ternkit.export.activity import activations_activity, activity_record
    from ternkit.export.onnx import export_onnx
    from ternkit.export.onnx_infer import OnnxModel

    with tempfile.TemporaryDirectory(prefix="ternkit-sim-") as tmp:
        path = Path(tmp) / "model.onnx"
        written = export_onnx(model, path, "nbits" if args.nbits else "int2").format
        onnx = OnnxModel(path)
        onnx.forward(data.x[:1])  # warm-up: session start-up is not per-sample cost
        t0 = time.perf_counter()
        logits = np.concatenate([onnx.forward(data.x[i:i + 1]) for i in range(len(data))])
        t1 = time.perf_counter()
        onnx.predict(data.x)
        t2 = time.perf_counter()
    pred, ref = logits.argmax(1), model.predict(data.x)
    layers, macs = activations_activity(model, data.x)
    return activity_record(
        backend="onnx", neuron=None, timesteps=1, samples=len(data), accuracy=float((pred == data.y).mean()),
        agreement=float((pred == ref).mean()), samples_per_second=len(data) / max(t1 - t0, 1e-9), layers=layers,
        dense_macs=macs, model=str(args.model), model_fingerprint=model.fingerprint(), dataset=args.dataset,
        batched_samples_per_second=len(data) / max(t2 - t1, 1e-9), weights=written)


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
    if args.out and not args.out.endswith(".json"):
        raise OptionError(f"-o {args.out}: the activity file name must end in .json")
    if args.backend == "onnx" and (args.graph or args.float_sim):
        raise OptionError("--graph and --float-sim apply to --backend lava only")
    if args.backend == "lava" and args.nbits:
        raise OptionError("--nbits applies to --backend onnx only")
    if args.build and args.backend not in ("c", "cortex-m4"):
        raise OptionError("--build applies to --backend c and cortex-m4 only")
    if args.backend in ("c", "cortex-m4"):
        from ternkit.export.c_build import require_tools

        require_tools(args.backend)  # say how to install a missing compiler or emulator before loading anything
    if args.backend == "lava":
        from ternkit.export.lava_compat import require_lava

        require_lava()  # lava-nc is optional: say how to install it before loading anything
    model = load_model(args.model)
    if args.out:
        check_writable(args.out)  # before the simulation, not after
    data = _data(model, args.dataset, args.limit)
    if args.backend in ("c", "cortex-m4"):
        from ternkit.commands.export_c import simulate_c_args

        record = simulate_c_args(model, data, args)
    else:
        record = simulate_lava(model, data, args) if args.backend == "lava" else simulate_onnx(model, data, args)
    if args.out:
        write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(json.dumps(record) if args.json else table(record))
    if not args.json and args.backend in ("c", "cortex-m4"):
        from ternkit.commands.export_c import c_summary

        print(c_summary(record))
    return 0
