"""The C export built with the host `cc`: every operation of the registry (op_examples) and the ways a model
can end, bit-identical to the numpy emulation; close to the reference; refusals; the arena's liveness."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from conftest import random_mlp
from op_examples import MODELS, conv, dense, example_input, example_model

from ternkit.core import INPUT, Affine, AvgPool2d, Concat, Flatten, InputSpec, Node, ReLU, TernaryModel
from ternkit.core.atomic import OutputError
from ternkit.core.errors import UnsupportedError
from ternkit.core.ops import Op
from ternkit.export.c.build import build_host, run_host
from ternkit.export.c.emit import export_c
from ternkit.export.c.fixed import INT32
from ternkit.export.c.handlers import REFUSALS
from ternkit.export.c.program import IN_PLACE, build_program, emulate, quantize

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler (cc)")


def _image(c, h, w):
    return InputSpec((c, h, w), np.full((c, 1, 1), 0.5, np.float32), np.full((c, 1, 1), 0.25, np.float32))


def _model(nodes, spec, classes=3) -> TernaryModel:
    m = TernaryModel(nodes, spec, [f"k{i}" for i in range(classes)])
    m.validate()
    return m


def end_affine(rng):
    """The output is an affine (a BatchNorm over the logits that could not be folded)."""
    spec = InputSpec((10,), np.zeros(10, np.float32), np.ones(10, np.float32))
    aff = Affine(rng.uniform(-1.5, 1.5, 4).astype(np.float32), rng.normal(0, 0.3, 4).astype(np.float32))
    return _model([dense(rng, 12, 10), ReLU(), dense(rng, 4, 12), aff], spec, 4)


def end_global_pool(rng):
    """All-convolutional: the class scores are a global average pool of the last conv, flattened."""
    nodes = [Node("c", conv(rng, 4, 1), (INPUT,)), Node("r", ReLU(), ("c",)), Node("c2", conv(rng, 3, 4), ("r",)),
             Node("p", AvgPool2d((6, 6), (6, 6)), ("c2",)), Node("f", Flatten(), ("p",))]
    return _model(nodes, _image(1, 6, 6))


def end_concat(rng):
    """Two heads concatenated into the scores."""
    spec = InputSpec((8,), np.zeros(8, np.float32), np.ones(8, np.float32))
    nodes = [Node("a", dense(rng, 2, 8), (INPUT,)), Node("b", dense(rng, 3, 8), (INPUT,)),
             Node("cat", Concat(), ("a", "b"))]
    return _model(nodes, spec, 5)


def end_relu(rng):
    """An output layer followed by ReLU (no fusion into the scores: clamped, then widened)."""
    spec = InputSpec((6,), np.zeros(6, np.float32), np.ones(6, np.float32))
    return _model([dense(rng, 9, 6), ReLU(), dense(rng, 3, 9), ReLU()], spec)


def shared_relu(rng):
    """A conv output read by a ReLU and by an add: the ReLU is its own kernel, the conv stays signed."""
    nodes = [Node("c", conv(rng, 2, 1), (INPUT,)), Node("r", ReLU(), ("c",)), Node("s", Concat(), ("c", "r"))]
    return _model(_head_flat(rng, nodes, "s", 4 * 5 * 5), _image(1, 5, 5))


def _head_flat(rng, nodes, prev, feat):
    return nodes + [Node("flat", Flatten(), (prev,)), Node("fc", dense(rng, 3, feat), ("flat",))]


ENDINGS = {"end-affine": end_affine, "end-global-pool": end_global_pool, "end-concat": end_concat,
           "end-relu": end_relu, "shared-relu": shared_relu}
# every example model but those holding an operation the C export declares it refuses (handlers.REFUSALS)
ALL = {**{k: lambda rng, f=f: f(rng) for k, f in MODELS.items()
          if not {n.op.kind for n in example_model(k).nodes} & set(REFUSALS)}, **ENDINGS}


def _make(name: str) -> TernaryModel:
    return example_model(name) if name in MODELS else ENDINGS[name](np.random.default_rng(0))


def _build_and_run(model: TernaryModel, x: np.ndarray, tmp: Path, calib: np.ndarray | None = None):
    prog = export_c(model, tmp / "c", x if calib is None else calib, source="test")
    exe = build_host(tmp / "c", tmp)
    return prog, run_host(exe, x, model.num_classes, tmp)


@pytest.mark.parametrize("name", sorted(ALL))
def test_c_is_bit_identical_to_emulation_and_close_to_reference(name, tmp_path):
    model = _make(name)
    x = example_input(model, 96)
    prog, run = _build_and_run(model, x, tmp_path)  # calibrated on these inputs: no clipping, only rounding
    em = emulate(prog, x)
    np.testing.assert_array_equal(run.scores, em)
    np.testing.assert_array_equal(run.predicted, em.argmax(1))
    # the scores are the logits in units of the program's output scale: within a few output LSBs of the
    # reference (int8 rounding, ~0.4 % per value, over a few layers: at most 2.1 % measured; bound 4 %)
    ref = model.forward(x)
    err = np.abs(em * prog.steps[-1].scale - ref).max()
    assert err <= 0.04 * np.abs(ref).max(), (err, np.abs(ref).max())


def test_extreme_inputs_saturate_without_overflow(tmp_path):
    """Inputs far outside the calibration range clamp to +-127 and every sum stays within int32: the C and
    the emulation still agree (the fixed-point bounds are static, not calibrated)."""
    model = example_model("add")
    calib = example_input(model, 32)
    x = np.concatenate([calib * 1e4, -calib * 1e4, np.full_like(calib, 1e30), np.full_like(calib, -1e30)])
    prog, run = _build_and_run(model, x, tmp_path, calib=calib)
    q = quantize(prog, x)
    assert q.max() == 127 and q.min() == -127
    np.testing.assert_array_equal(run.scores, emulate(prog, x))
    assert INT32[0] < run.scores.min() and run.scores.max() < INT32[1]


def test_mlp_has_only_add_subtract_kernels_and_no_library_calls(tmp_path):
    model = random_mlp((20, 16, 4))
    prog = export_c(model, tmp_path / "c", np.random.default_rng(0).normal(size=(64, 20)))
    src = (tmp_path / "c" / "model.c").read_text()
    assert "malloc" not in src and "#include <" not in src.replace("#include <stdint.h>", "")
    obj = tmp_path / "model.o"
    subprocess.run(["cc", "-std=c99", "-O2", "-c", str(tmp_path / "c" / "model.c"), "-o", str(obj)], check=True)
    undefined = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True, check=True).stdout.split()
    assert [s for s in undefined if s != "U"] == []
    assert prog.arena_bytes == 16  # the hidden layer's 16 int8 values; the output goes to the caller's scores


def _live_blocks(prog):
    last = {}
    for k, st in enumerate(prog.steps):
        for v in st.inputs:
            last[v] = k
    blocks = []
    for k, st in enumerate(prog.steps):
        if st.node in prog.offsets:
            blocks.append((prog.offsets[st.node], st.size, k, max(k, last.get(st.node, k))))
        if st.node in prog.scratch:
            blocks.append((prog.scratch[st.node], 4 * int(np.prod(st.out_shape[1:])), k, k))
    return blocks


@pytest.mark.parametrize("name", sorted(ALL))
def test_arena_holds_live_values_apart(name):
    model = _make(name)
    prog = build_program(model, example_input(model, 8))
    blocks = _live_blocks(prog)
    for i, (o1, s1, f1, l1) in enumerate(blocks):
        assert o1 % 4 == 0 and o1 + s1 <= prog.arena_bytes
        for o2, s2, f2, l2 in blocks[i + 1:]:
            in_place = (o1, s1, l1) == (o2, s2, f2) and prog.steps[f2].kind in IN_PLACE  # y over its dead input
            if f1 <= l2 and f2 <= l1 and not in_place:  # alive at the same step: disjoint bytes
                assert o1 + s1 <= o2 or o2 + s2 <= o1


def test_arena_is_the_peak_of_live_bytes_for_a_chain():
    """dw conv (4x6x6) -> pw conv (6x6x6) -> dense: the peak is the pw step (its input, output and int32
    accumulators of one channel), 144 + 216 + 144 bytes."""
    prog = build_program(example_model("conv2d-depthwise"), example_input(example_model("conv2d-depthwise"), 8))
    assert prog.arena_bytes == 144 + 216 + 144


@dataclass(eq=False)
class Softsign(Op):
    kind: ClassVar[str] = "softsign"

    def out_shape(self, *shapes):
        return tuple(shapes[0])

    def forward(self, *xs):
        return xs[0]


def test_refusals(tmp_path):
    rng = np.random.default_rng(0)
    spec = InputSpec((6,), np.zeros(6, np.float32), np.ones(6, np.float32))
    odd = TernaryModel([dense(rng, 4, 6), Softsign(), dense(rng, 3, 4)], spec, ["a", "b", "c"])
    x = rng.normal(size=(8, 6)).astype(np.float32)
    with pytest.raises(UnsupportedError, match="node layer1: C export does not support operation 'softsign'"):
        export_c(odd, tmp_path / "odd", x)
    assert not (tmp_path / "odd").exists()
    with pytest.raises(UnsupportedError, match="ternary"):
        export_c(random_mlp((6, 4, 3), kind="float"), tmp_path / "f", x)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds other files"):
        export_c(random_mlp((6, 4, 3)), tmp_path / "busy", x)
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]
    export_c(random_mlp((6, 4, 3)), tmp_path / "again", x)
    export_c(random_mlp((6, 4, 3), seed=1), tmp_path / "again", x)  # an earlier export is replaced
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["model.c", "model.h"]
