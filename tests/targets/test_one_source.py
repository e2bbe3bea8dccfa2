"""One source for every number: the training metrics, the report and the activity record of the same model agree
on connections (MACs), non-zero connections and compression -- and those agree with counts made here by hand.
Then every operation kind of the registry goes through the report (memory and operation counts per node)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from op_examples import MODELS, example_input, example_model

from ternkit.cli import main
from ternkit.core import load_model
from ternkit.core.metrics import effective_inputs, synaptic_nodes
from ternkit.export.activity import activations_activity, activity_record
from ternkit.targets import build_report, load_target, shipped_targets


def brute_connections(model) -> tuple[int, int]:
    """(connections, non-zero-weight connections) of the weight layers by explicit loops over outputs and taps,
    padding excluded -- independent of core's window arithmetic."""
    shapes, total, nonzero = model.shape_map(), 0, 0
    for n in model.nodes:
        op = n.op
        if op.kind == "dense":
            total, nonzero = total + op.weight.size, nonzero + int(np.count_nonzero(op.weight))
        elif op.kind == "conv2d":
            _, h, w = shapes[n.inputs[0]]
            (kh, kw), (sh, sw), (ph, pw), g = op.kernel, op.stride, op.padding, op.groups
            cout_g = op.out_channels // g
            for o in range(op.out_channels):
                cin = range((o // cout_g) * op.weight.shape[1], (o // cout_g + 1) * op.weight.shape[1])
                for i in range((h + 2 * ph - kh) // sh + 1):
                    for j in range((w + 2 * pw - kw) // sw + 1):
                        for c_local, _ in enumerate(cin):
                            for a in range(kh):
                                for b in range(kw):
                                    r, s = i * sh + a - ph, j * sw + b - pw
                                    if 0 <= r < h and 0 <= s < w:
                                        total += 1
                                        nonzero += op.weight[o, c_local, a, b] != 0
    return total, int(nonzero)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A padded, strided CNN trained for one epoch on digits through the public API, its report and its
    onnx activity record, both from the CLI on the same 60 samples."""
    import ternkit

    d = tmp_path_factory.mktemp("one-source")
    path = d / "m.tern"
    ternkit.train(ternkit.TrainConfig(dataset="digits", model="cnn:4c3s2p1-16", epochs=1), out=path, progress=False)
    metrics = json.loads((d / "m.metrics.json").read_text())
    assert main(["simulate", str(path), "--backend", "onnx", "--dataset", "digits", "--limit", "60",
                 "-o", str(d / "run.json")]) == 0
    assert main(["report", str(path), "--dataset", "digits", "--limit", "60", "--activity", str(d / "run.json"),
                 "--target", "loihi2", "--target", "mcu", "-o", str(d / "rep")]) == 0
    report = json.loads((d / "rep" / "report.json").read_text())
    record = json.loads((d / "run.json").read_text())
    return load_model(path), metrics, report, record


def test_training_report_and_activity_agree_on_macs(trained):
    model, metrics, report, record = trained
    macs, nonzero = brute_connections(model)
    assert any(n.op.kind == "conv2d" and n.op.padding != (0, 0) for n in model.nodes)  # padding is excluded
    tot = report["operations"]["totals"]
    assert metrics["operations"]["connections"] == tot["dense_macs"] == record["dense_macs_per_inference"] == macs
    assert report["neurobench"]["synaptic_operations"]["dense"] == macs
    assert (metrics["operations"]["nonzero_connections"] == tot["nonzero_weight_macs"]
            == record["nonzero_connections_per_inference"] == nonzero)
    # per node: the record's entries are the report's nodes with connections, with the same counts
    rows = {o["node"]: o for o in report["operations"]["layers"]}
    assert [e["node"] for e in record["layers"]] == [model.nodes[i].name for i in synaptic_nodes(model)]
    for e in record["layers"]:
        o = rows[e["node"]]
        assert (e["connections"], e["nonzero_connections"], e["neurons"]) == (
            o["dense_macs"], o["nonzero_weight_macs"], o["neurons"])
        # same 60 samples: the record's synaptic operations are the report's effective MACs
        assert e["synaptic_ops_per_inference"] == pytest.approx(o["effective_macs"])
        assert e["messages_per_inference"] == pytest.approx(o["messages"])
    assert record["synaptic_ops_per_inference"] == pytest.approx(tot["effective_macs"])
    # the report read the record it was given
    assert report["activity"]["dense_macs_per_inference"] == macs


def test_training_report_and_artifact_agree_on_compression(trained):
    model, metrics, report, _ = trained
    stored = sum(math.ceil(op.weight.size / 4) + 4 * (op.scale.size + op.bias.size) for op in model.weight_layers)
    float32 = sum(4 * (op.weight.size + op.bias.size) for op in model.weight_layers)
    assert model.stored_bytes() == stored == metrics["memory"]["parameter_bytes"] == report["memory"]["parameter_bytes"]
    assert model.float32_bytes() == float32 == metrics["memory"]["float32_bytes"]
    assert report["memory"]["float32_parameter_bytes"] == float32
    ratio = float32 / stored
    assert metrics["memory"]["ratio_vs_float32"] == pytest.approx(ratio, rel=1e-12)
    assert report["memory"]["compression_vs_float32"] == pytest.approx(ratio, rel=1e-12)
    assert report["memory"]["compression_vs_float64"] == pytest.approx(2 * ratio, rel=1e-12)
    assert metrics["memory"]["ratio_vs_float64"] == pytest.approx(2 * ratio, rel=1e-12)


# -- every operation kind --------------------------------------------------------------------------------------

PARAMETERS = {"dense", "conv2d", "affine"}  # kinds that store parameters
SYNAPTIC = {"dense", "conv2d", "avgpool2d", "avgpool2d_exclude_pad", "maxpool2d", "add", "concat"}  # connections
MOVES = {"flatten", "concat", "reshape", "transpose", "slice"}  # kinds that only move values: no arithmetic


@pytest.fixture(scope="module")
def targets():
    return [load_target(n) for n in shipped_targets()]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_report_covers_every_operation(name, targets):
    model, x = example_model(name), example_input(example_model(name), 12)
    r = build_report(model, targets, x=x, dataset="random")
    mem, ops = r["memory"], r["operations"]["layers"]
    assert [row["node"] for row in mem["layers"]] == [o["node"] for o in ops] == [n.name for n in model.nodes]
    for n, row, o in zip(model.nodes, mem["layers"], ops, strict=True):
        kind = n.op.kind
        assert row["stored_bytes"] == n.op.stored_bytes(model.kind, model.bits())
        assert (row["stored_bytes"] > 0) == (kind in PARAMETERS), (n.name, row)
        assert (o["dense_macs"] > 0) == (kind in SYNAPTIC), (n.name, o)
        assert (sum(o["arithmetic"].values()) > 0) == (kind not in MOVES), (n.name, o)
        assert 0 <= o["effective_macs"] <= o["nonzero_weight_macs"] <= o["dense_macs"]
        if kind == "affine":
            assert row["scale_bytes"] == row["bias_bytes"] == 4 * n.op.scale.size and row["float32_bytes"] > 0
    assert sum(row["stored_bytes"] for row in mem["layers"]) == mem["parameter_bytes"] == model.stored_bytes()
    assert sum(row["float32_bytes"] for row in mem["layers"]) == mem["float32_parameter_bytes"] == model.float32_bytes()
    assert mem["peak_activation_elements"] > 0
    for t in r["targets"]:
        e = t["energy"]
        assert e["per_inference_pj"] == pytest.approx(sum(i["pj"] for i in e["items"])) and e["per_inference_pj"] > 0
    # the activity record of the same samples agrees with the report, node by node
    entries, macs = activations_activity(model, x)
    assert macs == r["operations"]["totals"]["dense_macs"]
    assert [e["node"] for e in entries] == [o["node"] for o in ops if o["dense_macs"]]
    rec = activity_record(backend="onnx", neuron=None, timesteps=1, samples=len(x), accuracy=None, agreement=1.0,
                          samples_per_second=1.0, layers=entries, dense_macs=macs)
    assert rec["synaptic_ops_per_inference"] == pytest.approx(r["operations"]["totals"]["effective_macs"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_effective_connections_by_brute_force(name):
    """Per node, connections with a non-zero weight and a non-zero input, counted one input element at a time:
    switching on input element j adds exactly the non-zero connections leaving j."""
    model = example_model(name)
    shapes = model.shape_map()
    for n, c in zip(model.nodes, model.counts(), strict=True):
        ins = [shapes[k] for k in n.inputs]
        ones = [np.ones((1, *s), np.float32) for s in ins]
        assert float(effective_inputs(n.op, *ones).sum()) == c.nonzero  # every input on: the artifact's count
        if not c.connections:
            continue
        rng = np.random.default_rng(0)
        masks = [(rng.random((1, *s)) < 0.5).astype(np.float32) for s in ins]
        brute = 0.0
        for k, m in enumerate(masks):
            for j in np.flatnonzero(m):
                single = [np.zeros_like(z) for z in masks]
                single[k].reshape(-1)[j] = 1
                brute += float(effective_inputs(n.op, *single).sum())
        assert float(effective_inputs(n.op, *masks).sum()) == brute


def test_peak_activation_memory_of_a_residual_block():
    """m_add: stem (4x6x6) is read by c1 and by the add, so at c2 three 144-value buffers are live; relus work
    in place. The input (36 values) is freed after the stem."""
    model = example_model("add")
    r = build_report(model, [load_target("mcu")], x=example_input(model, 2))
    assert r["memory"]["peak_activation_elements"] == 3 * 144
    buffers = {row["node"]: row["activation_buffer_elements"] for row in r["memory"]["layers"]}
    assert buffers["r0"] == buffers["r1"] == buffers["r2"] == 0 and buffers["c2"] == 144

