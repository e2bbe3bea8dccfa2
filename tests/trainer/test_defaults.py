"""Defaults resolved from the data and from measurements: explicit options win, small data gets a schedule that
learns, the metrics and the artifact record what was used, HALO's strength follows the method, resume is exact."""

import json

import numpy as np
import pytest

from ternkit.cli import main
from ternkit.core import load_model
from ternkit.core.errors import OptionError
from ternkit.trainer import TrainConfig, TrainingInterrupted, train
from ternkit.trainer.defaults import MAX_EPOCHS, MIN_EPOCHS, MIN_STEPS, resolve_defaults, schedule_for
from ternkit.trainer.halo import penalty_settings
from ternkit.trainer.widen import IMITATE_EPOCHS


def test_small_data_gets_small_batches_and_a_larger_rate():
    iris, digits, mnist = schedule_for(120), schedule_for(1437), schedule_for(4000)
    assert (iris["batch_size"], iris["lr"]) == (8, 1e-2)
    assert (digits["batch_size"], digits["lr"]) == (16, 3e-3)
    assert (mnist["batch_size"], mnist["lr"], mnist["epochs"]) == (64, 1e-3, 10)  # what the MNIST figures used
    # without --epochs: enough steps (iris: 15 steps per epoch -> 40 epochs), never fewer than 10 epochs
    assert iris["epochs"] == 40 and iris["steps"] >= MIN_STEPS
    assert digits["epochs"] == MIN_EPOCHS
    assert schedule_for(3)["epochs"] == MAX_EPOCHS
    assert set(iris["defaults"]) == {"batch_size", "lr", "epochs"} and "120 training samples" in iris["why"]


def test_explicit_values_win():
    s = schedule_for(120, batch_size=64, lr=1e-3, epochs=7)
    assert (s["batch_size"], s["lr"], s["epochs"], s["defaults"]) == (64, 1e-3, 7, [])
    s = schedule_for(120, batch_size=32)  # the rate and epochs still adapt
    assert (s["batch_size"], s["lr"], s["epochs"]) == (32, 1e-2, 150)  # 4 steps per epoch: 600 steps
    assert s["defaults"] == ["lr", "epochs"] and s["why"].startswith("rate for 120 training samples")


def test_batch_and_rate_do_not_depend_on_epochs():
    """A run resumed with more --epochs must resolve to the same batch and rate (the checkpoint identity)."""
    for n in (10, 120, 1437, 4000, 60000):
        a, b = schedule_for(n, epochs=5), schedule_for(n, epochs=500)
        assert (a["batch_size"], a["lr"]) == (b["batch_size"], b["lr"])


def test_resolve_is_idempotent_and_keeps_given_values():
    cfg, rec = resolve_defaults(TrainConfig(dataset="iris", epochs=3), 120)
    assert (cfg.batch_size, cfg.lr, cfg.epochs) == (8, 1e-2, 3) and rec["defaults"] == ["batch_size", "lr"]
    again, rec2 = resolve_defaults(cfg, 120)
    assert again == cfg and rec2["defaults"] == [] and rec2["why"] == "all given"


def test_halo_defaults_per_method_and_explicit_strength_wins():
    halo = {"penalty": {"kind": "halo", "xi": None, "psi": None}}
    fl = penalty_settings(TrainConfig(method="float", extra=halo))
    ct = penalty_settings(TrainConfig(method="conntra", extra=halo))
    st = penalty_settings(TrainConfig(method="ste", extra=halo))
    assert (fl["xi"], fl["psi"]) == (1e-4, 1e-5) and (ct["xi"], ct["psi"]) == (3e-4, 3e-5) == (st["xi"], st["psi"])
    mine = penalty_settings(TrainConfig(method="conntra", extra={"penalty": {"kind": "halo", "xi": 2e-6}}))
    assert (mine["xi"], mine["psi"]) == (2e-6, 3e-5)  # the given one kept, the other from the method
    cfg, rec = resolve_defaults(TrainConfig(method="float", extra=halo), 4000)
    assert cfg.extra["penalty"] == {"kind": "halo", "xi": 1e-4, "psi": 1e-5} and "penalty" in rec["defaults"]
    assert halo["penalty"]["xi"] is None  # the caller's config is not changed


