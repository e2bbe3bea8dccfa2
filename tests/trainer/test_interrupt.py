"""An interrupted run changes nothing: Ctrl-C (SIGINT) or kill -9 at any point of a training step, then
`--resume`, gives bit-identical weights, scales and biases to the uninterrupted run (constant learning rate:
with it, applying part of a step twice shows in the weights).

The interruption is a real signal sent to a real `ternkit train` subprocess at a chosen point inside a step
(tests/trainer/_interrupt_worker.py); the resume and the reference run in this process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ternkit.cli import main
from ternkit.core import load_model

WORKER = Path(__file__).with_name("_interrupt_worker.py")
# iris: 120 training rows, batch 16 -> 8 steps per epoch; 3 epochs
ARGS = ["--dataset", "iris", "--model", "mlp:16", "--epochs", "3", "--batch-size", "16", "--lr", "0.01",
        "--lr-schedule", "constant", "--quiet"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of each method."""
    out = {}
    for method in ("conntra", "float"):
        path = tmp_path_factory.mktemp("ref") / "m.tern"
        assert main(["train", *ARGS, "--method", method, "--out", str(path)]) == 0
        out[method] = load_model(path)
    return out


def _interrupted(tmp_path: Path, method: str, sig: str, point: str, n: int) -> tuple[int, str, Path]:
    out = tmp_path / "m.tern"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, str(WORKER), sig, point, str(n), "--", *ARGS, "--method", method,
                        "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stderr, out


def _same(a, b) -> None:
    for la, lb in zip(a.weight_layers, b.weight_layers, strict=True):
        assert np.array_equal(la.weight, lb.weight)
        assert np.array_equal(la.scale, lb.scale) and np.array_equal(la.bias, lb.bias)


CASES = [  # (method, point, occurrence): mid-epoch and at an epoch's end, in every part of a step
    ("conntra", "backward", 11), ("conntra", "continuous", 5), ("conntra", "continuous", 13),
    ("conntra", "moves", 9), ("conntra", "step-end", 12), ("conntra", "eval", 3), ("conntra", "checkpoint", 2),
    ("float", "continuous", 6), ("float", "eval", 2),
]


@pytest.mark.parametrize("method,point,n", CASES)
def test_ctrl_c_anywhere_in_a_step_then_resume_is_bit_identical(tmp_path, reference, capsys, method, point, n):
    code, err, out = _interrupted(tmp_path, method, "INT", point, n)
    assert code == 130, err
    assert err.strip().splitlines()[-1].startswith("ternkit train: interrupted; checkpoint saved to"), err
    assert "Traceback" not in err and not out.exists() and Path(f"{out}.ckpt").is_file()
    assert main(["train", *ARGS, "--method", method, "--out", str(out), "--resume"]) == 0
    _same(load_model(out), reference[method])
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("method,point,n", [("conntra", "continuous", 13), ("conntra", "moves", 19),
                                            ("conntra", "checkpoint", 2)])
def test_kill_9_anywhere_in_a_step_then_resume_is_bit_identical(tmp_path, reference, capsys, method, point, n):
    code, err, out = _interrupted(tmp_path, method, "KILL", point, n)
    assert code == -9, err
    assert main(["train", *ARGS, "--method", method, "--out", str(out), "--resume"]) == 0
    _same(load_model(out), reference[method])


def test_resume_without_a_checkpoint_says_it_starts_a_new_run(tmp_path, reference, capsys):
    out = tmp_path / "m.tern"
    assert main(["train", *ARGS, "--out", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert err == f"ternkit train: note: no checkpoint {out}.ckpt to resume from; starting a new run\n"
    _same(load_model(out), reference["conntra"])


def test_a_second_resume_of_a_finished_run_changes_nothing(tmp_path, reference, capsys):
    code, err, out = _interrupted(tmp_path, "conntra", "INT", "continuous", 13)
    assert code == 130, err
    for _ in range(2):
        assert main(["train", *ARGS, "--out", str(out), "--resume"]) == 0
        _same(load_model(out), reference["conntra"])


PIPELINE = """name = "quick"
[data]
dataset = "iris"
[train]
model = "mlp:4"
epochs = 2
baseline = ""
[simulate]
backend = "{backend}"
limit = 40
[report]
targets = ["mcu"]
"""


@pytest.mark.parametrize("stage,backend", [("train", "onnx"), ("export-onnx", "onnx"), ("simulate", "onnx"),
                                           pytest.param("simulate", "lava", marks=pytest.mark.slow)])
def test_ctrl_c_anywhere_in_the_pipeline_exits_130(tmp_path, stage, backend):
    """A real SIGINT once the stage has started; then --resume finishes the run."""
    import signal
    import time

    (tmp_path / "p.toml").write_text(PIPELINE.format(backend=backend))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    argv = [sys.executable, "-m", "ternkit", "pipeline", str(tmp_path / "p.toml"), "--runs-dir", str(tmp_path)]
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    for line in p.stdout:
        seen += line
        if line.startswith(f"[{stage}] ..."):
            time.sleep(0.2)
            p.send_signal(signal.SIGINT)
            break
    out, err = p.communicate(timeout=300)
    assert p.returncode == 130, seen + out + err
    assert "interrupted" in err.strip().splitlines()[-1] and "Traceback" not in err, err
    r = subprocess.run([*argv, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "quick" / "summary.md").is_file()
