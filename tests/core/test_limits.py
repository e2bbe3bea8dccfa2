"""Resource limits: every reader takes regular files of a bounded size only, declared sizes are checked
before anything is allocated, and nesting / integer sizes in JSON and TOML are bounded. Each case is one
line (a TernkitError, CLI exit 2), quickly: never a hang, a MemoryError or a traceback.

Real files throughout: a symlink to /dev/zero, a FIFO, a 3 GB sparse file made with truncate."""

from __future__ import annotations

import gzip
import json
import os
import resource
import struct
import time

import numpy as np
import pytest
from conftest import random_cnn, random_mlp

from ternkit.cli import main
from ternkit.core import load_dataset, load_model, save_model
from ternkit.core.errors import TernkitError
from ternkit.core.readers import LIMITS, MAX_DEPTH, parse_json, read_gzip, read_json, read_toml
from ternkit.export.lava.graph import load_graph
from ternkit.pipeline import load_pipeline_config
from ternkit.targets import load_target, read_activity


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert msg and "\n" not in msg and "Traceback" not in msg, msg
    return msg


def _hostile(tmp_path, name: str, kind: str):
    """A file at tmp_path/name that must not be read: a link to /dev/zero, a FIFO, or a 3 GB sparse file."""
    path = tmp_path / name
    if kind == "zero":
        os.symlink("/dev/zero", path)
    elif kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block forever
    else:
        with open(path, "wb") as f:
            f.truncate(3 << 30)
    return path


