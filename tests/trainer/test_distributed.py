"""Data-parallel training: real gloo process groups of 2 processes on this machine, no mocks.

Ranks are started by hand with torchrun's environment variables (so a test can kill or stop one of them);
one slow test goes through `ternkit train --nproc 2`, which runs torchrun itself.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ternkit.cli import main
from ternkit.core import load_model
from ternkit.core.errors import OptionError
from ternkit.trainer import TrainConfig, build_network, train
from ternkit.trainer.distributed import from_config, shard_of

WORKER = Path(__file__).with_name("_dist_worker.py")
sys.path.insert(0, str(WORKER.parent))
from _dist_worker import gradient_batch  # noqa: E402

IRIS = dict(dataset="iris", model="mlp:16", batch_size=16, lr=1e-2, seed=1)
# iris trains on 120 rows: batch 17 leaves a last batch of 1 row, so rank 1's shard of it is empty
CONFIGS = [dict(IRIS, method="float", epochs=4), dict(IRIS, method="ste", epochs=4),
           dict(IRIS, method="conntra", epochs=6, batch_size=17),
           dict(IRIS, method="conntra", mode="exact", exact_coords=8, epochs=3)]


def _rendezvous() -> str:
    """A file:// rendezvous in a fresh directory: the ranks meet through a file, so there is no free port to
    pick (binding port 0, closing it and handing the number on races with everything else on the machine)."""
    d = tempfile.mkdtemp(prefix="ternkit-rdzv-")
    atexit.register(shutil.rmtree, d, True)
    return "file://" + os.path.join(d, "store")


def _ranks(argv: list[str], world: int = 2, **env: str) -> list[subprocess.Popen]:
    """`world` ranks of `argv` meeting at a fresh rendezvous: the CLI's --dist-init, or the worker's last argument
    (the rendezvous travels as an option, never through the environment)."""
    init = _rendezvous()
    argv = [*argv, "--dist-init", init] if argv[:2] == ["-m", "ternkit"] else [*argv, init]
    procs = []
    for rank in range(world):
        e = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), OMP_NUM_THREADS="1",
                 **env)
        procs.append(subprocess.Popen([sys.executable, *argv], env=e, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def _finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str]]:
    return [(p.wait(timeout=timeout), p.communicate()[1]) for p in procs]


def test_shard_is_a_disjoint_cover_of_the_global_batch():
    idx = np.random.default_rng(0).permutation(23)
    for world in (1, 2, 3, 5):
        parts = [shard_of(idx, r, world) for r in range(world)]
        assert sorted(np.concatenate(parts).tolist()) == sorted(idx.tolist())
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert len(shard_of(idx[:1], 1, 2)) == 0  # a 1-row batch leaves rank 1 nothing; it must still take part


def test_single_process_without_torchrun_env(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert from_config(TrainConfig()) == []
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TERNKIT_DIST_TIMEOUT", "soon")  # no longer read: settings travel in the config
    with pytest.raises(OptionError, match="--dist-timeout"):
        from_config(TrainConfig(extra={"distributed": {"timeout": "soon"}}))
    (technique,) = from_config(TrainConfig(extra={"distributed": {"timeout": 7}}))
    assert technique.timeout == 7.0 and technique.backend == "auto" and technique.init is None


def test_two_processes_stay_identical_and_match_one_process(tmp_path):
    """float, ste, CoNNTrA gradient and exact mode, each on 2 gloo ranks, then in this process alone."""
    results = _finish(_ranks([str(WORKER), str(tmp_path), json.dumps(CONFIGS)]))
    assert all(code == 0 for code, _ in results), results

    # the all-reduced gradient and loss of one batch are the single-process ones, to float32 rounding (the
    # batch is summed per shard, then across ranks: another order of the same additions)
    g0, g1 = (np.load(tmp_path / f"grad_rank{r}.npz") for r in (0, 1))
    net = build_network("mlp:16", (4,), 3, "discrete", seed=3)
    x, y = gradient_batch()
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    assert np.allclose(g0["loss"], loss.item(), rtol=1e-6, atol=0)
    for name, param in net.named_parameters():
        assert np.array_equal(g0[name], g1[name])
        assert np.allclose(g0[name], param.grad.numpy(), rtol=1e-5, atol=1e-7), name

    for i, config in enumerate(CONFIGS):
        r0, r1 = (np.load(tmp_path / f"run{i}_rank{r}.npz") for r in (0, 1))
        assert int(r0["world"]) == 2
        # every rank applied the same updates: bit-identical weights, scales, biases and losses
        for key in r0.files:
            assert np.array_equal(r0[key], r1[key]), (config, key)
        # the same global batch in one process. Gradients differ by rounding only (above), but Adam divides
        # each gradient component by its RMS: where a component is ~1e-9 (a nearly dead unit), rounding can
        # change that step by up to ~lr. So: losses within 1e-3, CoNNTrA's integer weights exactly equal in
        # these short runs, scales/biases/float weights within lr (and nearly always within 1e-5).
        single = train(TrainConfig(**config), progress=False)
        losses = [e["loss"] for e in single.metrics["epochs"]]
        assert np.allclose(losses, r0["loss"], rtol=1e-3, atol=0), (config, losses, r0["loss"])
        for key, value in single.net.state_dict().items():
            value = value.detach().numpy()
            if config["method"] == "conntra" and key.endswith("weight"):
                assert np.array_equal(value, r0[key]), (config, key)
            else:
                assert np.allclose(value, r0[key], rtol=0, atol=config["lr"]), (config, key)


def _training_ranks(tmp_path: Path, timeout: str) -> tuple[list[subprocess.Popen], Path]:
    out = tmp_path / "m.tern"
    argv = ["-m", "ternkit", "train", "--dataset", "iris", "--model", "mlp:16", "--epochs", "100000",
            "--batch-size", "8", "--quiet", "--dist-timeout", timeout, "--out", str(out)]
    procs = _ranks(argv)
    ckpt = Path(str(out) + ".ckpt")
    deadline = time.monotonic() + 120
    while not ckpt.exists():  # rank 0 writes it after the first epoch: both ranks are training
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), _finish(procs, 5)
        time.sleep(0.2)
    return procs, out


def _assert_clear_failure(proc: subprocess.Popen, within: float) -> str:
    t0 = time.monotonic()
    try:
        code = proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"rank 0 hung for {within} s after its peer went away")
    err = proc.communicate()[1].strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("ternkit train: error: rank 0 of 2:") and "died or stalled" in err, err
    return f"{time.monotonic() - t0:.1f}s"


def test_killed_rank_makes_the_other_exit_with_a_clear_error(tmp_path):
    (rank0, rank1), out = _training_ranks(tmp_path, timeout="60")
    rank1.send_signal(signal.SIGKILL)
    _assert_clear_failure(rank0, within=90)  # a closed connection is noticed at once, not after the timeout
    rank1.wait()
    assert not out.exists()  # no artifact from a failed run


@pytest.mark.slow
def test_stalled_rank_makes_the_other_exit_after_the_timeout(tmp_path):
    (rank0, rank1), _ = _training_ranks(tmp_path, timeout="5")
    rank1.send_signal(signal.SIGSTOP)  # alive but silent: only the collective timeout can notice
    try:
        _assert_clear_failure(rank0, within=120)
    finally:
        rank1.send_signal(signal.SIGCONT)
        rank1.kill()
        rank1.wait()


@pytest.mark.slow
def test_ranks_with_different_settings_refuse_to_train(tmp_path):
    init = _rendezvous()
    procs = []
    for rank, seed in ((0, "1"), (1, "2")):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, "-m", "ternkit", "train", "--dataset", "iris", "--quiet",
                                       "--seed", seed, "--dist-init", init, "--out", str(tmp_path / "m.tern")], env=env,
                                      stderr=subprocess.PIPE, text=True))
    for code, err in _finish(procs, timeout=120):
        assert code == 1 and "different settings" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_cli_nproc_runs_torchrun_and_resumes_in_one_process(tmp_path):
    """3 epochs with --nproc 2 or in one process, each then resumed to 5 epochs in one process: the same model
    (the checkpoint does not depend on the number of processes)."""
    args = ["train", "--dataset", "iris", "--model", "mlp:16", "--batch-size", "16", "--lr", "0.01", "--seed", "1",
            "--quiet", "--json"]
    assert main([*args, "--epochs", "3", "--nproc", "2", "--out", str(tmp_path / "two.tern")]) == 0
    assert json.loads((tmp_path / "two.metrics.json").read_text())["data_parallel"]["world_size"] == 2
    assert main([*args, "--epochs", "3", "--out", str(tmp_path / "one.tern")]) == 0
    for name in ("two", "one"):
        assert main([*args, "--epochs", "5", "--resume", "--out", str(tmp_path / f"{name}.tern")]) == 0
    two, one = load_model(tmp_path / "two.tern"), load_model(tmp_path / "one.tern")
    for a, b in zip(two.weight_layers, one.weight_layers, strict=True):  # tolerance: see the test above
        assert np.array_equal(a.weight, b.weight) and np.allclose(a.scale, b.scale, rtol=0, atol=1e-2)
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.slow
def test_techniques_keep_the_ranks_identical(tmp_path):
    """Dropout patterns and sampled matmuls drawn alike on every rank: `finish` compares the weights of all
    ranks and fails the run (exit 1) if they differ."""
    argv = ["-m", "ternkit", "train", "--dataset", "digits", "--model", "mlp:32", "--epochs", "2", "--quiet",
            "--dropout", "batchwise:0.3", "--approx", "crs", "--out", str(tmp_path / "m.tern")]
    for code, err in _finish(_ranks(argv)):
        assert code == 0, err
    assert json.loads((tmp_path / "m.metrics.json").read_text())["data_parallel"]["world_size"] == 2


def test_cli_nproc_bad_input_is_one_line(tmp_path, capsys):
    assert main(["train", "--dataset", "iris", "--nproc", "0", "--out", str(tmp_path / "m.tern")]) == 2
    assert main(["train", "--dataset", "iris", "--dist-timeout", "-3", "--out", str(tmp_path / "m.tern")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--nproc" in err[0] and "--dist-timeout" in err[1], err
