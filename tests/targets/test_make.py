"""`ternkit.report_model`: which data a report measures on, and the same report `ternkit report` writes."""

from __future__ import annotations

import json

import pytest
from conftest import random_mlp

import ternkit
from ternkit.cli import main
from ternkit.core import OptionError, save_model
from ternkit.targets import build_report, load_target, report_model


@pytest.fixture
def tern(tmp_path):
    model = random_mlp((4, 8, 3))
    model.provenance["dataset"] = "iris"
    path = tmp_path / "m.tern"
    save_model(model, path)
    return model, path


def test_bundled_training_data_is_the_default(tern):
    model, path = tern
    r = report_model(path, ["mcu", "loihi2", "mcu"], limit=40)
    assert r["data"] == {"dataset": "iris", "samples": 40}
    assert [t["name"] for t in r["targets"]] == ["mcu", "loihi2"]  # a target named twice is reported once
    assert r["model"]["path"] == str(path)
    from ternkit.core import load_dataset

    direct = build_report(model, [load_target("mcu"), load_target("loihi2")], x=load_dataset("iris").spread(40).x,
                          model_path=str(path), dataset="iris")
    assert r == direct


def test_a_model_that_names_a_file_is_never_read_from(tmp_path):
    model = random_mlp((4, 8, 3))
    model.provenance["dataset"] = f"csv:{tmp_path / 'secret.csv'}"
    with pytest.raises(OptionError, match="give --dataset SPEC.*trained on"):
        report_model(model, ["mcu"])
    r = report_model(model, ["mcu"], dataset="iris", limit=10)
    assert r["data"] == {"dataset": "iris", "samples": 10}


def test_limit_and_shape_are_checked(tern):
    _, path = tern
    with pytest.raises(OptionError, match="--limit must be at least 1, got 0"):
        report_model(path, ["mcu"], limit=0)
    with pytest.raises(OptionError, match="the model expects"):
        report_model(path, ["mcu"], dataset="digits")


def test_the_cli_writes_the_api_report(tern, tmp_path):
    _, path = tern
    assert main(["report", str(path), "--target", "mcu", "--limit", "25", "--quiet", "-o", str(tmp_path / "r")]) == 0
    written = json.loads((tmp_path / "r" / "report.json").read_text())
    assert written == json.loads(json.dumps(ternkit.report_model(path, ["mcu"], limit=25)))
