"""An artifact decides nothing about what is read: a model's provenance, a graph's or an activity record's
fields, an ONNX file's external-data references are data, never paths to follow. Only files the user names
on the command line (or in their own pipeline TOML) are opened.

Opened files are observed with a Python audit hook (sys.addaudithook: every `open` in this process, real
files, nothing mocked)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import random_cnn, random_mlp

from ternkit.cli import main
from ternkit.core import save_model

_OPENED: list[str] | None = None


def _hook(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], str | bytes):
        _OPENED.append(str(args[0]))


sys.addaudithook(_hook)


@pytest.fixture
def opened():
    """The paths opened while the test runs."""
    global _OPENED
    _OPENED = []
    yield _OPENED
    _OPENED = None


@pytest.fixture
def secret(tmp_path):
    """A valid CSV a stranger's model names: if ternkit read it, the first line would show."""
    path = tmp_path / "secret" / "passwd.csv"
    path.parent.mkdir()
    path.write_text("root,a,b,c,d\n" + "".join(f"{i % 2},{i},1,2,3\n" for i in range(20)))
    return path


def _model(tmp_path, dataset: str, cnn: bool = False):
    model = random_cnn() if cnn else random_mlp((4, 8, 3))
    model.provenance.update({"dataset": dataset, "seed": 0, "config": {"seed": 0, "val_fraction": 0.2,
                                                                         "teacher": dataset}})
    path = tmp_path / "hostile.tern"
    save_model(model, path)
    return path


def _fail(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _never(opened: list[str], secret) -> None:
    assert not [p for p in opened if "secret" in p], opened


def test_report_never_reads_the_provenance_dataset(tmp_path, secret, opened, capsys):
    m = _model(tmp_path, f"csv:{secret}:root")
    err = _fail(capsys, ["report", str(m), "-o", str(tmp_path / "rep")])
    assert "--dataset" in err and str(secret) in err  # the value is suggested, not followed
    assert "root,a,b" not in err
    _never(opened, secret)
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("spec", ["csv:{s}", "csv:{s}:root", "csv:{s}:root@val", "idx:{d}", "csv:{s}@train:0:0.5"])
def test_export_lava_never_calibrates_on_the_provenance_dataset(tmp_path, secret, opened, capsys, spec):
    m = _model(tmp_path, spec.format(s=secret, d=secret.parent))
    err = _fail(capsys, ["export", "lava", str(m), "-o", str(tmp_path / "g.lava.json")])
    assert "--calibrate" in err and "not a bundled dataset" in err
    _never(opened, secret)
    assert not (tmp_path / "g.lava.json").exists()


def test_the_user_may_name_the_same_file_on_the_command_line(tmp_path, secret, opened, capsys):
    m = _model(tmp_path, f"csv:{secret}:root")
    assert main(["report", str(m), "--dataset", f"csv:{secret}:root", "--target", "mcu",
                 "-o", str(tmp_path / "rep")]) == 0
    assert any("secret" in p for p in opened)  # named by the user: read


def test_a_bundled_provenance_dataset_is_still_the_default(tmp_path, opened, capsys):
    m = _model(tmp_path, "iris")
    assert main(["report", str(m), "--target", "mcu", "--limit", "20", "-o", str(tmp_path / "rep")]) == 0
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["data"]["dataset"] == "iris"


@pytest.mark.parametrize("field,value", [("val_fraction", "abc"), ("val_fraction", [1]), ("seed", "0; rm -rf"),
                                         ("seed", 1.5), ("val_fraction", 10**30)])
def test_non_numeric_provenance_settings_are_one_line_naming_the_file(tmp_path, capsys, field, value):
    model = random_cnn()
    model.provenance.update({"dataset": "digits", "config": {"seed": 0, "val_fraction": 0.2, field: value}})
    save_model(model, tmp_path / "m.tern")
    err = _fail(capsys, ["export", "lava", str(tmp_path / "m.tern"), "-o", str(tmp_path / "g.lava.json")])
    assert "m.tern" in err and field in err, err


def test_activity_record_fields_are_not_followed(tmp_path, secret, opened, capsys):
    """simulate writes a real record; its `model`/`dataset`/`calibration` fields then name the secret."""
    model = random_mlp((4, 8, 3))
    save_model(model, tmp_path / "m.tern")
    rec = tmp_path / "run.json"
    assert main(["simulate", str(tmp_path / "m.tern"), "--backend", "onnx", "--dataset", "iris", "--limit", "10",
                 "-o", str(rec)]) == 0
    data = json.loads(rec.read_text())
    data.update(model=str(secret), dataset=f"csv:{secret}:root", calibration=f"csv:{secret}")
    rec.write_text(json.dumps(data))
    opened.clear()
    assert main(["report", str(tmp_path / "m.tern"), "--activity", str(rec), "--target", "loihi2",
                 "-o", str(tmp_path / "rep")]) == 0
    _never(opened, secret)


def test_activity_record_of_another_model_is_refused(tmp_path, capsys):
    a, b = random_mlp((4, 8, 3), seed=0), random_mlp((4, 8, 3), seed=1)  # same shapes, other weights
    save_model(a, tmp_path / "a.tern")
    save_model(b, tmp_path / "b.tern")
    rec = tmp_path / "a.json"
    assert main(["simulate", str(tmp_path / "a.tern"), "--backend", "onnx", "--dataset", "iris", "--limit", "10",
                 "-o", str(rec)]) == 0
    assert json.loads(rec.read_text())["model_fingerprint"] == a.fingerprint() != b.fingerprint()
    err = _fail(capsys, ["report", str(tmp_path / "b.tern"), "--activity", str(rec), "--dataset", "iris",
                         "-o", str(tmp_path / "rep")])
    assert "measured on another model" in err and "b.tern" in err
    data = json.loads(rec.read_text())
    del data["model_fingerprint"]
    rec.write_text(json.dumps(data))
    err = _fail(capsys, ["report", str(tmp_path / "a.tern"), "--activity", str(rec), "--dataset", "iris",
                         "-o", str(tmp_path / "rep")])
    assert "does not name the model" in err
    assert not (tmp_path / "rep").exists()


def test_onnx_external_data_naming_another_file_is_refused(tmp_path, secret, opened, capsys):
    import onnx
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.zeros(12, np.float32).tobytes(), raw=True)
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", str(secret)), ("offset", "0"), ("length", "48")):
        w.external_data.add(key=k, value=v)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])], [w])
    path = tmp_path / "hostile.onnx"
    onnx.save(helper.make_model(graph), path)
    opened.clear()
    err = _fail(capsys, ["eval", str(path), "--dataset", "iris"])
    assert "external data" in err
    _never(opened, secret)


def test_graph_fields_are_not_followed(tmp_path, secret, opened, capsys):
    model = random_cnn()
    save_model(model, tmp_path / "cnn.tern")
    g = tmp_path / "g.lava.json"
    assert main(["export", "lava", str(tmp_path / "cnn.tern"), "-o", str(g), "--calibrate", "digits"]) == 0
    data = json.loads(g.read_text())
    data["source"] = f"csv:{secret}:root"
    g.write_text(json.dumps(data))
    opened.clear()
    from ternkit.export.lava.graph import load_graph

    assert load_graph(g)["source"] == f"csv:{secret}:root"
    _never(opened, secret)
