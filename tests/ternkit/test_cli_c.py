"""`ternkit export c` and `ternkit simulate --backend c` from the command line (host cc), and bad input: an
unsupported model, a busy output directory, missing tools -- one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import random_mlp

from ternkit.cli import main
from ternkit.core import Flatten, InputSpec, load_dataset, load_model, save_model

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler (cc)")


@pytest.fixture(scope="module")
def tern(tmp_path_factory):
    """A hand-built ternary 64-24-10 MLP for digits (1, 8, 8) that names its dataset, as trained models do."""
    data = load_dataset("digits")
    model = random_mlp((64, 24, 10), seed=5)
    model.layers = [Flatten(), *model.layers]
    model.input = InputSpec((1, 8, 8), np.full((1, 1, 1), data.x.mean(), np.float32),
                            np.full((1, 1, 1), data.x.std(), np.float32))
    model.provenance = {"dataset": "digits", "seed": 0, "config": {"seed": 0, "val_fraction": 0.2}}
    path = tmp_path_factory.mktemp("m") / "digits.tern"
    save_model(model, path)
    return path


def _fail(capsys, argv, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert match in err, err
    return err


def test_export_c_writes_header_and_source(tern, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["export", "c", str(tern), "-o", str(out)]) == 0
    assert "calibrated on" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["model.c", "model.h"]
    header = (out / "model.h").read_text()
    for needle in ("#define TK_INPUTS 64", "#define TK_CLASSES 10", "void tk_quantize(const float *raw, int8_t *q);",
                   "int tk_predict(const int8_t *q, int32_t *scores);"):
        assert needle in header
    assert "digits@train:0:0.2" in (out / "model.c").read_text()  # the calibration data it names


def test_simulate_c_reports_identity_and_agreement(tern, tmp_path, capsys):
    act = tmp_path / "run.json"
    assert main(["simulate", str(tern), "--backend", "c", "--dataset", "digits", "--limit", "300",
                 "-o", str(act), "--build", str(tmp_path / "build")]) == 0
    out = capsys.readouterr().out
    assert "bit-identical to the numpy emulation on every sample" in out
    rec = json.loads(act.read_text())
    assert rec["backend"] == "c" and rec["samples"] == 300 and rec["emulation_identical"]
    assert rec["agreement"] >= 0.95  # a random (untrained) model: int8 rounding flips only near-ties
    assert {"model.c", "model.h", "tk_host"} <= {p.name for p in (tmp_path / "build").iterdir()}


def test_bad_input_is_one_line(tern, tmp_path, capsys, monkeypatch):
    flt = tmp_path / "float.tern"
    save_model(random_mlp((64, 8, 10), kind="float"), flt)
    _fail(capsys, ["export", "c", str(flt), "-o", str(tmp_path / "f")], "ternary")
    assert not (tmp_path / "f").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    _fail(capsys, ["export", "c", str(tern), "-o", str(busy)], "holds other files")
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    _fail(capsys, ["simulate", str(tern), "--backend", "cortex-m4", "--dataset", "digits"], "make mcu-tools")
    _fail(capsys, ["simulate", str(tern), "--backend", "onnx", "--build", str(tmp_path / "b")], "--build")


def test_report_reads_a_c_record_without_measured_sizes(tern, tmp_path, capsys):
    """A host (`c`) run measured no microcontroller: the report takes its activity and estimates the rest."""
    act = tmp_path / "run.json"
    assert main(["simulate", str(tern), "--backend", "c", "--dataset", "digits", "--limit", "50", "-o", str(act)]) == 0
    assert main(["report", str(tern), "--target", "mcu", "--activity", str(act), "-o", str(tmp_path / "r")]) == 0
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["activity"]["backend"] == "c" and "measured" not in rep["targets"][0]


@pytest.mark.mcu
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (`make mcu-tools`)")
def test_report_uses_the_measured_build(tern, tmp_path, capsys):
    build, act = tmp_path / "build", tmp_path / "run.json"
    assert main(["simulate", str(tern), "--backend", "cortex-m4", "--dataset", "digits", "--limit", "20",
                 "--build", str(build), "-o", str(act)]) == 0
    printed = capsys.readouterr().out
    assert "instructions per inference (measured" in printed and "Planned RAM" in printed
    figures = json.loads((build / "mcu.json").read_text())
    assert figures["ram_planned_bytes"] == figures["arena_bytes"] + figures["stack_planned_bytes"]
    for source in (["--build", str(build)], ["--activity", str(act)]):
        out = tmp_path / ("r" + source[0])
        assert main(["report", str(tern), "--target", "mcu", *source, "-o", str(out)]) == 0
        m = json.loads((out / "report.json").read_text())["targets"][0]["measured"]
        assert m["flash_bytes"] == figures["flash_bytes"] and m["ram_bytes"] == figures["ram_bytes"]
        assert {"flash_bytes", "stack_bytes", "ram_bytes", "instructions_per_inference"} <= set(m["measured"])
        assert m["estimated"] == ["energy"]
        assert m["ram_planned_bytes"] == figures["ram_planned_bytes"] >= m["ram_bytes"]
        assert "Measured on a build" in (out / "report.md").read_text()
        assert f"planned RAM {figures['ram_planned_bytes']:,} B" in (out / "report.md").read_text()
    other, changed = tmp_path / "other.tern", load_model(tern)
    changed.nodes[1].op.bias = changed.nodes[1].op.bias + np.float32(1)
    save_model(changed, other)
    _fail(capsys, ["report", str(other), "--target", "mcu", "--dataset", "digits", "--build", str(build),
                   "-o", str(tmp_path / "x")], "another model")
    _fail(capsys, ["report", str(tern), "--target", "mcu", "--build", str(tmp_path), "-o", str(tmp_path / "y")],
          "holds no Cortex-M4 build")
    # the build folder is the user's: a hostile call graph in it plans nothing and reaches no report text
    hostile = tmp_path / "hostile"
    shutil.copytree(build, hostile)
    evil = 'x\x1b[31m\n# `pwn`|<script>'
    (hostile / "model.ci").write_text(f'node: {{ title: "tk_predict" label: "tk_predict\\n8 bytes (static)" }}\n'
                                      f'node: {{ title: "{evil}" label: "x\\n9 bytes (dynamic)" }}\n'
                                      f'edge: {{ sourcename: "tk_predict" targetname: "{evil}" }}\n')
    capsys.readouterr()
    assert main(["report", str(tern), "--target", "mcu", "--build", str(hostile), "-o", str(tmp_path / "z")]) == 0
    text = (tmp_path / "z" / "report.md").read_text() + capsys.readouterr().out
    assert "pwn" not in text and "<script>" not in text and "\x1b" not in text and "planned RAM" not in text
