"""Validation in one place: a defect is refused when the file is loaded or the spec parsed, in one line that
names the file and the layer or field -- not deep inside an exporter. CSV headers with a UTF-8 BOM read
correctly, a finite value overflowing float32 is reported as such, a multi-line header cell does not split
a message, and "no such file" is said only when there is no such file."""

from __future__ import annotations

import json
import os
import struct

import pytest
from conftest import random_cnn, random_mlp

from ternkit.cli import main
from ternkit.core import load_dataset, load_model, save_model
from ternkit.core.errors import TernkitError


def _fail(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _edit_metadata(path, edit) -> None:
    """Rewrite the JSON metadata in a saved .tern (the tensors stay as they are)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["ternkit"])
    edit(meta)
    header["__metadata__"]["ternkit"] = json.dumps(meta)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])


def _node(meta, op):
    return next(n for n in meta["nodes"] if n["op"] == op)


@pytest.mark.parametrize("edit,words", [
    (lambda m: _node(m, "dense")["attrs"].update(shape=[0, 64]), ["layer3", "shape"]),  # zero-width layer
    (lambda m: _node(m, "conv2d")["attrs"].update(stride=[0, 2]), ["layer0", "stride"]),
    (lambda m: _node(m, "conv2d")["attrs"].update(padding=[-1, 1]), ["layer0", "padding"]),
    (lambda m: _node(m, "dense")["attrs"].update(shape=[10, 63]), ["layer3"]),  # packed bytes disagree
])
@pytest.mark.parametrize("command", ["eval", "export lava", "report"])
def test_bad_layers_are_refused_when_the_model_loads(tmp_path, capsys, edit, words, command):
    path = tmp_path / "bad.tern"
    save_model(random_cnn(), path)
    _edit_metadata(path, edit)
    with pytest.raises(TernkitError) as e:
        load_model(path)
    assert "\n" not in str(e.value)
    argv = {"eval": ["eval", str(path), "--dataset", "digits"],
            "export lava": ["export", "lava", str(path), "-o", str(tmp_path / "g.lava.json"), "--calibrate", "digits"],
            "report": ["report", str(path), "--dataset", "digits", "-o", str(tmp_path / "rep")]}[command]
    err = _fail(capsys, argv)
    assert "bad.tern" in err and all(w in err for w in words), err
    assert not (tmp_path / "g.lava.json").exists() and not (tmp_path / "rep").exists()


@pytest.mark.parametrize("spec", ["digits@val:x", "digits@val:0:0.2.3", "digits@val:0:1.5", "digits@val:0:0",
                                  "digits@val:-1", "digits@val:0:0.2:7", "digits@train::0.2", "digits@val:",
                                  "digits@val:99999999999"])
def test_malformed_split_specs_are_refused_when_parsed(capsys, spec):
    with pytest.raises(TernkitError, match="malformed split spec") as e:
        load_dataset(spec)
    assert "\n" not in str(e.value)
    err = _fail(capsys, ["train", "--dataset", spec, "--epochs", "1", "--quiet", "--out", "/nonexistent/x.tern"])
    assert spec in err


def test_good_split_specs_still_work():
    assert len(load_dataset("iris@val")) == 30 and len(load_dataset("iris@val:3:0.1")) == 15
    assert len(load_dataset("iris@train:0:0.5")) == 75


def test_csv_header_with_a_utf8_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefflabel,a,b\nx,1,2\ny,3,4\nx,5,6\n".encode())
    d = load_dataset(f"csv:{path}")  # the label column is found: "label", not "\ufefflabel"
    assert d.labels == ["x", "y"] and d.x.tolist() == [[1, 2], [3, 4], [5, 6]]
    path.write_bytes("\ufeffa,b,species\n1,2,x\n3,4,y\n".encode())
    assert load_dataset(f"csv:{path}:species").labels == ["x", "y"]


@pytest.mark.parametrize("value", ["1e39", "-3.5e38", "1" + "0" * 40])
def test_finite_value_overflowing_float32_is_reported_as_such(tmp_path, value):
    path = tmp_path / "big.csv"
    path.write_text(f"label,a,b\nx,1,2\ny,3,{value}\n")
    with pytest.raises(TernkitError, match="overflows float32") as e:
        load_dataset(f"csv:{path}")
    assert "line 3" in str(e.value) and "'b'" in str(e.value) and "\n" not in str(e.value)


def test_infinite_and_nan_values_are_still_refused(tmp_path):
    path = tmp_path / "inf.csv"
    path.write_text("label,a\nx,1\ny,inf\n")
    with pytest.raises(TernkitError, match="NaN or inf"):
        load_dataset(f"csv:{path}")


def test_multi_line_header_cell_does_not_split_the_message(tmp_path, capsys):
    path = tmp_path / "ml.csv"
    path.write_text('"first\nsecond",label\n1,x\nzz,y\n')
    err = _fail(capsys, ["train", "--dataset", f"csv:{path}", "--epochs", "1", "--quiet",
                         "--out", str(tmp_path / "m.tern")])
    assert "'first second'" in err and "line 4" in err and "non-numeric" in err, err
    err = _fail(capsys, ["train", "--dataset", f"csv:{path}:nope\nmore", "--epochs", "1", "--quiet",
                         "--out", str(tmp_path / "m.tern")])
    assert "no column named" in err


@pytest.mark.parametrize("make,expect", [
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: os.symlink("/dev/null", p), "not a regular file"),
    (lambda p: os.mkfifo(p), "not a regular file"),
    (lambda p: os.symlink(p.parent / "gone", p), "no such file"),  # a dangling link: there is no such file
    (lambda p: None, "no such file"),
])
@pytest.mark.parametrize("kind", ["model", "csv", "target", "activity", "pipeline", "graph"])
def test_no_such_file_only_when_there_is_no_such_file(tmp_path, capsys, make, expect, kind):
    name = {"model": "x.tern", "csv": "x.csv", "target": "x.toml", "activity": "x.json", "pipeline": "x.toml",
            "graph": "x.lava.json"}[kind]
    p = tmp_path / name
    make(p)
    ok = tmp_path / "ok.tern"
    save_model(random_mlp((4, 8, 3)), ok)
    argv = {"model": ["eval", str(p), "--dataset", "iris"],
            "csv": ["eval", str(ok), "--dataset", f"csv:{p}"],
            "target": ["report", str(ok), "--dataset", "iris", "--target", str(p), "-o", str(tmp_path / "rep")],
            "activity": ["report", str(ok), "--dataset", "iris", "--activity", str(p), "-o", str(tmp_path / "rep")],
            "pipeline": ["pipeline", str(p)],
            "graph": ["simulate", str(ok), "--graph", str(p), "--dataset", "iris"]}[kind]
    err = _fail(capsys, argv)
    assert expect in err and str(p) in err, err
    if expect != "no such file":
        assert "no such file" not in err


def test_export_without_a_format_prints_one_line_on_stderr(capsys):
    assert main(["export"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "error: choose a format" in err and "onnx" in err
