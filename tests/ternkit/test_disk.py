"""Disk and permission failures: a read-only directory, an output path that is a directory, a parent that is
a file, a full disk. Every command answers with one line on stderr and exit 2, leaves no temporary files and
no half-written output, and a report directory is written whole or not at all.

Real file systems only: the read-only directory and the full disk are small tmpfs mounts when this runs as
root (which ignores permission bits); without root, the read-only case uses chmod and the full disk is
skipped."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import random_mlp

from ternkit.cli import main
from ternkit.core import save_model

ROOT = os.geteuid() == 0


def _mount(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if not ROOT:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def model(tmp_path) -> Path:
    m = random_mlp((4, 8, 3))
    m.provenance["dataset"] = "iris"
    path = tmp_path / "in" / "m.tern"
    path.parent.mkdir()
    save_model(m, path)
    return path


@pytest.fixture
def readonly(tmp_path):
    d = tmp_path / "ro"
    if _mount(d, "size=200k,ro"):
        yield d
        _umount(d)
    else:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)


@pytest.fixture
def full(tmp_path):
    """A 200 KiB tmpfs filled up to its last few KiB."""
    d = tmp_path / "full"
    if not _mount(d, "size=200k"):
        pytest.skip("mounting a small tmpfs needs root")
    st = os.statvfs(d)
    (d / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize))  # new empty files still fit (inodes)
    yield d
    _umount(d)


def _commands(model: Path, out: str) -> dict[str, list[str]]:
    """Each writing command with its output at `out` (a file name; report and pipeline take a directory)."""
    return {
        "train": ["train", "--dataset", "iris", "--model", "mlp:4", "--epochs", "1", "--quiet", "--out",
                  f"{out}.tern"],
        "export onnx": ["export", "onnx", str(model), "-o", f"{out}.onnx"],
        "export bundle": ["export", "onnx", str(model), "--bundle", out],
        "export lava": ["export", "lava", str(model), "-o", f"{out}.json", "--calibrate", "iris"],
        "simulate": ["simulate", str(model), "--backend", "onnx", "--dataset", "iris", "--limit", "10", "-o",
                     f"{out}.json"],
        "report": ["report", str(model), "--dataset", "iris", "--limit", "20", "--target", "mcu", "-o", out],
        "pipeline": ["pipeline", str(model.parent / "p.toml"), "--runs-dir", out],
    }


PIPELINE = """name = "quick"
[data]
dataset = "iris"
[train]
model = "mlp:4"
epochs = 1
baseline = ""
[simulate]
backend = "onnx"
limit = 10
[report]
targets = ["mcu"]
"""


def _fail(capsys, argv: list[str], *expect: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.rsplit("\r", 1)[-1]  # after the progress bar (pipeline training), if any
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("ternkit ") and "Traceback" not in err, err
    assert any(e in err for e in expect), err
    return err


def _no_temporaries(*dirs: Path) -> None:
    for d in dirs:
        if d.is_dir():
            assert not [p for p in d.rglob("*") if ".tmp" in p.name], list(d.rglob("*"))


NAMES = ["train", "export onnx", "export bundle", "export lava", "simulate", "report", "pipeline"]


@pytest.mark.parametrize("name", NAMES)
def test_read_only_directory(tmp_path, model, readonly, capsys, name):
    (model.parent / "p.toml").write_text(PIPELINE)
    _fail(capsys, _commands(model, str(readonly / "out"))[name], "read-only file system", "permission denied")
    assert os.listdir(readonly) == []


@pytest.mark.parametrize("name", NAMES)
def test_output_path_is_a_directory(tmp_path, model, capsys, name):
    (model.parent / "p.toml").write_text(PIPELINE)
    out = tmp_path / "out"
    for suffix in (".tern", ".onnx", ".json"):
        (tmp_path / f"out{suffix}").mkdir()
    if name == "export bundle":
        (out / "model.onnx").mkdir(parents=True)
    elif name in ("report", "pipeline"):
        out.write_text("a file, not a directory")  # these take a directory: the opposite case
    _fail(capsys, _commands(model, str(out))[name], "is a directory", "is not a directory", "not a directory")
    _no_temporaries(tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_parent_is_a_file(tmp_path, model, capsys, name):
    (model.parent / "p.toml").write_text(PIPELINE)
    (tmp_path / "file").write_text("x")
    _fail(capsys, _commands(model, str(tmp_path / "file" / "out"))[name], "is not a directory", "not a directory")
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("name", NAMES)
def test_full_disk(tmp_path, model, full, capsys, name):
    (model.parent / "p.toml").write_text(PIPELINE)
    _fail(capsys, _commands(model, str(full / "out"))[name], "no space left")
    _no_temporaries(full)
    leftovers = sorted(p.name for p in full.iterdir() if p.name != "filler")
    if name == "pipeline":  # the state, if it could be written at all, records the failed stage
        state = full / "out" / "quick" / "pipeline.json"
        if state.exists():
            assert any(v.get("status") == "failed" for k, v in json.loads(state.read_text()).items()
                       if k != "settings")
    elif name == "train":
        assert leftovers in ([], ["out.tern.ckpt"]), leftovers  # a checkpoint may fit; never a half file
    else:
        assert leftovers == [], leftovers


def test_train_says_where_the_training_is_kept_when_the_model_cannot_be_written(tmp_path, full, capsys):
    """The checkpoint fits, the model does not: the message points at the checkpoint and --resume writes the
    model once there is room."""
    argv = ["train", "--dataset", "iris", "--model", "mlp:4", "--epochs", "1", "--quiet", "--out",
            str(full / "m.tern")]
    (full / "filler").unlink()
    assert main(argv) == 0
    ckpt = full / "m.tern.ckpt"
    (full / "m.tern").unlink()
    (full / "m.metrics.json").unlink()
    st = os.statvfs(full)
    (full / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize))  # the finished run has nothing to write
    err = _fail(capsys, [*argv, "--resume"], "no space left")
    assert str(ckpt) in err and "--resume" in err
    (full / "filler").unlink()
    assert main([*argv, "--resume"]) == 0 and (full / "m.tern").is_file()


def test_report_directory_is_replaced_whole_or_not_at_all(tmp_path, model, full, capsys):
    out = full / "rep"
    argv = ["report", str(model), "--dataset", "iris", "--limit", "20", "--target", "mcu", "-o", str(out)]
    (full / "filler").unlink()
    assert main(argv) == 0
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(old) == {"report.json", "report.md", "memory.png", "energy.png"}
    st = os.statvfs(full)
    (full / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 20000))  # room for the JSON, not the PNGs
    _fail(capsys, [*argv, "--target", "loihi2"], "no space left")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old  # the older report, untouched
    assert sorted(p.name for p in full.iterdir()) == ["filler", "rep"]


def test_report_never_mixes_with_other_files(tmp_path, model, capsys):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _fail(capsys, ["report", str(model), "--dataset", "iris", "--target", "mcu", "-o", str(out)],
          "holds other files")
    assert os.listdir(out) == ["notes.txt"]


def test_eval_of_a_directory_or_unreadable_model_is_not_no_such_file(tmp_path, capsys):
    (tmp_path / "d.tern").mkdir()
    _fail(capsys, ["eval", str(tmp_path / "d.tern"), "--dataset", "iris"], "is a directory")
    (tmp_path / "f").write_text("x")
    _fail(capsys, ["eval", str(tmp_path / "f" / "m.tern"), "--dataset", "iris"], "not a directory")