READERS = {  # reader name -> (file name, call)
    "model": ("m.tern", load_model),
    "graph": ("g.lava.json", load_graph),
    "activity": ("a.json", read_activity),
    "target": ("t.toml", load_target),
    "pipeline": ("p.toml", load_pipeline_config),
    "csv": ("d.csv", lambda p: load_dataset(f"csv:{p}")),
    "json": ("x.json", lambda p: read_json(p, "JSON")),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["zero", "fifo", "sparse"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_refuses_devices_fifos_and_huge_files(tmp_path, reader, kind):
    name, call = READERS[reader]
    path = _hostile(tmp_path, name, kind)
    t0 = time.perf_counter()
    with pytest.raises(TernkitError) as e:
        call(str(path))
    msg = _one_line(e.value)
    assert time.perf_counter() - t0 < 5
    assert ("not a regular file" in msg) if kind != "sparse" else ("larger than" in msg), msg
    assert "no such file" not in msg


@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv", [
    ["eval", "{f}.tern", "--dataset", "iris"],
    ["report", "{f}.tern", "-o", "{d}/rep"],
    ["export", "onnx", "{f}.tern", "-o", "{d}/m.onnx"],
    ["export", "lava", "{f}.tern", "-o", "{d}/m.lava.json"],
    ["simulate", "{f}.tern", "--backend", "onnx", "--dataset", "iris"],
    ["eval", "{ok}", "--dataset", "csv:{f}.csv"],
    ["report", "{ok}", "--target", "{f}.toml", "-o", "{d}/rep"],
    ["report", "{ok}", "--activity", "{f}.json", "-o", "{d}/rep"],
    ["simulate", "{ok}", "--graph", "{f}.lava.json", "--dataset", "iris"],
    ["pipeline", "{f}.toml"],
])
def test_cli_answers_hostile_files_with_one_line(tmp_path, capsys, argv):
    for suffix in (".tern", ".csv", ".toml", ".json", ".lava.json"):
        os.symlink("/dev/zero", tmp_path / f"z{suffix}")
    model = random_mlp((4, 8, 3))
    model.provenance["dataset"] = "iris"
    save_model(model, tmp_path / "ok.tern")
    argv = [a.format(f=tmp_path / "z", d=tmp_path, ok=tmp_path / "ok.tern") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a regular file" in err, err
    assert not (tmp_path / "rep").exists()


def _idx(path, dims, body: bytes, gz: bool, declared_ndim: int | None = None):
    head = b"\0\0\x08" + bytes([len(dims) if declared_ndim is None else declared_ndim])
    data = head + struct.pack(f">{len(dims)}I", *dims) + body
    if gz:
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(data)
    else:
        path.write_bytes(data)


def test_gzip_bomb_is_refused_by_its_declared_size_without_using_memory(tmp_path):
    """2.6 GB declared, ~2.6 MB compressed: refused after reading the header, not after expanding."""
    d = tmp_path / "bomb"
    d.mkdir()
    with gzip.open(d / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(b"\0\0\x08\x03" + struct.pack(">3I", 40000, 256, 256))
        for _ in range(2600):
            f.write(bytes(1 << 20))
    _idx(d / "train-labels-idx1-ubyte.gz", [40000], bytes(40000), gz=True)
    assert os.path.getsize(d / "train-images-idx3-ubyte.gz") < 16 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(TernkitError, match="declares 2621440016 bytes, more than the 256 MiB limit") as e:
        load_dataset(f"idx:{d}")
    _one_line(e.value)
    assert time.perf_counter() - t0 < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 << 10  # KiB: < 64 MiB more


def test_gzip_holding_more_than_declared_stops_at_the_declared_size(tmp_path):
    d = tmp_path / "more"
    d.mkdir()
    with gzip.open(d / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(b"\0\0\x08\x03" + struct.pack(">3I", 10, 28, 28))
        for _ in range(400):  # 400 MB of body behind a header that declares 7,840 bytes
            f.write(bytes(1 << 20))
    _idx(d / "train-labels-idx1-ubyte.gz", [10], bytes(range(10)), gz=True)
    t0 = time.perf_counter()
    with pytest.raises(TernkitError, match="more data than its header declares") as e:
        load_dataset(f"idx:{d}")
    _one_line(e.value)
    assert time.perf_counter() - t0 < 2


def test_read_gzip_without_a_header_is_bounded_too(tmp_path):
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(bytes(8 << 20))
    assert len(read_gzip(path, 9 << 20, "test")) == 8 << 20
    with pytest.raises(TernkitError, match="decompresses to more than"):
        read_gzip(path, 1 << 20, "test")


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dims,body,declared,match", [
    ([2**32 - 1] * 3, bytes(100), None, "declares"),  # product overflows 64 bits
    ([3, 28, 28], bytes(100), None, "file holds 100"),  # disagrees with the body
    ([3, 2, 2], bytes(13), None, "file holds 13|more data than its header"),  # one byte too many
    ([3, 2, 2], bytes(12), 0, "0 dimensions"),
    ([3, 2, 2], bytes(12), 9, "9 dimensions"),
    ([3, 2], bytes(3), 4, "truncated IDX header"),
])
def test_idx_dimensions_are_checked_before_allocating(tmp_path, gz, dims, body, declared, match):
    d = tmp_path / "idx"
    d.mkdir()
    ext = ".gz" if gz else ""
    _idx(d / f"train-images-idx3-ubyte{ext}", dims, body, gz, declared)
    _idx(d / f"train-labels-idx1-ubyte{ext}", [3], bytes(3), gz)
    with pytest.raises(TernkitError, match=match) as e:
        load_dataset(f"idx:{d}")
    _one_line(e.value)


def test_idx_that_is_fine_still_loads(tmp_path):
    d = tmp_path / "idx"
    d.mkdir()
    rng = np.random.default_rng(0)
    _idx(d / "train-images-idx3-ubyte.gz", [6, 4, 4], rng.integers(0, 255, 96, dtype=np.uint8).tobytes(), True)
    _idx(d / "train-labels-idx1-ubyte", [6], bytes([0, 1, 2, 0, 1, 2]), False)
    data = load_dataset(f"idx:{d}")
    assert data.x.shape == (6, 1, 4, 4) and data.labels[:3] == ["0", "1", "2"]


def test_model_with_thousands_of_labels_gets_no_square_confusion_matrix(tmp_path, capsys):
    """(Tens of thousands are refused when the model loads; at the 4,096 allowed the square is 134 MB.)"""
    model = random_mlp((4, 4000))
    save_model(model, tmp_path / "wide.tern")
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,c,d,label\n" + "".join(f"{i},{i % 3},1,2,c{i % 2}\n" for i in range(20)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["eval", str(tmp_path / "wide.tern"), "--dataset", f"csv:{csv}", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["confusion"] is None and len(r["per_class"]) == 4000 and r["n"] == 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 << 10  # KiB; 4000^2 int64 = 128 MB
    assert main(["eval", str(tmp_path / "wide.tern"), "--dataset", f"csv:{csv}"]) == 0
    assert "confusion matrix is shown for at most" in capsys.readouterr().out


@pytest.fixture
def graph_file(tmp_path):
    model = random_cnn()
    save_model(model, tmp_path / "cnn.tern")
    out = tmp_path / "g.lava.json"
    assert main(["export", "lava", str(tmp_path / "cnn.tern"), "-o", str(out), "--calibrate", "digits"]) == 0
    return out


@pytest.mark.parametrize("key,value", [("timesteps", 10**9), ("window", 10**9), ("timesteps", 10**30),
                                       ("window", 10**30)])
def test_graph_with_absurd_timesteps_is_refused_on_load(graph_file, key, value, capsys):
    g = json.loads(graph_file.read_text())
    assert load_graph(graph_file)["timesteps"] == g["timesteps"]
    g[key] = value
    graph_file.write_text(json.dumps(g))
    with pytest.raises(TernkitError) as e:
        load_graph(graph_file)
    msg = _one_line(e.value)
    assert str(graph_file) in msg and ("timesteps" in msg or "too large" in msg), msg


@pytest.mark.parametrize("text,match", [
    ('{"a": ' + "9" * 5000 + "}", "too large"),
    ('{"a": ' + "9" * 30 + "}", "too large"),
    ('{"a": -' + "9" * 30 + "}", "too large"),
    ('{"a": NaN}', "not a JSON number"),
    ('{"a": Infinity}', "not a JSON number"),
    ("[" * 100000 + "]" * 100000, "nested deeper"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper"),
    ('{"a": ' * 200 + "1" + "}" * 200, "nested deeper"),
])
def test_json_integers_and_nesting_are_bounded(tmp_path, text, match):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(TernkitError, match=match) as e:
        read_json(path, "JSON")
    _one_line(e.value)
    assert parse_json('{"a": [1, 2.5, -3, ' + "9" * 18 + "]}", "mem") == {"a": [1, 2.5, -3, int("9" * 18)]}


def test_activity_record_with_huge_integers_is_one_line(tmp_path, capsys):
    model = random_mlp((4, 8, 3))
    save_model(model, tmp_path / "m.tern")
    (tmp_path / "a.json").write_text('{"format": "ternkit-activity", "version": 1, "samples": ' + "1" * 400 + "}")
    assert main(["report", str(tmp_path / "m.tern"), "--activity", str(tmp_path / "a.json"), "--dataset", "iris",
                 "-o", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too large" in err and "a.json" in err


@pytest.mark.parametrize("body,match", [
    ("a = " + "9" * 5000, "not valid TOML"),  # more digits than Python converts
    ("a = " + "9" * 400, "too large"),
    ("a = " + "[" * 5000 + "]" * 5000, "nested deeper"),
    ("a = " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper"),
    ("[" + ".".join(f"k{i}" for i in range(MAX_DEPTH + 5)) + "]\nx = 1", "nested deeper"),
    ("a = " + "{ b = " * 300 + "1" + " }" * 300, "nested deeper"),
])
def test_toml_integers_and_nesting_are_bounded(tmp_path, body, match):
    path = tmp_path / "x.toml"
    path.write_text(body)
    with pytest.raises(TernkitError, match=match) as e:
        read_toml(path, "TOML")
    _one_line(e.value)


def test_target_constant_with_a_huge_integer_is_one_line(tmp_path):
    import importlib.resources as ir

    text = (ir.files("ternkit.targets") / "specs" / "mcu.toml").read_text()
    spec = tmp_path / "huge.toml"
    spec.write_text(text.replace("value = 524288", "value = " + "9" * 400, 1))
    assert "9" * 400 in spec.read_text()
    with pytest.raises(TernkitError, match="huge.toml.*too large") as e:
        load_target(str(spec))
    _one_line(e.value)


def test_limits_are_documented_values():
    assert LIMITS["toml"] <= 1 << 20 and LIMITS["idx"] == 256 << 20 and LIMITS["csv"] == 256 << 20
    assert LIMITS["npz"] == LIMITS["folder"] == 256 << 20 and LIMITS["image_file"] == 64 << 20