def test_widen_defaults_teacher_gets_the_data_schedule():
    widen = {"widen": {"factor": 4}}
    cfg, rec = resolve_defaults(TrainConfig(epochs=30, extra=widen), 4000)
    assert cfg.extra["widen"]["teacher_epochs"] == 10 and cfg.extra["widen"]["imitate_epochs"] == IMITATE_EPOCHS
    assert rec["widen"]["teacher_epochs"] == 10
    cfg, _ = resolve_defaults(TrainConfig(epochs=30, extra={"widen": {"factor": 4, "teacher_epochs": 5}}), 120)
    assert cfg.extra["widen"]["teacher_epochs"] == 5
    cfg, _ = resolve_defaults(TrainConfig(extra=widen), 120)
    assert cfg.extra["widen"]["teacher_epochs"] == 40  # iris's default schedule


def test_metrics_and_artifact_record_the_schedule_used(tmp_path):
    """The defaults are what trained: the same run with the resolved values given explicitly is identical."""
    r = train(TrainConfig(dataset="iris", model="mlp:8", epochs=4, seed=3), out=tmp_path / "d.tern", progress=False)
    s = r.metrics["schedule"]
    assert (s["batch_size"], s["lr"], s["epochs"], s["steps"]) == (8, 1e-2, 4, 60)
    assert s["defaults"] == ["batch_size", "lr"] and s["train_samples"] == 120
    saved = json.loads((tmp_path / "d.metrics.json").read_text())["schedule"]
    assert saved == s
    model = load_model(tmp_path / "d.tern")
    assert model.provenance["config"]["batch_size"] == 8 and model.provenance["config"]["lr"] == 1e-2
    explicit = train(TrainConfig(dataset="iris", model="mlp:8", epochs=4, seed=3, batch_size=8, lr=1e-2),
                     progress=False)
    assert explicit.metrics["schedule"]["defaults"] == []
    assert explicit.model.fingerprint() == r.model.fingerprint()


def test_small_data_learns_with_the_defaults():
    """The issue's first run: iris, mlp:16, 10 epochs, nothing else -- was 53-63 % at batch 64 and rate 1e-3."""
    accs = [1 - train(TrainConfig(dataset="iris", model="mlp:16", method=m, epochs=10, seed=1),
                      progress=False).metrics["val_error"] for m in ("float", "conntra")]
    assert min(accs) >= 0.9, accs


def test_resume_with_defaults_is_exact(tmp_path, monkeypatch):
    """Interrupted and resumed with the defaults (epochs too), the run ends where an uninterrupted one does; the
    identity holds the resolved values, so giving them explicitly also resumes, and another batch size does not."""
    from ternkit.trainer import rules

    real, calls = rules.UpdateRule.step, {"n": 0}

    def interrupting(self, closure):
        calls["n"] += 1
        if calls["n"] == 50:
            raise KeyboardInterrupt
        return real(self, closure)

    cfg = dict(dataset="iris", model="mlp:8", method="float", seed=2)
    out = tmp_path / "m.tern"
    monkeypatch.setattr(rules.UpdateRule, "step", interrupting)
    with pytest.raises(TrainingInterrupted):
        train(TrainConfig(**cfg), out=out, progress=False)
    monkeypatch.setattr(rules.UpdateRule, "step", real)
    resumed = train(TrainConfig(**cfg), out=out, resume=True, progress=False)
    straight = train(TrainConfig(**cfg), progress=False)
    assert resumed.metrics["schedule"]["epochs"] == 40 and len(resumed.metrics["epochs"]) == 40
    for a, b in zip(resumed.model.weight_layers, straight.model.weight_layers, strict=True):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    train(TrainConfig(**cfg, batch_size=8, lr=1e-2, epochs=41), out=out, resume=True, progress=False)
    with pytest.raises(OptionError, match="batch_size"):  # a different batch size is a different run
        train(TrainConfig(**cfg, batch_size=16, epochs=42), out=out, resume=True, progress=False)


def test_cli_prints_the_schedule_and_help_names_the_defaults(tmp_path, capsys):
    out = tmp_path / "i.tern"
    assert main(["train", "--dataset", "iris", "--model", "mlp:4", "--epochs", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "batch 8, lr 0.01" in text and "120 training samples" in text
    assert main(["train", "--dataset", "iris", "--model", "mlp:4", "--epochs", "1", "--batch-size", "32", "--lr",
                 "0.002", "--out", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["schedule"]
    assert (s["batch_size"], s["lr"], s["defaults"]) == (32, 0.002, [])
    assert main(["train", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "8 below 400" in help_text and "3e-4 for ste and conntra" in help_text and "(default: 3)" in help_text


def test_bad_explicit_values_still_fail():
    for bad in (dict(epochs=0), dict(batch_size=0), dict(lr=0.0)):
        with pytest.raises(OptionError):
            TrainConfig(**bad).validate()
