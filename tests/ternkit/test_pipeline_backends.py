"""The pipeline reads the backend registry: [export] formats exports with any registered backend (C calibrated on
the training part, as `ternkit export c` does), and [simulate] backend runs any of them with the options it
declares."""

import json

import pytest

from ternkit.cli import main
from ternkit.core import OptionError
from ternkit.pipeline import check_pipeline, load_pipeline_config

TOML = """
name = "iris-c"
[data]
dataset = "iris"
[train]
model = "mlp:8"
epochs = 5
batch_size = 16
baseline = ""
[export]
formats = ["c"]
[simulate]
backend = "c"
limit = 20
[report]
targets = ["mcu"]
"""


def test_export_stage_and_c_simulation(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text(TOML)
    assert main(["pipeline", str(cfg), "--runs-dir", str(tmp_path / "runs")]) == 0
    run = tmp_path / "runs" / "iris-c"
    state = json.loads((run / "pipeline.json").read_text())
    assert state["export"]["result"]["artifacts"] == {"c": ["c/model.h", "c/model.c"]}
    assert "iris@train:0:0.2" in (run / "c" / "model.c").read_text()  # calibrated on the training part
    act = json.loads((run / "activity.json").read_text())
    assert act["backend"] == "c" and act["samples"] == 20 and act["emulation_identical"]


def test_unknown_or_simulate_only_formats_are_refused_before_anything_runs(tmp_path):
    cfg = tmp_path / "p.toml"
    for formats, match in (('["fpga"]', "unknown backend 'fpga'"), ('["cortex-m4"]', "'cortex-m4' has no export"),
                           ('"c"', "exports should be list"), ('[1]', "list of backend names")):
        cfg.write_text(TOML.replace('formats = ["c"]', f"formats = {formats}"))
        with pytest.raises(OptionError, match=match):
            check_pipeline(load_pipeline_config(str(cfg)))
