"""Builds that "succeed" without output, and relative paths.

A compiler or emulator that exits 0 but writes nothing (`CC=true`, a fake or broken Arm toolchain on PATH) is one
clear line, exit 2, never a FileNotFoundError traceback. Every command works the same with relative paths (the
common case) as with absolute ones: each runs twice, from inside tmp_path with relative names and from elsewhere
with absolute ones. Real tools throughout: the host cc, shell scripts standing in for a broken toolchain,
arm-none-eabi-gcc and qemu for the `mcu` cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import random_mlp

from ternkit.cli import main
from ternkit.core import save_model


def _fail(capsys, argv, *words) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    return err


@pytest.fixture
def tern(tmp_path):
    save_model(random_mlp((4, 8, 3)), tmp_path / "m.tern")
    return tmp_path / "m.tern"


def test_cc_true_is_one_line(tmp_path, tern, capsys, monkeypatch):
    monkeypatch.setenv("CC", "true")
    _fail(capsys, ["simulate", str(tern), "--backend", "c", "--dataset", "iris", "--calibrate", "iris",
                   "--limit", "5"], "exited 0 but wrote no tk_host")
    _fail(capsys, ["simulate", str(tern), "--backend", "c", "--dataset", "iris", "--calibrate", "iris",
                   "--limit", "5", "--build", str(tmp_path / "b")], "wrote no tk_host")
    assert not (tmp_path / "b").exists()


def _fake_toolchain(tmp_path: Path, writes: bool) -> str:
    """arm-none-eabi-gcc/-size/-nm and qemu-system-arm as shell scripts that exit 0; with `writes`, gcc writes
    an empty file to its -o argument (so the build "succeeds" and only the run writes nothing)."""
    bin_dir = tmp_path / ("fake_writes" if writes else "fake_silent")
    bin_dir.mkdir()
    specs = bin_dir / "rdimon.specs"
    specs.write_text("")
    gcc = f"""#!/bin/sh
case "$1" in -print-file-name=*) echo "{specs}"; exit 0;; esac
{'while [ $# -gt 0 ]; do if [ "$1" = "-o" ]; then : > "$2"; fi; shift; done' if writes else ''}
exit 0
"""
    for name, body in (("arm-none-eabi-gcc", gcc), ("arm-none-eabi-size", "#!/bin/sh\nexit 0\n"),
                       ("arm-none-eabi-nm", "#!/bin/sh\nexit 0\n"), ("qemu-system-arm", "#!/bin/sh\nexit 0\n")):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return str(bin_dir)


@pytest.mark.parametrize("writes,missing", [(False, "wrote no model.o"), (True, "wrote no output.bin")])
def test_a_toolchain_that_writes_nothing_is_one_line(tmp_path, tern, capsys, monkeypatch, writes, missing):
    import os

    monkeypatch.setenv("PATH", _fake_toolchain(tmp_path, writes) + os.pathsep + os.environ["PATH"])
    _fail(capsys, ["simulate", str(tern), "--backend", "cortex-m4", "--dataset", "iris", "--calibrate", "iris",
                   "--limit", "5", "--build", str(tmp_path / "b1")], missing)
    assert not (tmp_path / "b1").exists()


# -- relative and absolute paths, every command ------------------------------------------------------------------
def _paths(tmp_path: Path, mode: str, monkeypatch) -> callable:
    """A function naming a file of the run: relative to the working directory (tmp_path/work), or absolute
    from another working directory."""
    work = tmp_path / "work"
    work.mkdir()
    if mode == "relative":
        monkeypatch.chdir(work)
        return lambda name: name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return lambda name: str(work / name)


@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_every_command_takes_relative_and_absolute_paths(tmp_path, mode, monkeypatch, capsys):
    if shutil.which("cc") is None:
        pytest.skip("needs a host C compiler (cc)")
    p = _paths(tmp_path, mode, monkeypatch)
    runs = [
        ["train", "--dataset", "iris", "--model", "mlp:8", "--epochs", "1", "--out", p("m.tern")],
        ["eval", p("m.tern"), "--dataset", "iris"],
        ["export", "onnx", p("m.tern"), "-o", p("m.onnx")],
        ["eval", p("m.onnx"), "--dataset", "iris"],
        ["export", "c", p("m.tern"), "-o", p("c_out")],
        ["export", "lava", p("m.tern"), "-o", p("m.lava.json")],
        ["simulate", p("m.tern"), "--backend", "c", "--dataset", "iris", "--limit", "20", "--build", p("b3"),
         "-o", p("c.json")],
        ["simulate", p("m.tern"), "--backend", "onnx", "--dataset", "iris", "--limit", "20", "-o", p("a.json")],
        ["report", p("m.tern"), "--activity", p("a.json"), "--target", "mcu", "-o", p("rep")],
    ]
    for argv in runs:
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    work = tmp_path / "work"
    for name in ("m.tern", "m.onnx", "c_out/model.c", "m.lava.json", "b3/tk_host", "b3/model.c", "c.json",
                 "a.json", "rep/report.md"):
        assert (work / name).is_file(), name
    assert json.loads((work / "c.json").read_text())["emulation_identical"] is True
    toml = work / "p.toml"
    toml.write_text(f'name = "r"\nruns_dir = "{p("runs")}"\n[data]\ndataset = "iris"\n[train]\nmodel = "mlp:8"\n'
                    'epochs = 1\nbaseline = ""\n[simulate]\nbackend = "onnx"\nlimit = 20\n'
                    '[report]\ntargets = ["mcu"]\n')
    assert main(["pipeline", p("p.toml") if mode == "relative" else str(toml)]) == 0, capsys.readouterr().err
    assert (work / "runs" / "r" / "report" / "report.md").is_file()


@pytest.mark.mcu
@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_cortex_m4_build_takes_relative_and_absolute_paths(tmp_path, tern, mode, monkeypatch, capsys):
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm (make mcu-tools)")
    p = _paths(tmp_path, mode, monkeypatch)
    shutil.copy(tern, tmp_path / "work" / "m.tern")
    assert main(["simulate", p("m.tern"), "--backend", "cortex-m4", "--dataset", "iris", "--calibrate", "iris",
                 "--limit", "5", "--build", p("b1")]) == 0, capsys.readouterr().err
    assert (tmp_path / "work" / "b1" / "firmware.elf").is_file() and (tmp_path / "work" / "b1" / "mcu.json").is_file()
