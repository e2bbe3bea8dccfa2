"""An operation registered from a module inside tests/ (`toy_op`, not ternkit's source) goes through the whole
conformance suite -- core (shape inference, torch twin, file round trip, counts), the tracer (recognised from
its own declaration), the report, and every backend (exported and agreeing where it has a handler, refused in
one line naming it where not) -- with nothing else edited."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
import torch
from torch import nn

from ternkit.core import INPUT, Node, UnsupportedError


@pytest.fixture
def toy(monkeypatch):
    sys.modules.pop("toy_op", None)
    toy_op = importlib.import_module("toy_op")  # registers the operation
    added = toy_op.install_handlers()
    import op_examples
    import test_ops

    def make(rng):
        nodes = [Node("c", op_examples.conv(rng, 3, 1), (INPUT,)), Node("s", toy_op.ToySoftsign(), ("c",))]
        return op_examples._model(op_examples._head(rng, nodes, "s", 3 * 5 * 5), op_examples._image_spec(1, 5, 5))

    monkeypatch.setitem(op_examples.MODELS, "toy", make)
    monkeypatch.setitem(test_ops.TORCH, toy_op.KIND, lambda op, x: nn.functional.softsign(x))
    yield toy_op
    toy_op.uninstall(added)
    sys.modules.pop("toy_op", None)


def test_core_conformance_covers_the_toy(toy, tmp_path):
    import test_ops

    test_ops.test_every_registered_operation_has_an_example_and_a_torch_twin()
    test_ops.test_shape_inference_matches_forward("toy")
    test_ops.test_forward_matches_torch("toy")
    test_ops.test_round_trip_is_bit_exact("toy", tmp_path)
    test_ops.test_counts_match_brute_force("toy")


def test_the_tracer_recognises_the_toy_from_its_declaration(toy):
    import ternkit

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Softsign(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3))
    x = torch.randn(8, 1, 5, 5)
    art = ternkit.to_artifact(model.eval(), x)
    assert [n.op.kind for n in art.nodes] == ["conv2d", toy.KIND, "flatten", "dense"]
    with torch.no_grad():
        np.testing.assert_allclose(art.forward(x.numpy()), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_reports_and_backends_cover_the_toy(toy, tmp_path):
    import onnxruntime as ort
    from op_examples import example_input, example_model

    from ternkit.export.lava.graph import build_graph as lava_graph
    from ternkit.export.onnx.graph import build_graph
    from ternkit.targets.ops import count_ops

    model = example_model("toy")
    x = example_input(model, 64)
    assert [o.arithmetic for o in count_ops(model, x) if o.kind == toy.KIND] == [{"add": 3 * 5 * 5}]
    session = ort.InferenceSession(build_graph(model).SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.forward(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(UnsupportedError, match=f"Lava export does not support operation '{toy.KIND}'"):
        lava_graph(model, x)


def test_c_runs_the_toy_bit_identically(toy, tmp_path):
    import shutil

    if shutil.which("cc") is None:
        pytest.skip("needs a host C compiler (cc)")
    from op_examples import example_input, example_model

    from ternkit.export.c.build import build_host, run_host
    from ternkit.export.c.emit import export_c
    from ternkit.export.c.program import emulate

    model = example_model("toy")
    x = example_input(model, 64)
    prog = export_c(model, tmp_path / "c", x)
    run = run_host(build_host(tmp_path / "c", tmp_path), x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


def test_the_toy_is_gone_afterwards():
    from ternkit.core import OPS

    assert "toy_softsign" not in OPS
