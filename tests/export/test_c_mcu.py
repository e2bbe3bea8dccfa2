"""The C export cross-built for a Cortex-M4 and run in qemu (mps2-an386, semihosting): bit-identical to the
numpy emulation for every operation, no library call in tk_predict, an instruction counter that counts
instructions, and measured sizes. Marked `mcu` (`make test-mcu`; the tools: `make mcu-tools`)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import random_mlp
from op_examples import example_input
from test_c_export import ALL, _make
from test_c_simd import EDGES, SINK_EDGES, _sink_edges, _small_maps, conv_scores_model, edge_model

from ternkit.export.c.build import build_m4, object_sizes, run_m4, undefined_symbols
from ternkit.export.c.emit import export_c
from ternkit.export.c.program import SINKS, emulate
from ternkit.export.c.sim import simulate_c

pytestmark = [pytest.mark.mcu, pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm (`make mcu-tools`)")]


@pytest.mark.parametrize("name", sorted(ALL))
def test_cortex_m4_is_bit_identical_to_emulation(name, tmp_path):
    model = _make(name)
    x = example_input(model, 24)
    prog = export_c(model, tmp_path / "c", x)
    art = build_m4(tmp_path / "c", tmp_path)
    run = run_m4(art["elf"], x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))
    np.testing.assert_array_equal(run.predicted, run.scores.argmax(1))
    assert (run.ticks > 0).all() and (run.stack > 0).all()


def _sections_referencing(obj, symbols: set[str]) -> set[str]:
    """Sections of the object whose relocations name one of `symbols`."""
    out = subprocess.run(["arm-none-eabi-objdump", "-r", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    found, section = set(), None
    for line in out.splitlines():
        m = re.match(r"RELOCATION RECORDS FOR \[(.+)\]:", line)
        if m:
            section = m.group(1)
        elif section and line.split() and line.split()[-1] in symbols:
            found.add(section)
    return found


def test_inference_path_calls_no_library(tmp_path):
    """Only the float edges -- tk_quantize (float input) and tk_outputs (float outputs), with libgcc's soft-float
    helpers -- need anything from outside model.o; tk_predict and its kernels need nothing (both targets)."""
    model = _make("add")
    for target in ("generic", "cortex-m4"):
        export_c(model, tmp_path / target, example_input(model, 8), target=target)
        obj = build_m4(tmp_path / target, tmp_path)["object"]
        undefined = set(undefined_symbols(obj))
        assert undefined and all(s.startswith(("__aeabi_f", "__aeabi_i2f")) for s in undefined), undefined
        assert _sections_referencing(obj, undefined) <= {".text.tk_quantize", ".text.tk_outputs"}


def test_instruction_counter_counts_instructions(tmp_path):
    """The harness times a loop of 100,000 x (subs, bne): the counter must read 200,000 instructions (within
    one tick of 5, plus the two timer reads)."""
    model = random_mlp((8, 6, 3))
    x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    export_c(model, tmp_path / "c", x)
    run = run_m4(build_m4(tmp_path / "c", tmp_path)["elf"], x, 3, tmp_path)
    cal = run.calibration
    assert cal["known_loop_instructions"] == 200_000
    assert abs(cal["known_loop_ticks"] * 5 - 200_000) <= 20, cal


def test_simulate_record_carries_measured_sizes(tmp_path):
    model = random_mlp((40, 32, 5))
    x = np.random.default_rng(0).normal(size=(30, 40)).astype(np.float32)
    rec = simulate_c(model, x, None, "cortex-m4", x, build_dir=tmp_path / "b")
    m = rec["mcu"]
    sec = object_sizes(tmp_path / "b" / "model.o")
    assert m["flash_bytes"] == sec["text"] + sec["rodata"] + sec["data"]
    assert sec["rodata"] >= 32 * 10 + 5 * 8  # the packed trits (a row of 40 is 10 bytes) live in flash
    assert sec["bss"] >= rec["arena_bytes"] == 32
    assert m["ram_bytes"] == sec["data"] + sec["bss"] + m["stack_bytes"] and 0 < m["stack_bytes"] < 1024
    assert m["instructions_min"] <= m["instructions_per_inference"] <= m["instructions_max"]
    assert rec["emulation_identical"] and rec["agreement"] >= 0.9
    assert (tmp_path / "b" / "mcu.json").is_file()


@pytest.mark.parametrize("packing", ["2bit", "base3"])
@pytest.mark.parametrize("name", sorted(ALL))
def test_cortex_m4_simd_kernels_are_bit_identical_to_emulation(name, packing, tmp_path):
    """The DSP path itself (SMLAD, SXTB16, the Thumb-2 inner loops), which the host build cannot run."""
    model = _make(name)
    x = example_input(model, 16)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4", packing=packing)
    run = run_m4(build_m4(tmp_path / "c", tmp_path)["elf"], x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


@pytest.mark.parametrize("packing,bound", [("2bit", 1.75), ("base3", 2.1)])
def test_simd_dense_costs_under_two_instructions_per_mac(packing, bound, tmp_path):
    """784-256-10 (203,264 MACs): measured 1.62 (2-bit) and 1.99 (base-3) instructions per MAC with the
    requantisation, against 7.2 for the portable kernels."""
    model = random_mlp((784, 256, 10))
    x = np.random.default_rng(0).normal(size=(3, 784)).astype(np.float32)
    export_c(model, tmp_path / "c", x, target="cortex-m4", packing=packing)
    run = run_m4(build_m4(tmp_path / "c", tmp_path)["elf"], x, 10, tmp_path)
    per_mac = run.ticks.mean() * 5 / (784 * 256 + 256 * 10)
    assert per_mac <= bound, per_mac


@pytest.mark.parametrize("packing", ["2bit", "base3"])
@pytest.mark.parametrize("name", SINK_EDGES)
def test_conv_streamed_into_pooling_or_dense_is_bit_identical_on_the_m4(name, packing, tmp_path):
    """tk_chain_pool and tk_chain_dense with the DSP dot products: each edge shape of the host test, in qemu."""
    model = _sink_edges()[name]
    x = example_input(model, 16)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4", packing=packing)
    assert any(st.streams_from >= 0 and st.kind in SINKS for st in prog.steps)
    art = build_m4(tmp_path / "c", tmp_path)
    run = run_m4(art["elf"], x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))
    assert not {s for s in undefined_symbols(art["object"]) if not s.startswith("__aeabi_")}  # no memcpy either


@pytest.mark.parametrize("packing", ["2bit", "base3"])
def test_a_run_cut_into_chains_is_bit_identical_on_the_m4(packing, tmp_path):
    model = _small_maps(np.random.default_rng(0))
    x = example_input(model, 16)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4", packing=packing)
    run = run_m4(build_m4(tmp_path / "c", tmp_path)["elf"], x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


@pytest.mark.parametrize("packing", ["2bit", "base3"])
@pytest.mark.parametrize("name", sorted(EDGES))
def test_cortex_m4_conv_edge_shapes_are_bit_identical(name, packing, tmp_path):
    """The depthwise and conv kernels' edge shapes (test_c_simd.EDGES) with the real DSP instructions
    (SXTB16, SADD16/SSUB16, PKHBT/PKHTB, SMLAWB, SSAT)."""
    model = edge_model(name)
    x = np.random.default_rng(3).normal(0.5, 1.5, size=(8, *model.input.shape)).astype(np.float32)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4", packing=packing)
    run = run_m4(build_m4(tmp_path / "c", tmp_path)["elf"], x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))


def test_cortex_m4_depthwise_writing_the_scores_is_bit_identical(tmp_path):
    model = conv_scores_model()
    x = np.random.default_rng(4).normal(0.5, 1.5, size=(8, *model.input.shape)).astype(np.float32)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4")
    run = run_m4(build_m4(tmp_path / "c", tmp_path)["elf"], x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))
