"""Activity records from `ternkit simulate`: validated on read, and their counts drive neuromorphic energy."""

from __future__ import annotations

import json

import pytest
from _hand import X, one_layer

from ternkit.core import ArtifactError
from ternkit.targets import build_report, load_target, read_activity


def record(**over) -> dict:
    layer = {"index": 0, "kind": "dense", "neurons": 2, "fan_out": 1.0, "messages_per_inference": 3.0,
             "synaptic_ops_per_inference": 5.0, "neuron_updates_per_inference": 4.0,
             "input_activation_sparsity": 0.25}
    rec = {"format": "ternkit-activity", "version": 1, "backend": "lava", "neuron": "sigma-delta", "timesteps": 2,
           "samples": 10, "accuracy": 0.9, "agreement": 1.0, "samples_per_second": 100.0, "layers": [layer],
           "synaptic_ops_per_inference": 5.0, "neuron_updates_per_inference": 4.0, "dense_macs_per_inference": 8.0}
    rec.update(over)
    return rec


def write(tmp_path, rec) -> str:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(rec))
    return str(path)


def test_activity_counts_drive_neuromorphic_energy(tmp_path):
    act = read_activity(write(tmp_path, record()), weight_layers=1)
    loihi = load_target("loihi")
    # no data: every update counted as active
    r = build_report(one_layer(), [loihi], activity=act)
    e = r["targets"][0]["energy"]
    assert e["per_inference_pj"] == pytest.approx(5 * 23.6 + 4 * 81 + 3 * 5.2)
    assert "activity record" in e["counts_from"] and "all neuron updates" in e["counts_from"]
    # with data: the reference's active share (1.5 of 2 neurons) splits the record's 4 updates
    r = build_report(one_layer(), [loihi], activity=act, x=X)
    e = r["targets"][0]["energy"]
    assert e["per_inference_pj"] == pytest.approx(5 * 23.6 + 3 * 81 + 1 * 52 + 3 * 5.2)
    assert r["activity"]["synaptic_ops_per_inference"] == 5.0


@pytest.mark.parametrize(("rec", "message"), [
    (record(format="other"), "not a ternkit activity record"),
    (record(version=2), "version 2 is not supported"),
    (record(backend="GPU; rm -rf"), "backend must be"),  # any name of the grammar is accepted (plug-in backends)
    (record(backend="x" * 41), "backend must be"),
    (record(samples=0), "samples must be a positive integer"),
    (record(layers=[]), "layers must be a non-empty list"),
    (record(layers=[{"neurons": 2}]), "misses 'fan_out'"),
    (record(synaptic_ops_per_inference=-1), "must be"),
    (record(agreement=1.5), r"agreement must be in \[0, 1.0\]"),
    (record(layers=[dict(record()["layers"][0], input_activation_sparsity=2)]), "input_activation_sparsity"),
    ({k: v for k, v in record().items() if k != "dense_macs_per_inference"}, "misses total"),
])
def test_bad_records(tmp_path, rec, message):
    with pytest.raises(ArtifactError, match=message) as e:
        read_activity(write(tmp_path, rec))
    assert "\n" not in str(e.value)


def test_record_of_another_model_and_unreadable_files(tmp_path):
    two = record(layers=record()["layers"] * 2)
    with pytest.raises(ArtifactError, match="2 layers, the model has 1"):
        read_activity(write(tmp_path, two), weight_layers=1)
    with pytest.raises(ArtifactError, match="no such file"):
        read_activity(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_activity(tmp_path / "bad.json")


def test_disagreeing_simulation_is_flagged(tmp_path):
    act = read_activity(write(tmp_path, record(agreement=0.32)), weight_layers=1)
    r = build_report(one_layer(), [load_target("loihi2")], activity=act, x=X)
    assert any("32.0 %" in w for w in r["warnings"])
    from ternkit.targets import markdown

    assert "**Warning**" in markdown(r)
    ok = read_activity(write(tmp_path, record(agreement=1.0)), weight_layers=1)
    assert build_report(one_layer(), [load_target("loihi2")], activity=ok, x=X)["warnings"] == []
