"""Installing ternkit: the wheel in a fresh venv next to numpy 2, the optional parts (lava, MNIST sample) and what
the commands that need them say when they are missing, and `ternkit install-lava`'s pip commands."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import random_mlp

from ternkit.cli import main
from ternkit.core import save_model
from ternkit.export.lava.compat import lava_version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _canon(requirement: str) -> tuple[str, list[str]]:
    """`numpy<2,>=1.24.4` and `numpy>=1.24.4,<2` alike: (name, sorted specifiers)."""
    m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*(.*)$", requirement)
    return m[1].lower(), sorted(part.strip() for part in m[2].split(",") if part.strip())


def test_install_lava_runs_the_extra_pins_then_lava_without_deps(capsys):
    assert main(["install-lava", "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    first, second = (shlex.split(line) for line in lines)
    pip = [sys.executable, "-m", "pip", "install"]
    # the pins come from the installed metadata: the same set as pyproject's `lava` extra (order and spelling aside)
    assert first[:4] == pip
    assert sorted(map(_canon, first[4:])) == sorted(map(_canon, PYPROJECT["project"]["optional-dependencies"]["lava"]))
    assert second == pip + ["--no-deps", "--ignore-requires-python", "lava-nc==0.10.0"]


@pytest.mark.skipif(lava_version() is not None, reason="lava-nc is installed here (checked in `make test-core`)")
def test_lava_commands_say_how_to_install_lava(tmp_path, capsys):
    tern = tmp_path / "m.tern"
    save_model(random_mlp(), tern)
    for argv in (["simulate", str(tern), "--backend", "lava", "--dataset", "iris"], ["simulate", str(tern)]):
        assert main(argv) == 2  # the second: lava is the default backend, and mnist-sample the default dataset
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "lava-nc is not installed" in err and "ternkit install-lava" in err, err


def _run(cmd: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(cmd: list[str], cwd: Path, timeout: float = 900) -> str:
    out = _run(cmd, cwd, timeout)
    assert out.returncode == 0, f"{shlex.join(cmd)}: exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out.stdout


@pytest.mark.install
def test_wheel_installs_next_to_numpy2_and_runs_outside_the_checkout(tmp_path):
    house = os.environ.get("TERNKIT_WHEELHOUSE")
    if not house or not Path(house).is_dir():
        pytest.skip("needs TERNKIT_WHEELHOUSE, a folder with torch==2.13.0 and ternkit's dependencies "
                    "(`make test-install` downloads it at set-up)")
    # 1. the wheel, built without network (build isolation would fetch setuptools) from a copy of the checkout, so
    # that no build/ or egg-info is left in it (and no stale build/lib from an earlier build gets in)
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv*", ".git", "build", "dist", "runs", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".ruff_cache"))
    dist = tmp_path / "dist"
    _ok([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(dist), str(src)], tmp_path)
    (wheel,) = dist.glob("ternkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # the package data (target TOMLs, ...): every file that pyproject's patterns match in the checkout
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]

    def folder(pkg: str) -> Path:  # a package's folder: its own package-dir entry, or its parent's plus its name
        top = max((p for p in dirs if pkg == p or pkg.startswith(p + ".")), key=len)
        return ROOT / dirs[top] / pkg[len(top):].lstrip(".").replace(".", "/")

    data = {f"{pkg.replace('.', '/')}/{f.relative_to(folder(pkg))}"
            for pkg, patterns in PYPROJECT["tool"]["setuptools"]["package-data"].items()
            for pattern in patterns for f in folder(pkg).glob(pattern) if f.is_file()}
    assert {"ternkit/targets/specs/mcu.toml", "ternkit/export/c/mcu/harness.c",
            "ternkit/trainer/conntra_step.c"} <= data and data <= names, \
        sorted(data - names)
    # every module of the checkout's packages (pyproject's package-dir folders, subpackages included) is in it
    modules = {f"{pkg.replace('.', '/')}/{f.relative_to(ROOT / src)}" for pkg, src in dirs.items()
               for f in (ROOT / src).rglob("*.py") if (f.parent / "__init__.py").exists()}
    assert "ternkit/cli.py" in modules and "ternkit/core/model.py" in modules
    assert modules <= names, f"modules missing from the wheel (list their packages in pyproject.toml): " \
                             f"{sorted(modules - names)}"

    # 2. a fresh venv that already holds numpy 2; installing ternkit (from local files only) must keep it
    venv = tmp_path / "venv"
    _ok([sys.executable, "-m", "venv", str(venv)], tmp_path)
    py, ternkit = str(venv / "bin" / "python"), str(venv / "bin" / "ternkit")
    pip = [py, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", house]
    _ok(pip + ["numpy>=2"], tmp_path)
    version = "import numpy; print(numpy.__version__)"
    numpy_before = _ok([py, "-c", version], tmp_path).strip()
    _ok(pip + ["torch==2.13.0", str(wheel)], tmp_path)
    assert _ok([py, "-c", version], tmp_path).strip() == numpy_before
    assert int(numpy_before.split(".")[0]) >= 2
    _ok([py, "-m", "pip", "check"], tmp_path)

    # 3. the installed command, outside the checkout: ternkit comes from the venv, not from ROOT
    work = tmp_path / "work"
    work.mkdir()
    where = _ok([py, "-c", "import ternkit.targets, ternkit.cli; print(ternkit.targets.__file__)"], work).strip()
    assert where.startswith(str(venv)) and not where.startswith(str(ROOT)), where
    # CoNNTrA's compiled step builds from the installed source (a compiler is there: the C export needs one)
    _ok([py, "-c", "from ternkit.trainer import native; assert native.library() is not None"], work)
    _ok([ternkit, "train", "--dataset", "digits", "--epochs", "1", "--out", "m.tern"], work)
    _ok([ternkit, "export", "onnx", "m.tern", "-o", "m.onnx"], work)
    assert (work / "m.tern").stat().st_size > 0 and (work / "m.onnx").stat().st_size > 0
    assert "accuracy" in _ok([ternkit, "eval", "m.onnx", "--dataset", "digits"], work)
    _ok([ternkit, "report", "m.tern", "-o", "rep", "--quiet"], work)  # the shipped target TOMLs (package data)
    assert sorted(p.name for p in (work / "rep").iterdir())

    # 4. the optional parts are absent: one line each saying how to install them, exit 2
    for argv, hint in ((["simulate", "m.tern", "--backend", "lava", "--dataset", "digits"], "ternkit install-lava"),
                       (["export", "lava", "m.tern", "-o", "m.lava.json", "--calibrate", "mnist-sample"],
                        "ternkit[mnist]"),
                       (["eval", "m.tern", "--dataset", "mnist-sample"], "ternkit[mnist]")):
        out = _run([ternkit, *argv], work)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and hint in out.stderr, (argv, out.stderr)
    lines = _ok([ternkit, "install-lava", "--dry-run"], work).splitlines()
    assert shlex.split(lines[0])[:4] == [py, "-m", "pip", "install"] and "numpy<2,>=1.24.4" in lines[0]
