"""The SIMD kernels of the C export (`--target cortex-m4`) and base-3 weights (`--packing base3`), built for
the host, where the three DSP intrinsics are plain C: bit-identical to the numpy emulation for every operation
and ending; the packings round-trip; conv -> conv streaming keeps a ring and shrinks the arena."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from op_examples import conv, dense, example_input
from test_c_export import ALL, _image, _make, _model

from ternkit.core import INPUT, AvgPool2d, Flatten, MaxPool2d, Node, ReLU
from ternkit.core.errors import OptionError
from ternkit.export.c.build import CFLAGS, MCU_DIR, build_host, run_host
from ternkit.export.c.emit import export_c
from ternkit.export.c.packing import byte_trits, interleave, pack_rows, unpack_rows
from ternkit.export.c.program import build_program, emulate

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler (cc)")

CONFIGS = [("cortex-m4", "2bit"), ("cortex-m4", "base3"), ("generic", "base3")]
# the kernels the SIMD target changes (dense, conv: grouped, depthwise, rectangular) and a few endings; the
# whole registry under -m slow
FAST = ["dense", "conv2d", "conv2d-depthwise", "conv2d-rect", "end-global-pool", "end-concat"]
NAMES = [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in sorted(ALL)]


@pytest.mark.parametrize("target,packing", CONFIGS)
@pytest.mark.parametrize("name", NAMES)
def test_simd_kernels_are_bit_identical_to_emulation(name, target, packing, tmp_path):
    model = _make(name)
    x = example_input(model, 40)
    prog = export_c(model, tmp_path / "c", x, target=target, packing=packing)
    run = run_host(build_host(tmp_path / "c", tmp_path), x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


@pytest.mark.parametrize("packing", ["2bit", "base3"])
def test_packing_round_trips_and_base3_is_five_trits_a_byte(packing):
    rng = np.random.default_rng(0)
    for n in (1, 4, 5, 9, 23, 40):
        q = rng.integers(-1, 2, (7, n)).astype(np.int8)
        packed, rb = pack_rows(q, packing)
        assert rb == -(-n // (5 if packing == "base3" else 4))
        np.testing.assert_array_equal(unpack_rows(packed, n, packing), q)
    table = byte_trits("base3")
    assert table.shape == (243, 5) and len({tuple(t) for t in table}) == 243  # every byte value a distinct group


def test_interleave_keeps_each_block_of_four_rows_in_its_bytes():
    packed = np.arange(6 * 3, dtype=np.uint8).reshape(6, 3)  # 6 rows of 3 bytes: one block of 4, 2 rows left
    out = interleave(packed).reshape(-1)
    np.testing.assert_array_equal(out[:12], packed[:4].T.reshape(-1))  # byte j of rows 0..3 side by side
    np.testing.assert_array_equal(out[12:], packed[4:].reshape(-1))
    two = interleave(np.arange(8 * 2, dtype=np.uint8).reshape(8, 2), groups=2)  # groups of 4 rows each
    np.testing.assert_array_equal(two.reshape(2, -1), [[0, 2, 4, 6, 1, 3, 5, 7], [8, 10, 12, 14, 9, 11, 13, 15]])


def _chain(rng):
    """conv 1->4 (3x3, 12x12) -> conv 4->6 (3x3, stride 2) -> dense: the first conv streams into the second."""
    nodes = [Node("c1", conv(rng, 4, 1), (INPUT,)), Node("c2", conv(rng, 6, 4, stride=(2, 2)), ("c1",)),
             Node("f", Flatten(), ("c2",))]
    return _model(nodes + [Node("fc", dense(rng, 3, 6 * 6 * 6), ("f",))], _image(1, 12, 12))


def test_conv_streams_into_conv_with_a_ring_of_rows(tmp_path):
    model = _chain(np.random.default_rng(0))
    x = example_input(model, 16)
    plain = build_program(model, x)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4")
    first = prog.steps[0]
    assert first.ring == 3 and prog.steps[1].streams_from == 0 and prog.steps[1].in_ring == 3
    # the ring (4 channels x 3 rows x 12) + the second conv's one-row ring (6 x 6: it streams into the dense
    # layer) + one receptive field (36) and the byte a gather of whole words (3x3: 4 bytes a row) may write past
    # it, 4-byte aligned + the dense layer's 3 int32 sums
    assert prog.arena_bytes == 4 * 3 * 12 + 36 + 40 + 12 < plain.arena_bytes
    run = run_host(build_host(tmp_path / "c", tmp_path), x, 3, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


def test_unknown_target_or_packing_is_one_line(tmp_path):
    model = _make("dense")
    x = example_input(model, 4)
    with pytest.raises(OptionError, match="unknown C target 'avr'"):
        export_c(model, tmp_path / "a", x, target="avr")
    with pytest.raises(OptionError, match="unknown weight packing 'nibble'"):
        export_c(model, tmp_path / "b", x, packing="nibble")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_add_writes_in_place_over_an_input_nothing_reads_later(tmp_path):
    model = _make("add")
    x = example_input(model, 16)
    prog = export_c(model, tmp_path / "c", x)
    adds = [st for st in prog.steps if st.kind == "add" and not st.scores]
    assert adds and all(prog.offsets[st.node] in {prog.offsets.get(v) for v in st.inputs} for st in adds)
    run = run_host(build_host(tmp_path / "c", tmp_path), x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


def test_cli_export_c_takes_target_and_packing(tmp_path, capsys):
    from conftest import random_mlp

    from ternkit.cli import main
    from ternkit.core import InputSpec, save_model

    model = random_mlp((64, 24, 10), seed=5)
    model.layers = [Flatten(), *model.layers]  # digits samples are (1, 8, 8)
    model.input = InputSpec((1, 8, 8), np.zeros((1, 1, 1), np.float32), np.full((1, 1, 1), 4.0, np.float32))
    model.provenance = {"dataset": "digits", "seed": 0, "config": {"seed": 0, "val_fraction": 0.2}}
    path = tmp_path / "m.tern"
    save_model(model, path)
    out = tmp_path / "c"
    assert main(["export", "c", str(path), "-o", str(out), "--target", "cortex-m4", "--packing", "base3"]) == 0
    src = (out / "model.c").read_text()
    assert "#define TK_TRITS_PER_BYTE 5" in src and "tk_dense_simd(" in src
    capsys.readouterr()
    assert main(["export", "c", str(path), "-o", str(tmp_path / "d"), "--packing", "nibble"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nibble" in err and "Traceback" not in err


def _sink_edges() -> dict:
    """Convs streamed into a pooling (tk_chain_pool) or a dense layer (tk_chain_dense), at the edges of the row
    scheduling: one conv, a strided chain or one whose buffers are all in the arena; a global, an overlapping
    padded, a rectangular padded, a large max and a ceil-mode max window; a dense layer that writes the scores,
    and one of 7 rows (4 + 2 + 1 at a time) over rows of 35 values (a partial weight byte) fed by a chain."""
    rng = np.random.default_rng(3)

    def head(nodes, prev, feat, spec):
        return _model(nodes + [Node("f", Flatten(), (prev,)), Node("fc", dense(rng, 3, feat), ("f",))], spec)

    return {
        "global-one-conv": head([Node("c", conv(rng, 6, 1), (INPUT,)), Node("r", ReLU(), ("c",)),
                                 Node("p", AvgPool2d((7, 5), (7, 5)), ("r",))], "p", 6, _image(1, 7, 5)),
        "global-strided-chain": head([Node("c1", conv(rng, 4, 1), (INPUT,)),
                                      Node("c2", conv(rng, 6, 4, stride=(2, 2)), ("c1",)),
                                      Node("p", AvgPool2d((5, 5), (5, 5)), ("c2",))], "p", 6, _image(1, 9, 9)),
        "avg-overlap-pad": head([Node("c", conv(rng, 3, 1), (INPUT,)),
                                 Node("p", AvgPool2d((5, 5), (3, 3), (1, 1)), ("c",))], "p", 27, _image(1, 10, 10)),
        "avg-rect-pad": head([Node("c", conv(rng, 5, 2, k=(1, 3), padding=(0, 1)), (INPUT,)),
                              Node("p", AvgPool2d((4, 3), (4, 3), (1, 1)), ("c",))], "p", 15, _image(2, 4, 9)),
        "max-large": head([Node("c", conv(rng, 4, 1), (INPUT,)), Node("r", ReLU(), ("c",)),
                           Node("p", MaxPool2d((4, 4), (4, 4)), ("r",))], "p", 16, _image(1, 8, 8)),
        "max-ceil": head([Node("c", conv(rng, 3, 1), (INPUT,)),
                          Node("p", MaxPool2d((3, 3), (3, 3), (0, 0), ceil_mode=True), ("c",))], "p", 27,
                         _image(1, 7, 7)),
        "after-a-pool": head([Node("c0", conv(rng, 4, 1), (INPUT,)), Node("m", MaxPool2d((2, 2), (2, 2)), ("c0",))]
                             + [Node(f"c{k}", conv(rng, 4, 4, (1, 1), padding=(0, 0)), (f"c{k - 1}" if k > 1 else "m",))
                                for k in range(1, 8)]
                             + [Node("c8", conv(rng, 32, 4), ("c7",)), Node("p", AvgPool2d((8, 8), (8, 8)), ("c8",))],
                             "p", 32, _image(1, 16, 16)),
        "dense-scores": _model([Node("c", conv(rng, 5, 2), (INPUT,)), Node("f", Flatten(), ("c",)),
                                Node("fc", dense(rng, 3, 5 * 6 * 7), ("f",))], _image(2, 6, 7)),
        "dense-chain-odd": head([Node("c1", conv(rng, 3, 1), (INPUT,)), Node("c2", conv(rng, 5, 3), ("c1",)),
                                 Node("r", ReLU(), ("c2",)), Node("f1", Flatten(), ("r",)),
                                 Node("d", dense(rng, 7, 5 * 6 * 7), ("f1",)), Node("r2", ReLU(), ("d",))], "r2", 7,
                                _image(1, 6, 7)),
    }


SINK_EDGES = sorted(_sink_edges())


@pytest.mark.parametrize("target,packing", CONFIGS)
@pytest.mark.parametrize("name", SINK_EDGES)
def test_conv_streams_into_pooling_or_dense_bit_identical(name, target, packing, tmp_path, monkeypatch):
    """The pool or dense layer reads the conv's rows as they are made (a one-row ring, int32 accumulators): the
    scores stay those of the emulation, and the arena is smaller than with the conv's whole output stored. A
    dense layer streams with the SIMD dense kernel only (the cortex-m4 target)."""
    from ternkit.export.c import program

    model = _sink_edges()[name]
    x = example_input(model, 40)
    prog = export_c(model, tmp_path / "c", x, target=target, packing=packing)
    sink = [st for i, st in enumerate(prog.steps) if st.kind in program.SINKS and i
            and prog.steps[i - 1].kind == "conv2d" and st.inputs == [prog.steps[i - 1].node]][-1]
    if sink.kind == "dense" and target == "generic":
        assert sink.streams_from < 0
        return
    conv_step = prog.steps[prog.steps.index(sink) - 1]
    assert sink.streams_from >= 0 and conv_step.ring == 1 and sink.in_ring == 1
    run = run_host(build_host(tmp_path / "c", tmp_path), x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))
    monkeypatch.setattr(program, "_sink_saves", lambda conv, sink: False)
    stored = build_program(model, x, target=target, packing=packing)
    assert prog.arena_bytes < stored.arena_bytes


def test_pool_streaming_arena_is_ring_accumulators_and_output():
    """One conv (6 channels, 7x5) into a global average pool: its one-row ring (6 x 5), the pool's output (6) and
    the chain's scratch (one receptive field of 9 trits padded to 12, which holds the byte a gather of whole
    words writes past the 9, then 6 int32 accumulators), each 4-byte aligned, instead of the conv's 210-byte
    output."""
    model = _sink_edges()["global-one-conv"]
    prog = build_program(model, example_input(model, 8), target="cortex-m4")
    assert prog.arena_bytes == 32 + 8 + 12 + 24


def test_small_pool_windows_are_not_streamed():
    """2x2 pooling: an int32 accumulator per output is as large as the four inputs it replaces, so the conv's
    output stays stored (and the chain machinery is not used)."""
    from op_examples import example_model

    prog = build_program(example_model("avgpool2d"), example_input(example_model("avgpool2d"), 8), target="cortex-m4")
    assert all(st.streams_from < 0 and not st.ring for st in prog.steps)


def _small_maps(rng):
    """Six 3x3 convs on 8 channels of 4x4: a ring (3 of 4 rows) costs almost a whole map, so one chain would
    hold five rings at once; chains of one or two convs with whole maps between them need less."""
    nodes, prev = [], INPUT
    for k in range(6):
        nodes.append(Node(f"c{k}", conv(rng, 8, 1 if k == 0 else 8), (prev,)))
        prev = f"c{k}"
    return _model(nodes + [Node("f", Flatten(), (prev,)), Node("fc", dense(rng, 3, 128), ("f",))], _image(1, 4, 4))


@pytest.mark.parametrize("target,packing", CONFIGS)
def test_a_run_of_convs_is_cut_into_the_chains_of_least_ram(target, packing, tmp_path, monkeypatch):
    from ternkit.export.c import program

    model = _small_maps(np.random.default_rng(0))
    x = example_input(model, 24)
    prog = export_c(model, tmp_path / "c", x, target=target, packing=packing)
    assert any(st.streams_from < 0 for st in prog.steps[1:6])  # cut somewhere
    run = run_host(build_host(tmp_path / "c", tmp_path), x, 3, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))
    monkeypatch.setattr(program, "_cuts", lambda steps, s, e, sink: [(s, e)])
    whole = build_program(model, x, target=target, packing=packing)
    assert all(st.streams_from == 0 for st in whole.steps[1:6])
    # the whole chain: 5 rings of 96, the last conv's output (with the SIMD dense kernel streamed into the dense
    # layer: a one-row ring of 8 x 4 and its 3 int32 sums) and one receptive field (72 trits, padded to whole
    # weight bytes, 4-byte aligned); the cut plan: at most two whole maps, a ring and a receptive field
    col = -(-program._handler(whole.steps[1]).scratch(whole.steps[1]) // 4) * 4
    last = 32 + 12 if target == "cortex-m4" else 128
    assert whole.arena_bytes == 5 * 96 + last + col and prog.arena_bytes <= 2 * 128 + 96 + col < whole.arena_bytes


# depthwise and conv shapes at the edges of the SIMD kernels' fast paths: (channels, h, w, kernel, stride,
# padding, depthwise, then a 1x1 conv streamed from it). Widths under 4 and odd, stride 2 (two word loads per
# tap), stride 3 (one pixel at a time), no / wide padding, 1 to 25 taps, channels whose trits are all zero.
EDGES = {
    "dw-w3": (3, 6, 3, (3, 3), (1, 1), (1, 1), True, False),
    "dw-odd-w5-chain": (5, 9, 5, (3, 3), (1, 1), (1, 1), True, True),
    "dw-w7-s2": (4, 7, 7, (3, 3), (2, 2), (1, 1), True, True),
    "dw-w2-s2-nopad": (2, 5, 2, (1, 1), (2, 2), (0, 0), True, False),
    "dw-5x5-pad2": (3, 9, 11, (5, 5), (1, 1), (2, 2), True, True),
    "dw-1x3-s3": (4, 8, 13, (1, 3), (3, 3), (0, 1), True, False),
    "dw-1tap": (6, 4, 9, (1, 1), (1, 1), (0, 0), True, True),
    "conv-w3-s2": (3, 7, 3, (3, 3), (2, 2), (1, 1), False, True),
    "conv-10x4-s2": (1, 13, 6, (10, 4), (2, 2), (5, 1), False, True),
    "conv-1x1-w1": (7, 5, 1, (1, 1), (1, 1), (0, 0), False, False),
    # rows of 16 outputs or more, in a program with a depthwise conv (added): full convs take the tap kernel too
    # (18 and 27 taps: two 16-trit chunks; 6 output channels: one interleaved block of four and two plain rows)
    "taps-conv-w17": (6, 5, 17, (3, 3), (1, 1), (1, 1), False, True),
    "taps-conv-s2-w33": (6, 5, 33, (3, 3), (2, 2), (1, 1), False, False, 3),
    "taps-1x1-cin8-w21": (6, 3, 21, (1, 1), (1, 1), (0, 0), False, True, 8),
}


def edge_model(name: str, seed: int = 0, zero_channels: bool = True):
    """The model of EDGES[name] (channels, h, w, kernel, stride, padding, depthwise, chained[, input channels of a
    full conv, default 2]): a conv (depthwise or full, some channels all-zero), ReLU-free, optionally a
    1x1 conv streamed from it, then a dense head; the last case of each family ends in the conv itself (its
    int32 scores written by the conv kernel)."""
    c, h, w, k, stride, pad, dw, chain, *rest = EDGES[name]
    cin = c if dw else (rest[0] if rest else 2)
    rng = np.random.default_rng(seed)
    first = conv(rng, c, cin, k, stride, pad, groups=c if dw else 1)
    if zero_channels:
        first.weight[::3] = 0
    nodes = [Node("c1", first, (INPUT,))]
    oh, ow = (h + 2 * pad[0] - k[0]) // stride[0] + 1, (w + 2 * pad[1] - k[1]) // stride[1] + 1
    prev, ch = "c1", c
    if chain:
        nodes.append(Node("c2", conv(rng, 5, c, (1, 1), (1, 1), (0, 0)), ("c1",)))
        prev, ch = "c2", 5
    if name.startswith("taps-"):  # a depthwise conv too: only then do full convs take the tap kernel
        nodes.append(Node("d3", conv(rng, ch, ch, (3, 3), (1, 1), (1, 1), groups=ch), (prev,)))
        prev = "d3"
    nodes += [Node("f", Flatten(), (prev,)), Node("fc", dense(rng, 3, ch * oh * ow), ("f",))]
    return _model(nodes, _image(cin, h, w))


def conv_scores_model(seed: int = 0):
    """A depthwise conv whose output is the scores (its int32 outputs written by the SIMD kernel itself)."""
    rng = np.random.default_rng(seed)
    nodes = [Node("c1", conv(rng, 3, 3, (3, 3), (1, 1), (1, 1), groups=3), (INPUT,)), Node("f", Flatten(), ("c1",))]
    return _model(nodes, _image(3, 3, 1), classes=9)


@pytest.mark.parametrize("packing", ["2bit", "base3"])
@pytest.mark.parametrize("name", sorted(EDGES))
def test_conv_edge_shapes_are_bit_identical_to_emulation(name, packing, tmp_path):
    model = edge_model(name)
    x = np.random.default_rng(3).normal(0.5, 1.5, size=(24, *model.input.shape)).astype(np.float32)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4", packing=packing)
    run = run_host(build_host(tmp_path / "c", tmp_path), x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


def test_depthwise_writing_the_scores_is_bit_identical(tmp_path):
    model = conv_scores_model()
    x = np.random.default_rng(4).normal(0.5, 1.5, size=(16, *model.input.shape)).astype(np.float32)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4")
    assert prog.steps[0].scores
    run = run_host(build_host(tmp_path / "c", tmp_path), x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


@pytest.mark.parametrize("name", ["dw-w3", "dw-odd-w5-chain", "dw-w7-s2", "dw-5x5-pad2", "taps-conv-s2-w33",
                                  "taps-1x1-cin8-w21", "conv-10x4-s2"])
def test_conv_kernels_stay_inside_their_buffers(name, tmp_path):
    """AddressSanitizer and UBSan over the host build: a padded row, a word load or a store past the arena (or
    past the caller's input) aborts the run."""
    model = edge_model(name)
    x = np.random.default_rng(5).normal(0.5, 1.5, size=(6, *model.input.shape)).astype(np.float32)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4")
    exe = tmp_path / "tk_asan"
    cc = subprocess.run(["cc", *CFLAGS, "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-I",
                         str(tmp_path / "c"), str(tmp_path / "c" / "model.c"), str(MCU_DIR / "harness.c"), "-o",
                         str(exe)], capture_output=True, text=True)
    if cc.returncode != 0 and "sanitize" in cc.stderr:
        pytest.skip("the host compiler has no sanitizers")
    assert cc.returncode == 0, cc.stderr
    np.ascontiguousarray(x, np.float32).tofile(tmp_path / "input.bin")
    run = subprocess.run([str(exe)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    scores = np.fromfile(tmp_path / "output.bin", np.int32).reshape(len(x), -1)[:, :model.num_classes]
    np.testing.assert_array_equal(scores, emulate(prog, x))


def test_model_c_holds_only_the_conv_kernels_its_steps_call(tmp_path):
    """Gathering convs only: no tap kernel in model.c; depthwise only: no gathering kernel (flash)."""
    for name, present, absent in (("conv-w3-s2", "tk_conv_gen(", "tk_conv_taps("),
                                  ("dw-w3", "tk_conv_taps(", "tk_conv_gen(")):
        model = edge_model(name)
        x = example_input(model, 8)
        prog = export_c(model, tmp_path / name, x, target="cortex-m4")
        src = (tmp_path / name / "model.c").read_text()
        assert src.count("#define TK_CONV_TAPS ") == 2  # the program's choice, then the kernels' default
        obj = subprocess.run(["cc", "-std=c99", "-O2", "-E", "-P", str(tmp_path / name / "model.c"), "-I",
                              str(tmp_path / name)], capture_output=True, text=True, check=True).stdout
        assert present in obj and absent not in obj, name
        run = run_host(build_host(tmp_path / name, tmp_path), x, model.num_classes, tmp_path)
        np.testing.assert_array_equal(run.scores, emulate(prog, x))


def test_full_convs_take_the_tap_kernel_only_beside_a_depthwise_one():
    """taps-conv-w17 (3x3 on 17-wide rows) has a depthwise conv after it; without one it gathers."""
    from ternkit.export.c.ops import _tap_rows

    model = edge_model("taps-conv-w17")
    x = example_input(model, 4)
    convs = [st for st in build_program(model, x, target="cortex-m4").steps if st.kind == "conv2d"]
    assert [bool(_tap_rows(st)) for st in convs] == [True, True, True]
    alone = _model(list(model.nodes[:1]) + [Node("f", Flatten(), ("c1",)), Node("fc", dense(
        np.random.default_rng(1), 3, 6 * 5 * 17), ("f",))], model.input)
    first = build_program(alone, x, target="cortex-m4").steps[0]
    assert first.kind == "conv2d" and not _tap_rows(first)
