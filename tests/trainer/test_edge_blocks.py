"""Acceptance of the operations edge CNNs need: each family's building block, written as torchvision writes
it (tests/edge_blocks.py), trains a few CoNNTrA steps, traces into the artifact and agrees with torch in eval
(float rounding), ONNX (argmax 100 %, values within 1e-4 relative), C (bit-identical to its numpy emulation)
and Lava (the float graph equals the reference) -- or is refused with the hint the backend declares."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from edge_blocks import BLOCKS
from torch import nn

import ternkit
from ternkit.core import UnsupportedError
from ternkit.optim import CoNNTrA

CLASSES = 4


def _trained(name: str) -> tuple[nn.Module, torch.Tensor]:
    make, shape = BLOCKS[name]
    torch.manual_seed(0)
    model = ternkit.ternarize(make())
    x = torch.randn(64, *shape)
    y = torch.randint(0, CLASSES, (64,))
    opt = CoNNTrA(model, lr=1e-2, total_steps=3)
    model.train()
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    ternkit.recalibrate_batchnorm(model, x)
    return model.eval(), x


@pytest.fixture(scope="module")
def artifacts():
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            model, x = _trained(name)
            art = ternkit.to_artifact(model, x)
            with torch.no_grad():
                ref = model(x).numpy()
            cache[name] = (model, x.numpy(), art, ref)
        return cache[name]

    return get


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_traces_and_matches_torch(artifacts, name):
    model, x, art, ref = artifacts(name)
    assert art.kind == "ternary"
    out = art.forward(x)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ref).max())))


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_onnx_agrees(artifacts, name):
    import onnxruntime as ort

    from ternkit.export.onnx.graph import build_graph

    _, x, art, _ = artifacts(name)
    ref = art.forward(x)
    for fmt in ("int2", "float"):
        session = ort.InferenceSession(build_graph(art, fmt).SerializeToString(), providers=["CPUExecutionProvider"])
        out = session.run(None, {"input": x})[0]
        assert (out.argmax(1) == ref.argmax(1)).all(), (name, fmt)
        assert np.abs(out - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max())), (name, fmt)


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler (cc)")
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_c_is_bit_identical_to_its_emulation(artifacts, name, tmp_path):
    from ternkit.export.c.build import build_host, run_host
    from ternkit.export.c.emit import export_c
    from ternkit.export.c.handlers import REFUSALS
    from ternkit.export.c.program import emulate

    _, x, art, _ = artifacts(name)
    refused = [n.op.kind for n in art.nodes if n.op.kind in REFUSALS]
    if refused:
        with pytest.raises(UnsupportedError, match=REFUSALS[refused[0]]):
            export_c(art, tmp_path / "c", x)
        return
    prog = export_c(art, tmp_path / "c", x)
    run = run_host(build_host(tmp_path / "c", tmp_path), x, art.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_lava_maps_or_refuses_with_its_hint(artifacts, name):
    from ternkit.export.lava.graph import build_graph, emulate
    from ternkit.export.lava.plan import HINTS

    _, x, art, ref = artifacts(name)
    refused = [n.op.kind for n in art.nodes if n.op.kind in HINTS]
    if refused:
        with pytest.raises(UnsupportedError) as e:
            build_graph(art, x, fixed=False)
        assert HINTS[refused[0]] in str(e.value) and "\n" not in str(e.value)
        return
    out, _ = emulate(build_graph(art, x, fixed=False), x)
    np.testing.assert_allclose(out, art.forward(x), rtol=1e-5, atol=1e-5)


def test_blocks_hold_the_operations_they_are_named_for(artifacts):
    kinds = {name: {n.op.kind for n in artifacts(name)[2].nodes} for name in BLOCKS}
    assert {"clip", "add"} <= kinds["mobilenet_v2"]
    assert {"hardswish", "hardsigmoid", "mul"} <= kinds["mobilenet_v3"]
    assert {"silu", "sigmoid", "mul", "add"} <= kinds["efficientnet"]
    assert {"slice", "reshape", "transpose", "concat"} <= kinds["shufflenet_v2"]
    assert any(n.op.kind == "maxpool2d" and n.op.ceil_mode for n in artifacts("squeezenet")[2].nodes)
    assert {"concat", "affine"} <= kinds["densenet"]
    assert {"concat", "maxpool2d"} <= kinds["googlenet"]
    assert any(n.op.kind == "avgpool2d" and n.op.kernel == (2, 2) for n in artifacts("vgg")[2].nodes)
