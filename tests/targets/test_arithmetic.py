"""The figures checked by hand on a model small enough to count on paper: one dense layer with known zeros."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _hand import X, one_layer

from ternkit.targets import build_report, count_ops, load_target, model_memory, totals


@pytest.fixture
def report() -> dict:
    targets = [load_target(n) for n in ("cpu-fp32", "mcu", "loihi", "loihi2")]
    return build_report(one_layer(), targets, x=X, dataset="hand")


def by_name(report: dict) -> dict:
    return {t["name"]: t for t in report["targets"]}


def test_operation_counts():
    (o,) = count_ops(one_layer(), X)
    assert (o.dense_macs, o.nonzero_weight_macs, o.neurons, o.weights, o.nonzero_weights) == (8, 4, 2, 8, 4)
    # sample 1: input 0 meets 1 non-zero weight, input 2 meets 2 -> 3; sample 2: input 3 meets 1 -> 1
    assert o.effective_macs == pytest.approx(2.0)
    assert o.messages == pytest.approx(1.5)
    assert o.input_activation_sparsity == pytest.approx(5 / 8)
    # sample 1: both outputs get input; sample 2: only output 1 (weight of input 3 into output 0 is zero)
    assert o.active_neurons == pytest.approx(1.5)
    assert totals([o])["connection_sparsity"] == pytest.approx(0.5)


def test_memory():
    model = one_layer()
    m = model_memory(model, count_ops(model))
    assert m["weight_bytes"] == 2  # 8 trits at 2 bits, 4 per byte
    assert m["parameter_bytes"] == 2 + 4 + 8  # + one float32 scale + two float32 biases
    assert m["float32_parameter_bytes"] == 4 * (8 + 2)
    assert m["neurobench_footprint_bytes"] == 4 * (8 + 1 + 2)
    p = np.array([1, 4, 3]) / 8  # -1, 0, +1
    assert m["entropy_weight_bytes"] * 8 == pytest.approx(8 * float(-(p * np.log2(p)).sum()))
    assert m["bits_per_learned_parameter"] == pytest.approx(14 * 8 / 8)
    # compression = the float parameters (8 weights + 2 biases) / the 14 stored bytes, as in the training metrics
    assert m["compression_vs_float32"] == pytest.approx(40 / 14)
    assert m["compression_vs_float64"] == pytest.approx(80 / 14)
    assert m["peak_activation_elements"] == 4 + 2


def test_energy_cpu_and_float_baseline(report):
    cpu = by_name(report)["cpu-fp32"]["energy"]
    # 4 non-zero-weight adds x 0.9 + 2 scale mults x 3.7 + 2 bias adds x 0.9
    # + ceil(14 B * 8 / 32) = 4 DRAM words x 640 + (4 + 2) fp32 activations written and read: 12 x 5
    assert cpu["per_inference_pj"] == pytest.approx(4 * 0.9 + 2 * 3.7 + 2 * 0.9 + 4 * 640 + 12 * 5)
    # float32: 8 MACs x 4.6 + 2 bias adds x 0.9 + (8 + 2) DRAM words x 640 + 12 SRAM words x 5
    base = 8 * 4.6 + 2 * 0.9 + 10 * 640 + 12 * 5
    assert report["float_baseline"]["per_inference_pj"] == pytest.approx(base)
    assert cpu["float_baseline_pj"] == pytest.approx(base)
    assert cpu["ratio_vs_float"] == pytest.approx(cpu["per_inference_pj"] / base)


def test_energy_mcu(report):
    mcu = by_name(report)["mcu"]
    # int32 adds 4 x 0.1, int32 mults 2 x 3.1, bias 2 x 0.1, 4 flash words x 50, 6 int8 activations = 2 words x2 x 5
    assert mcu["energy"]["per_inference_pj"] == pytest.approx(0.4 + 6.2 + 0.2 + 200 + 20)
    assert mcu["fit"]["fits"] and mcu["fit"]["peak_activation_bytes"] == 6


def test_energy_loihi(report):
    for name in ("loihi", "loihi2"):
        t = by_name(report)[name]
        # 2 synaptic ops x 23.6 + 1.5 active x 81 + 0.5 inactive x 52 + 1.5 messages x (1.7 + 3.5)
        assert t["energy"]["per_inference_pj"] == pytest.approx(2 * 23.6 + 1.5 * 81 + 0.5 * 52 + 1.5 * 5.2)
        assert t["fit"]["cores_needed"] == 1 and t["fit"]["fits"]


def test_every_estimate_carries_assumptions_and_sources(report):
    for t in report["targets"]:
        assert t["assumptions"]
        assert all(c["source"] for c in t["spec"]["constants"].values())
        assert t["energy"]["counts_from"]
    assert any("not published" in a for a in by_name(report)["loihi2"]["assumptions"])
    assert not math.isnan(report["memory"]["entropy_bits_per_weight"])


def test_dense_alternative_on_the_mcu(report):
    alt = by_name(report)["mcu"]["energy"]["dense_alternative"]
    # int8 model: 8 MACs x (0.2 + 0.1) + 2 bias adds x 0.1 + (8 x 8 + 2 x 32 bits = 4 words) x 50 + 2 x 2 words x 5
    assert alt["weight_bits"] == 8
    assert alt["per_inference_pj"] == pytest.approx(8 * 0.3 + 2 * 0.1 + 4 * 50 + 4 * 5)
    cpu = by_name(report)["cpu-fp32"]["energy"]["dense_alternative"]
    assert cpu["per_inference_pj"] == pytest.approx(report["float_baseline"]["per_inference_pj"])
    assert by_name(report)["loihi"]["energy"]["dense_alternative"] is None
