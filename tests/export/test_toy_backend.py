"""A backend registered from outside ternkit's source (tests/export/toy_backend.py) works everywhere the
registry is read, with nothing in ternkit edited: `ternkit export toy`, `ternkit simulate --backend toy` and
its flags, `ternkit report --activity` on its record, the Python API, and -- through a Python entry point in a
separate process -- a third party's installed distribution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import toy_backend
from conftest import random_mlp

from ternkit.cli import main
from ternkit.core import InputSpec, OptionError, load_dataset, save_model
from ternkit.export import backends, export_model, simulate

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def tern(tmp_path_factory):
    """A ternary 64-16-10 MLP for digits that names its dataset."""
    data = load_dataset("digits")
    model = random_mlp((64, 16, 10), seed=2)
    from ternkit.core import Flatten

    model.layers = [Flatten(), *model.layers]
    model.input = InputSpec((1, 8, 8), np.full((1, 1, 1), data.x.mean(), np.float32),
                            np.full((1, 1, 1), data.x.std(), np.float32))
    model.provenance = {"dataset": "digits", "seed": 0, "config": {"seed": 0, "val_fraction": 0.2}}
    path = tmp_path_factory.mktemp("toy") / "digits.tern"
    save_model(model, path)
    return path


def _fail(capsys, argv, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and match in err, err


def test_registered_from_tests(tern):
    assert backends()["toy"] is toy_backend.BACKEND
    assert toy_backend.BACKEND.handlers.__module__ == "toy_backend"


def test_cli_export_and_simulate(tern, tmp_path, capsys):
    out = tmp_path / "m.toy.json"
    assert main(["export", "toy", str(tern), "-o", str(out), "--precision", "float16"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert json.loads(out.read_text())["precision"] == "float16"
    act = tmp_path / "run.json"
    assert main(["simulate", str(tern), "--backend", "toy", "--dataset", "digits", "--limit", "40",
                 "--precision", "float16", "--json", "-o", str(act)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["backend"], r["samples"], r["precision"], r["dataset"]) == ("toy", 40, "float16", "digits")
    assert r["agreement"] >= 0.95
    # the report reads a record from a backend it has never heard of (no closed list in core)
    assert main(["report", str(tern), "--target", "loihi2", "--activity", str(act), "-o", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "report.json").read_text())["activity"]["backend"] == "toy"
    assert main(["simulate", str(tern), "--backend", "toy", "--dataset", "digits", "--limit", "5"]) == 0
    assert "toy on digits: 5 samples" in capsys.readouterr().out


def test_cli_refuses_what_does_not_apply(tern, tmp_path, capsys):
    _fail(capsys, ["simulate", str(tern), "--backend", "toy", "--dataset", "digits", "--nbits"],
          "--nbits applies to --backend onnx only")
    _fail(capsys, ["simulate", str(tern), "--backend", "onnx", "--dataset", "digits", "--precision", "float16"],
          "--precision applies to --backend toy only")
    _fail(capsys, ["export", "toy", str(tern), "-o", str(tmp_path / "m.txt")], "a .json file")
    assert main(["export", "toy", str(tern), "-o", str(tmp_path / "m.json"), "--precision", "int4"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_api(tern, tmp_path):
    w = export_model("toy", tern, tmp_path / "a.json")
    assert w.paths == (tmp_path / "a.json",) and json.loads(w.paths[0].read_text())["precision"] == "float32"
    data = load_dataset("digits").spread(20)
    r = simulate(tern, data, "toy", precision="float16")
    assert r["backend"] == "toy" and r["samples"] == 20 and r["model"] == str(tern)
    with pytest.raises(OptionError, match="nbits do not apply to backend toy"):
        simulate(tern, data, "toy", nbits=True)
    with pytest.raises(OptionError, match="--precision 'int4': backend toy takes float32 or float16"):
        export_model("toy", tern, tmp_path / "b.json", precision="int4")


def test_third_party_entry_point(tern, tmp_path):
    """A distribution that declares `toy = toy_backend` in the group ternkit.backends (here: a bare .dist-info
    on the path, as pip leaves one) adds `ternkit export toy` in a fresh process; ternkit is not edited."""
    dist = tmp_path / "site" / "toy_backend-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-backend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ternkit.backends]\ntoy = toy_backend\nbroken = no_such_module_x\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(HERE), str(HERE.parent)])}
    out = tmp_path / "m.toy.json"
    for argv in (["export", "toy", str(tern), "-o", str(out)],
                 ["simulate", str(tern), "--backend", "toy", "--dataset", "digits", "--limit", "8", "--json"]):
        r = subprocess.run([sys.executable, "-m", "ternkit", *argv], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        # a broken plug-in beside it is skipped with one line; ternkit's own backends and the toy still work
        assert r.stderr.strip().splitlines() == [
            "ternkit: skipped backend plug-in broken = no_such_module_x (ModuleNotFoundError: No module named "
            "'no_such_module_x')"]
    assert json.loads(r.stdout)["backend"] == "toy" and out.exists()
    # without the distribution, the name is unknown: one line, exit 2
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent)])
    r = subprocess.run([sys.executable, "-m", "ternkit", "export", "toy", str(tern), "-o", str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "invalid choice: 'toy'" in r.stderr


@pytest.fixture
def toy_op(monkeypatch):
    """The toy operation from tests/toy_op.py (registered with its handlers), with an example model."""
    import importlib

    import op_examples

    sys.modules.pop("toy_op", None)
    module = importlib.import_module("toy_op")
    added = module.install_handlers()

    def make(rng):
        nodes = [op_examples.Node("c", op_examples.conv(rng, 3, 1), (op_examples.INPUT,)),
                 op_examples.Node("s", module.ToySoftsign(), ("c",))]
        return op_examples._model(op_examples._head(rng, nodes, "s", 3 * 5 * 5), op_examples._image_spec(1, 5, 5))

    monkeypatch.setitem(op_examples.MODELS, "toy-op", make)
    yield module
    module.uninstall(added)
    sys.modules.pop("toy_op", None)


def test_toy_operation_on_the_toy_backend_and_every_backend(toy_op, tmp_path, capsys):
    """A toy operation and a toy backend, both registered from tests/: the conformance suite runs the
    operation's example on every backend (it runs where the backend has a handler, and is refused in one line
    naming it where not), and `ternkit export toy` / `ternkit simulate --backend toy` run it."""
    import test_backend_conformance as conformance
    from op_examples import example_input, example_model

    for name, b in backends().items():
        if b.export is not None:
            (tmp_path / name).mkdir()
            conformance.test_export(tmp_path / name, name, "toy-op")
        if b.simulate is not None and name not in conformance.SLOW:
            conformance.test_simulate(name, "toy-op")
    model = example_model("toy-op")
    assert toy_op.KIND in {n.op.kind for n in model.nodes}
    tern, data = tmp_path / "toy.tern", tmp_path / "toy.npz"
    save_model(model, tern)
    x = example_input(model, 30)
    np.savez(data, x=x, y=np.arange(len(x)) % model.num_classes)
    assert main(["export", "toy", str(tern), "-o", str(tmp_path / "t.json")]) == 0
    assert toy_op.KIND in json.loads((tmp_path / "t.json").read_text())["nodes"]
    assert main(["simulate", str(tern), "--backend", "toy", "--dataset", f"npz:{data}", "--json"]) == 0
    r = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert r["backend"] == "toy" and r["agreement"] == 1.0 and r["samples"] == 30


def test_reading_the_registry_loads_no_heavy_dependency():
    """`ternkit export` and `ternkit simulate` build their parsers from every registered backend: the units must
    stay light (their heavy parts load inside their functions), or every command would pay for every backend."""
    code = ("import sys\nfrom ternkit.cli import build_parser\nbuild_parser('export'); build_parser('simulate')\n"
            "heavy = ('torch', 'onnx', 'onnxruntime', 'lava', 'nir', 'qonnx', 'hls4ml', 'norse', 'sklearn')\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
