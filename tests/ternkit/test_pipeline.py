"""The whole pipeline end to end on iris (real training, onnxruntime, Lava simulator, report)."""

import json

import pytest

from ternkit.cli import main
from ternkit.core import OptionError
from ternkit.pipeline import load_pipeline_config

TOML = """
name = "iris"
[data]
dataset = "iris"
[train]
model = "mlp:16"
epochs = 40
batch_size = 16
seed = 1
[simulate]
limit = 30
[report]
targets = ["loihi2", "mcu", "cpu-fp32"]
"""


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    cfg = root / "p.toml"
    cfg.write_text(TOML)
    code = main(["pipeline", str(cfg), "--runs-dir", str(root / "runs")])
    assert code == 0
    return root, root / "runs" / "iris"


@pytest.mark.lava
def test_pipeline_writes_every_artifact(iris_run):
    _, run = iris_run
    for name in ("model.tern", "float.tern", "model.onnx", "model.lava.json", "activity.json", "summary.md",
                 "summary.json", "summary.png", "report/report.json", "report/report.md"):
        assert (run / name).exists(), name
    state = json.loads((run / "pipeline.json").read_text())
    assert all(state[s]["status"] == "done" for s in ("train", "export-onnx", "eval", "export-lava", "simulate",
                                                      "report", "summary"))


@pytest.mark.lava
def test_summary_figures_match_the_parts(iris_run, capsys):
    _, run = iris_run
    summary = json.loads((run / "summary.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(run / "model.onnx"), "--dataset", "iris@val:1:0.2", "--json"]) == 0
    onnx_acc = json.loads(capsys.readouterr().out)["accuracy"]
    assert summary["accuracy"]["ONNX (int2, onnxruntime)"] == onnx_acc
    activity = json.loads((run / "activity.json").read_text())
    assert summary["agreement"] == activity["agreement"] and activity["samples"] == 30
    assert summary["memory"]["bits_per_weight"] == 2.0


@pytest.mark.lava
def test_resume_skips_finished_stages(iris_run, capsys):
    root, run = iris_run
    before = (run / "model.tern").stat().st_mtime_ns
    assert main(["pipeline", str(root / "p.toml"), "--runs-dir", str(root / "runs"), "--resume"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert (run / "model.tern").stat().st_mtime_ns == before


def test_bad_pipeline_files(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochz = 3\n")
    assert main(["pipeline", str(bad), "--runs-dir", str(tmp_path)]) == 2
    assert "unknown key" in capsys.readouterr().err
    bad.write_text("[train]\nepochs = 'many'\n")
    with pytest.raises(OptionError, match="epochs"):
        load_pipeline_config(str(bad))
    bad.write_text("not = [toml")
    assert main(["pipeline", str(bad)]) == 2
    assert main(["pipeline", str(tmp_path / "missing.toml")]) == 2


def test_failed_stage_stops_with_clear_message(tmp_path, capsys):
    cfg = tmp_path / "p.toml"
    cfg.write_text('name = "x"\n[data]\ndataset = "csv:/no/such.csv"\n')
    assert main(["pipeline", str(cfg), "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "stage train failed" in err and len(err.strip().splitlines()) == 1


def test_an_interrupt_wrapped_by_an_import_is_an_interrupt():
    """Ctrl-C during a C extension's initialisation surfaces as ImportError caused by KeyboardInterrupt: the
    pipeline treats it as the interrupt (exit 130), not as a failed stage or a traceback."""
    from ternkit.pipeline import _interrupted

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as k:
            raise ImportError("initialization failed") from k
    except ImportError as e:
        assert _interrupted(e)
    assert not _interrupted(ImportError("no module named x")) and not _interrupted(OptionError("bad"))
