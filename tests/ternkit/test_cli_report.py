"""`ternkit report` from the command line: the four files, the figures agree with the API, and bad input is
exit 2 with one line and no report written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import random_cnn, random_mlp

from ternkit.cli import main
from ternkit.core import load_model, save_model

FILES = {"report.json", "report.md", "memory.png", "energy.png"}


@pytest.fixture
def cnn_tern(tmp_path):
    """A digits-shaped CNN (1x8x8 input); provenance names its dataset, so --dataset can be left out."""
    model = random_cnn()
    model.provenance["dataset"] = "digits"
    path = tmp_path / "cnn.tern"
    save_model(model, path)
    return path


def _fail(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_report_writes_json_markdown_and_charts(tmp_path, cnn_tern, capsys):
    out = tmp_path / "rep"
    assert main(["report", str(cnn_tern), "--target", "loihi2", "--target", "mcu", "--target", "cpu-fp32",
                 "--limit", "50", "-o", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == FILES
    r = json.loads((out / "report.json").read_text())
    assert [t["name"] for t in r["targets"]] == ["loihi2", "mcu", "cpu-fp32"]
    assert r["data"] == {"dataset": "digits", "samples": 50}
    for t in r["targets"]:
        e = t["energy"]
        assert e["per_inference_pj"] == pytest.approx(sum(i["pj"] for i in e["items"]))
        assert e["ratio_vs_float"] == pytest.approx(e["per_inference_pj"] / r["float_baseline"]["per_inference_pj"])
        assert t["assumptions"] and isinstance(t["fit"]["fits"], bool)
    assert r["memory"]["weight_bytes"] == sum(-(-lay["weights"] // 4) for lay in r["memory"]["layers"])
    md = (out / "report.md").read_text()
    assert "## Target `loihi2`" in md and "not published" in md and "NeuroBench" in md
    for png in ("memory.png", "energy.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "loihi2" in capsys.readouterr().out


def test_defaults_report_every_shipped_target(tmp_path, monkeypatch):
    model = random_mlp((4, 8, 3))
    model.provenance["dataset"] = "iris"
    save_model(model, tmp_path / "m.tern")
    monkeypatch.chdir(tmp_path)
    assert main(["report", "m.tern", "--quiet"]) == 0
    r = json.loads((tmp_path / "report" / "report.json").read_text())
    assert {t["name"] for t in r["targets"]} >= {"loihi", "loihi2", "mcu", "cpu-fp32"}


def test_custom_target_and_activity(tmp_path, cnn_tern):
    spec = tmp_path / "mine.toml"
    import importlib.resources as ir

    text = (ir.files("ternkit.targets") / "specs" / "mcu.toml").read_text().replace('name = "mcu"', 'name = "tiny"')
    spec.write_text(text.replace("value = 524288", "value = 128"))  # 128 B of flash: the model (245 B) cannot fit
    layers = [{"index": i, "kind": k, "neurons": n, "fan_out": 1, "messages_per_inference": 10,
               "synaptic_ops_per_inference": 100, "neuron_updates_per_inference": n, "input_activation_sparsity": 0.5}
              for i, (k, n) in enumerate([("conv2d", 64), ("dense", 10)])]
    act = {"format": "ternkit-activity", "version": 1, "backend": "lava", "neuron": "sigma-delta", "timesteps": 1,
           "samples": 5, "accuracy": 1.0, "agreement": 1.0, "samples_per_second": 10.0, "layers": layers,
           "synaptic_ops_per_inference": 200, "neuron_updates_per_inference": 74, "dense_macs_per_inference": 1216,
           "model_fingerprint": load_model(cnn_tern).fingerprint()}
    (tmp_path / "run.json").write_text(json.dumps(act))
    out = tmp_path / "rep"
    assert main(["report", str(cnn_tern), "--target", str(spec), "--target", "loihi", "--activity",
                 str(tmp_path / "run.json"), "-o", str(out)]) == 0
    r = json.loads((out / "report.json").read_text())
    tiny, loihi = r["targets"]
    assert tiny["name"] == "tiny" and tiny["fit"]["fits"] is False
    assert loihi["energy"]["items"][0]["count"] == 200  # synaptic ops from the record
    assert r["activity"]["samples"] == 5


@pytest.mark.parametrize(("extra", "message"), [
    (["--target", "tpu"], "unknown target 'tpu'"),
    (["--target", "missing.toml"], "no such file"),
    (["--activity", "missing.json"], "no such file"),
    (["--dataset", "iris"], "shape"),
    (["--dataset", "nosuchset"], "nosuchset"),
    (["--limit", "0"], "--limit"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, cnn_tern, capsys, extra, message):
    out = tmp_path / "rep"
    err = _fail(capsys, ["report", str(cnn_tern), "-o", str(out), *extra])
    assert message in err
    assert not out.exists()


def test_bad_model_and_output(tmp_path, cnn_tern, capsys):
    (tmp_path / "junk.tern").write_bytes(b"not a model")
    assert "not a ternkit model" in _fail(capsys, ["report", str(tmp_path / "junk.tern"), "-o", str(tmp_path / "r")])
    (tmp_path / "file").write_text("x")
    assert "not a directory" in _fail(capsys, ["report", str(cnn_tern), "-o", str(tmp_path / "file")])


def test_negative_energy_in_custom_target(tmp_path, cnn_tern, capsys):
    import importlib.resources as ir

    text = (ir.files("ternkit.targets") / "specs" / "loihi.toml").read_text().replace("value = 23.6", "value = -23.6")
    (tmp_path / "neg.toml").write_text(text)
    err = _fail(capsys, ["report", str(cnn_tern), "--target", str(tmp_path / "neg.toml"), "-o", str(tmp_path / "r")])
    assert "must not be negative" in err


def test_console_script_exit_code(tmp_path, cnn_tern):
    p = subprocess.run([sys.executable, "-m", "ternkit", "report", str(cnn_tern), "--target", "nope"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1


@pytest.mark.slow
@pytest.mark.lava
def test_report_reads_a_real_lava_activity_record(tmp_path):
    """The record `ternkit simulate` writes (real Lava run) is accepted and drives the neuromorphic figures."""
    model = random_mlp((4, 16, 3), seed=4)
    model.provenance["dataset"] = "iris"
    save_model(model, tmp_path / "m.tern")
    act = tmp_path / "run.json"
    assert main(["simulate", str(tmp_path / "m.tern"), "--backend", "lava", "--dataset", "iris", "--limit", "20",
                 "-o", str(act)]) == 0
    assert main(["report", str(tmp_path / "m.tern"), "--activity", str(act), "--target", "loihi2",
                 "-o", str(tmp_path / "rep")]) == 0
    r = json.loads((tmp_path / "rep" / "report.json").read_text())
    rec = json.loads(act.read_text())
    synops = r["targets"][0]["energy"]["items"][0]
    assert synops["item"] == "synaptic operations"
    assert synops["count"] == pytest.approx(rec["synaptic_ops_per_inference"])
    assert r["activity"]["samples"] == 20
