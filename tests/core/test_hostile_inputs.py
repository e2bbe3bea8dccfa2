"""Hostile settings and files, each one line (exit 2), early, leaving no files: numeric overflow (a seed of
2^64), recursion (a split spec nested 1,500 times), NUL bytes in a pipeline, bounded checkpoint reads (under a
memory limit, and a checkpoint larger than its network could write), a pipeline file checked whole before stage 1,
an untraceable user model refused before step 1, a provenance `config` that is not an object.

Real files throughout (TOML, checkpoints written by torch, a user's model file); the memory limit is a real
`RLIMIT_AS` in a child process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import random_cnn

from ternkit.cli import main
from ternkit.core import save_model


def _fail(capsys, argv, *words) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and len(err) < 500, err[:600]
    assert all(w in err for w in words), err
    return err


# -- numeric overflow ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", ["18446744073709551616", "4294967296", "-1", str(10**400)])
def test_seeds_out_of_range_are_one_line(tmp_path, capsys, seed):
    _fail(capsys, ["train", "--dataset", "iris", "--model", "mlp:8", "--epochs", "1", "--seed", seed,
                   "--out", str(tmp_path / "m.tern")], "--seed must be in 0..4294967295")
    assert not list(tmp_path.iterdir())


def test_the_largest_seed_trains(tmp_path):
    assert main(["train", "--dataset", "iris", "--model", "mlp:8", "--epochs", "1", "--seed", str(2**32 - 1),
                 "--quiet", "--out", str(tmp_path / "m.tern")]) == 0


# -- recursion, control characters --------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [9, 1500, 100_000])
def test_deeply_nested_split_specs_are_one_line(tmp_path, capsys, n):
    save_model(random_cnn(), tmp_path / "m.tern")
    _fail(capsys, ["eval", str(tmp_path / "m.tern"), "--dataset", "iris" + "@val" * n], "nests more than 8")


def test_a_few_nested_splits_still_load():
    from ternkit.core import load_dataset

    assert 0 < len(load_dataset("iris@train@val@train")) < 150


@pytest.mark.parametrize("spec", ["iris\x00", "csv:/etc/passwd\x00.csv", "iris\x00@val", "idx:\x00", "\x00"])
def test_nul_bytes_in_dataset_specs_are_one_line(spec):
    from ternkit.core import DataError, load_dataset

    with pytest.raises(DataError, match="NUL byte") as e:
        load_dataset(spec)
    assert "\n" not in str(e.value)


PIPELINES = {  # body -> words in the one-line error
    'name = "a\\u0000b"': "control character",
    '[data]\ndataset = "iris\\u0000"': "control character",
    '[report]\ntargets = ["mcu", "x\\u0000.toml"]': "control character",
    "[train]\nepochs = -1": "epochs must be in 1..100000",
    "[train]\nseed = 4294967296": "seed must be in",
    "[train]\nseed = 18446744073709551615": "more than 64 bits",
    '[train]\nbaseline = "nosuch"': "method must be one of",
    "[simulate]\ntimesteps = -3": "timesteps must be in 0..",
    '[simulate]\nbackend = "nosuch"': "unknown backend",
    '[simulate]\nneuron = "lif"': "neuron must be",
    '[report]\ntargets = ["mcu", "nosuch"]': "unknown target",
    "[simulate]\nlimit = 0": "limit must be",
}


@pytest.mark.parametrize("body", list(PIPELINES), ids=range(len(PIPELINES)))
def test_the_pipeline_file_is_checked_whole_before_stage_1(tmp_path, capsys, monkeypatch, body):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.toml").write_text('runs_dir = "runs"\n' + body + "\n")
    _fail(capsys, ["pipeline", "p.toml"], PIPELINES[body])
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written


# -- checkpoints ----------------------------------------------------------------------------------------------------
def _checkpoint(tmp_path):
    import torch

    from ternkit.trainer.checkpoint import save_checkpoint

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    rule = torch.optim.Adam(net.parameters())
    path = tmp_path / "m.tern.ckpt"
    save_checkpoint(path, net, rule, {"epochs": []}, 1, 0, {"seed": 0})
    return net, path


def test_a_checkpoint_resumes_under_a_memory_limit(tmp_path):
    """`ulimit -v` 4 GiB: reading must not reserve the 16 GiB ceiling (it was a MemoryError on every resume)."""
    _checkpoint(tmp_path)
    code = textwrap.dedent(f"""
        import resource
        from pathlib import Path
        from ternkit.trainer.checkpoint import MAX_CHECKPOINT, load_checkpoint
        from ternkit.core.readers import read_bytes
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        state = load_checkpoint(Path({str(tmp_path / 'm.tern.ckpt')!r}), {{"seed": 0}})
        assert state["epoch"] == 1
        assert len(read_bytes(Path({str(tmp_path / 'm.tern.ckpt')!r}), MAX_CHECKPOINT, "checkpoint")) > 0
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_a_checkpoint_larger_than_its_network_could_write_is_refused(tmp_path):
    import torch

    from ternkit.core.errors import ArtifactError
    from ternkit.trainer.checkpoint import checkpoint_limit, load_checkpoint

    net, path = _checkpoint(tmp_path)
    assert load_checkpoint(path, {"seed": 0}, net)["epoch"] == 1
    limit = checkpoint_limit(net)
    assert limit < 100 << 20  # 8x a 67-parameter state + 64 MiB slack, not 16 GiB
    with open(path, "r+b") as f:
        f.truncate(limit + 1)  # sparse: larger than this network's checkpoint can be
    with pytest.raises(ArtifactError, match="limit") as e:
        load_checkpoint(path, {"seed": 0}, net)
    assert "\n" not in str(e.value)
    big = torch.nn.Linear(4000, 4000)  # a bigger network may have written it: read (and found corrupt)
    with pytest.raises(ArtifactError, match="not a readable checkpoint"):
        load_checkpoint(path, {"seed": 0}, big)


