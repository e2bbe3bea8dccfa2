"""The lean requantisation parameters of the C export (export/c/fixed.py): int16 multipliers and biases, one
exponent per term, the bias shift; their edge cases (a huge bias, a zero-scale channel, a multiplier that
underflows 16 bits) bit-identical between the numpy emulation and the C built for the host and, marked `mcu`,
for the Cortex-M4 in qemu; the widths of the arrays model.c stores; the base-3 decode table's size and the
dense-only programs that need no leftover-rows code."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from conftest import random_mlp

from ternkit.core import Dense, InputSpec, ReLU, TernaryModel
from ternkit.export.c.build import build_host, build_m4, run_host, run_m4
from ternkit.export.c.emit import export_c
from ternkit.export.c.fixed import LIMIT, choose, term
from ternkit.export.c.program import emulate

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler (cc)")
needs_m4 = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                              reason="needs arm-none-eabi-gcc and qemu-system-arm (`make mcu-tools`)")


def _edge_model() -> TernaryModel:
    """10 -> 12 -> 5 with a zero-scale channel, a channel 10^-7 times smaller than the others (its int16
    multiplier underflows), a channel whose bias is 10^4 times its weights' reach (saturated, 16 bits of
    bias do not hold it without the shift) and scores whose biases dwarf their sums."""
    rng = np.random.default_rng(3)
    w1 = rng.choice(np.array([-1, 0, 1], np.int8), size=(12, 10))
    s1 = rng.uniform(0.05, 0.3, 12).astype(np.float32)
    s1[0], s1[1] = 0.0, 3e-8
    b1 = rng.normal(0, 0.1, 12).astype(np.float32)
    b1[2] = 1e4
    w2 = rng.choice(np.array([-1, 0, 1], np.int8), size=(5, 12))
    b2 = np.array([5e3, -7e3, 0.0, 1.0, -2e4], np.float32)
    spec = InputSpec((10,), np.zeros(10, np.float32), np.ones(10, np.float32))
    m = TernaryModel([Dense(w1, s1, b1), ReLU(), Dense(w2, rng.uniform(0.05, 0.3, 5).astype(np.float32), b2)],
                     spec, [f"k{i}" for i in range(5)])
    m.validate()
    return m


def _input(n: int = 64) -> np.ndarray:
    return np.random.default_rng(4).normal(0, 2, size=(n, 10)).astype(np.float32)


def test_choose_stores_int16_multipliers_and_biases_one_exponent_per_term():
    rng = np.random.default_rng(0)
    g = rng.uniform(0.01, 0.3, 64)
    g[5], g[6] = 0.0, 1e-9
    beta = rng.normal(0, 5.0, 64)
    beta[7] = 3e4
    rq = choose([g], [np.full(64, 128 * 40)], beta, s_out=0.05)
    assert rq.m.dtype == np.int64 and np.abs(rq.m).max() < 1 << 15 and np.abs(rq.m).max() >= 1 << 14
    assert np.all(rq.e == rq.e[0, 0])  # one exponent for every channel
    assert rq.m[0, 5] == 0 and rq.m[0, 6] == 0  # a zero gain, and one below 2^-17 of a unit of t
    assert np.abs(rq.b_stored).max() <= (1 << 15) - 1 and rq.bs > 0
    np.testing.assert_array_equal(rq.b, rq.b_stored << rq.bs)
    # the bias is kept to 2^-15 of itself: beta / s_out * 2^sh plus the rounding halves
    exact = beta / 0.05 * 2.0 ** rq.sh + ((1 << rq.sh) >> 1) + 0.5
    assert np.all(np.abs(rq.b - exact) <= np.maximum(2.0 ** (rq.bs - 1), 0.5))
    assert np.abs(rq.b - exact)[7] <= abs(exact[7]) * 2.0 ** -15


def test_every_channel_shifted_by_the_shared_exponent_stays_within_int32():
    """The largest input bound of any channel, shifted by the exponent of the largest gain, fits 31 bits, and
    the sum t stays below 2^29 (so no int32 can overflow, whatever the input)."""
    rng = np.random.default_rng(1)
    g = rng.uniform(1e-4, 2.0, 32)
    bound = rng.integers(128, 128 * 500, 32)
    rq = choose([g], [bound], rng.normal(0, 1, 32), s_out=0.02)
    assert int(bound.max()) << int(rq.e[0, 0]) < 1 << 31
    worst = np.abs(term(bound, rq.m[0], rq.e[0])).max() + np.abs(rq.b).max()
    assert worst < LIMIT


def test_term_is_smlawb():
    """hm(v << e, m) = ((v << e) * m) >> 16 rounded down, as SMLAWB computes it, negative values included."""
    rng = np.random.default_rng(2)
    v = rng.integers(-40000, 40000, 500)
    m = rng.integers(-(1 << 15), 1 << 15, 500)
    e = rng.integers(0, 15, 500)
    expect = [((int(a) << int(s)) * int(b)) // 65536 for a, b, s in zip(v, m, e, strict=True)]
    np.testing.assert_array_equal(term(v, m, e), expect)


def _arrays(src: str) -> dict[str, tuple[str, int]]:
    """name -> (C type, length) of every constant array model.c declares."""
    return {n: (t, int(k)) for t, n, k in re.findall(r"static const (\w+) (\w+)\[(\d+)\]", src)}


@needs_cc
def test_edge_channels_are_bit_identical_on_the_host_and_stored_lean(tmp_path):
    model = _edge_model()
    x = _input()
    prog = export_c(model, tmp_path / "c", x[:32], source="test")
    run = run_host(build_host(tmp_path / "c", tmp_path), x, 5, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))
    assert prog.steps[0].rqs[0].m[0, 0] == 0 and prog.steps[0].rqs[0].m[0, 1] == 0
    assert prog.steps[-1].rqs[0].bs > 0  # the scores' biases needed the shift
    arrays = _arrays((tmp_path / "c" / "model.c").read_text())
    for k, rows in enumerate((12, 5)):
        assert arrays[f"tk_s{k}_m"] == ("int16_t", rows)
        assert arrays[f"tk_s{k}_b"] == ("int16_t", rows)
        assert arrays[f"tk_s{k}_e"] == ("uint8_t", 1)


@needs_cc
@pytest.mark.parametrize("packing", ["2bit", "base3"])
def test_dense_only_simd_program_pads_rows_to_blocks_and_drops_the_leftover_code(packing, tmp_path):
    """784-256-10: the classifier's 10 rows padded to 12, so no code for leftover rows (TK_ROWS_OF_FOUR), the
    scores still the emulation's bit for bit (host build of the SIMD kernels)."""
    model = random_mlp((784, 256, 10))
    x = np.random.default_rng(0).normal(size=(8, 784)).astype(np.float32)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4", packing=packing)
    src = (tmp_path / "c" / "model.c").read_text()
    assert "#define TK_ROWS_OF_FOUR 1" in src and all(st.blocks for st in prog.steps if st.kind == "dense")
    per = {"2bit": 4, "base3": 5}[packing]
    assert _arrays(src)["tk_s1_w"][1] == 12 * -(-256 // per)  # 12 rows stored, 10 computed
    run = run_host(build_host(tmp_path / "c", tmp_path), x, 10, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


@needs_cc
def test_conv_programs_keep_the_leftover_rows_code(tmp_path):
    from op_examples import example_input, example_model

    model = example_model("conv2d")
    x = example_input(model, 8)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4", packing="base3")
    src = (tmp_path / "c" / "model.c").read_text()
    assert "TK_ROWS_OF_FOUR" not in src.replace("#ifndef TK_ROWS_OF_FOUR", "").replace(
        "#ifdef TK_ROWS_OF_FOUR", "") and not any(st.blocks for st in prog.steps)
    run = run_host(build_host(tmp_path / "c", tmp_path), x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


def test_base3_decode_table_is_243_entries_and_a_byte_table():
    from ternkit.export.c.kernels import lut_c

    arrays = dict(re.findall(r"static const \w+ (\w+)((?:\[\d+\])+)", lut_c("base3")))
    assert arrays == {"tk_trits": "[2][243]", "tk_trits_c": "[243]"}
    assert "int8_t tk_trits_c" in lut_c("base3")  # 2 x 243 x 4 + 243 = 2,187 bytes


@pytest.mark.mcu
@needs_m4
@pytest.mark.parametrize("target,packing", [("generic", "2bit"), ("cortex-m4", "2bit"), ("cortex-m4", "base3")])
def test_edge_channels_are_bit_identical_on_the_cortex_m4(target, packing, tmp_path):
    """The SMLAWB of the DSP extension against the emulation, on the edge channels."""
    model = _edge_model()
    x = _input(24)
    prog = export_c(model, tmp_path / "c", x, target=target, packing=packing)
    run = run_m4(build_m4(tmp_path / "c", tmp_path)["elf"], x, 5, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))
