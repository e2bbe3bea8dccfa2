"""`ternkit.train` does what `ternkit train` does: go wide then narrow, the comparison runs, techniques by
registration, settings in the config (never in the environment)."""

import json

import numpy as np
import pytest

import ternkit
from ternkit.cli import main
from ternkit.core import load_model
from ternkit.core.errors import OptionError
from ternkit.trainer import TrainConfig, techniques_for, train_methods
from ternkit.trainer.technique import registered

WIDEN = ["--dataset", "iris", "--model", "mlp:8", "--epochs", "2", "--seed", "3", "--widen", "4",
         "--teacher-epochs", "1", "--imitate-epochs", "1", "--quiet"]


def _same_weights(a, b) -> None:
    for la, lb in zip(a.weight_layers, b.weight_layers, strict=True):
        for name in ("weight", "scale", "bias"):
            assert np.array_equal(getattr(la, name), getattr(lb, name)), name


def test_api_widen_gives_the_cli_artifact(tmp_path):
    """Regression: ternkit.train with widening settings used to train a plain network and still record the
    widening in the provenance. Now it is the CLI's run, bit for bit."""
    assert main(["train", *WIDEN, "--out", str(tmp_path / "cli.tern")]) == 0
    config = TrainConfig(dataset="iris", model="mlp:8", epochs=2, seed=3,
                         extra={"widen": {"factor": 4, "teacher_epochs": 1, "imitate_epochs": 1}})
    result = ternkit.train(config, out=tmp_path / "api.tern", progress=False)
    cli, api = load_model(tmp_path / "cli.tern"), load_model(tmp_path / "api.tern")
    _same_weights(cli, api)
    _same_weights(result.model, cli)
    report = result.metrics["wide_then_narrow"]
    assert report["factor"] == 4 and report["teacher_spec"] == "mlp:32"
    assert json.loads((tmp_path / "cli.metrics.json").read_text())["wide_then_narrow"]["teacher_spec"] == "mlp:32"
    assert (tmp_path / "api.teacher.tern").is_file() and (tmp_path / "cli.teacher.tern").is_file()
    # a plain run of the same config is another network: the widening did happen
    plain = ternkit.train(TrainConfig(dataset="iris", model="mlp:8", epochs=2, seed=3), progress=False)
    assert any(not np.array_equal(a.weight, b.weight)
               for a, b in zip(plain.model.weight_layers, api.weight_layers, strict=True))


def test_api_widen_refuses_what_it_cannot_honour(tmp_path):
    config = TrainConfig(dataset="iris", model="mlp:8", epochs=1, extra={"widen": {"factor": 4}})
    with pytest.raises(OptionError, match="--resume is not supported"):
        ternkit.train(config, out=tmp_path / "m.tern", resume=True)
    with pytest.raises(OptionError, match="plain run"):
        ternkit.train(config, techniques=[])


def test_train_methods_runs_the_comparison(tmp_path):
    """--compare through the API: one run per method, OUT.METHOD.tern beside OUT, the given method first."""
    config = TrainConfig(dataset="iris", model="mlp:8", epochs=1)
    runs = train_methods(config, ["float", "conntra", "float"], out=tmp_path / "m.tern", progress=False)
    assert list(runs) == ["conntra", "float"]
    assert runs["float"].metrics["method"] == "float"
    assert (tmp_path / "m.tern").is_file() and (tmp_path / "m.float.tern").is_file()
    assert (tmp_path / "m.float.metrics.json").is_file()
    with pytest.raises(OptionError, match="--compare"):
        train_methods(config, ["adam"])
    assert ternkit.train_methods is train_methods


def test_techniques_register_in_attach_order():
    keys = [r.key for r in registered()]
    for before, after in (("distributed", "approx"), ("approx", "dropout"), ("penalty", "prune")):
        assert keys.index(before) < keys.index(after)
    config = TrainConfig(extra={"approx": {"method": "topk", "ratio": 0.5}, "dropout": {"kind": "mask", "rates": [0.2]},
                                "penalty": {"kind": "l1"}, "prune": {"fraction": 0.5}})
    assert [t.name for t in techniques_for(config)][:2] == ["approx", "dropout"]
    assert len(techniques_for(config)) == 4


def test_distributed_settings_travel_in_the_config_not_the_identity():
    a = TrainConfig(extra={"distributed": {"timeout": 5.0}})
    assert a.identity() == TrainConfig().identity()  # a resumed run may use another timeout or rendezvous
    with pytest.raises(OptionError, match="--dist-timeout"):
        techniques_for(TrainConfig(extra={"distributed": {"timeout": -1}}))


def test_cli_flags_are_made_from_the_techniques_typed_settings():
    """Every registered technique's flags come from its Options dataclass; a flag's value reaches config.extra."""
    import argparse

    from ternkit.commands.train import add_parser, config_from_args

    sub = argparse.ArgumentParser().add_subparsers()
    add_parser(sub)
    parser = sub.choices["train"]
    flags = {s for a in parser._actions for s in a.option_strings}
    declared = {flag for r in registered() if r.options for _, flag, _ in r.options.flags()}
    assert {"--approx", "--dropout", "--penalty", "--l1", "--prune", "--widen", "--teacher",
            "--dist-timeout"} <= declared
    assert declared <= flags
    args = parser.parse_args(["--penalty", "l1", "--l1", "1e-3", "--prune", "0.5", "--dist-timeout", "9"])
    extra = config_from_args(args).extra
    assert extra["penalty"] == {"kind": "l1", "strength": 1e-3} and extra["prune"] == {"fraction": 0.5, "method": None}
    assert extra["distributed"] == {"timeout": 9.0}
    with pytest.raises(OptionError, match="--prune-method halo"):
        config_from_args(parser.parse_args(["--prune", "0.5", "--prune-method", "halo"]))


def test_pipeline_train_stage_runs_the_techniques(tmp_path):
    """[train] techniques reach config.extra: the pipeline's train stage widens as ternkit.train does."""
    from ternkit.pipeline import _train, load_pipeline_config

    toml = tmp_path / "p.toml"
    toml.write_text('[data]\ndataset = "iris"\n[train]\nmodel = "mlp:8"\nepochs = 2\nseed = 3\nbaseline = ""\n'
                    'batch_size = 16\n'
                    'techniques = { widen = { factor = 4, teacher_epochs = 1, imitate_epochs = 1 } }\n')
    cfg = load_pipeline_config(str(toml))
    run = tmp_path / "run"
    run.mkdir()
    _train(cfg, run, {})
    config = TrainConfig(dataset="iris", model="mlp:8", epochs=2, seed=3, batch_size=16,
                         extra={"widen": {"factor": 4, "teacher_epochs": 1, "imitate_epochs": 1}})
    _same_weights(load_model(run / "model.tern"), ternkit.train(config, progress=False).model)
    assert "wide_then_narrow" in load_model(run / "model.tern").metrics
    toml.write_text('[data]\ndataset = "iris"\n[train]\ntechniques = { shrink = { factor = 2 } }\n')
    with pytest.raises(OptionError, match="unknown technique 'shrink'"):
        load_pipeline_config(str(toml))
    toml.write_text('[data]\ndataset = "iris"\n[train]\ntechniques = { prune = { fraction = 2 } }\n')
    with pytest.raises(OptionError, match=r"pipeline \[train\]: prune must be a fraction"):
        load_pipeline_config(str(toml))