# -- an untraceable user model: refused before step 1 ---------------------------------------------------------------
USER_MODELS = """
import torch
from torch import nn


class Branchy(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x):
        y = self.fc(x)
        if y.sum() > 0:  # data-dependent control flow
            return y
        return -y


class Spectral(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.fc(torch.fft.fft(x).real)  # an operation the tracer does not map


def branchy(shape, classes):
    return Branchy(shape[0], classes)


def spectral(shape, classes):
    return Spectral(shape[0], classes)
"""


@pytest.mark.parametrize("func,words", [("branchy", "cannot trace"), ("spectral", "fft")])
def test_an_untraceable_model_is_refused_before_training(tmp_path, capsys, func, words):
    (tmp_path / "net.py").write_text(USER_MODELS)
    err = _fail(capsys, ["train", "--dataset", "iris", "--model", f"{tmp_path / 'net.py'}:{func}", "--epochs", "50",
                         "--out", str(tmp_path / "m.tern")], words)
    assert "epoch" not in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["net.py"], err


# -- provenance ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [[0.2, 0], "val_fraction=0.2", 5])
def test_a_provenance_config_that_is_not_an_object_is_refused(tmp_path, capsys, config):
    model = random_cnn()
    model.provenance.update({"dataset": "digits", "config": config})
    save_model(model, tmp_path / "m.tern")
    _fail(capsys, ["export", "lava", str(tmp_path / "m.tern"), "-o", str(tmp_path / "g.lava.json")],
          "provenance field config must be an object", "--calibrate")
    assert not (tmp_path / "g.lava.json").exists()
    assert main(["export", "lava", str(tmp_path / "m.tern"), "-o", str(tmp_path / "g.lava.json"),
                 "--calibrate", "digits"]) == 0  # the user names the data: the config is not needed
