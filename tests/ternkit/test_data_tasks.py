"""Users' data and tasks end to end from the command line: a regression from a CSV (train, eval, ONNX, C with
dequantised outputs, Lava's refusal) and a 3-channel convolutional model from an `npz:` file and from a `folder:`
of PNGs the test writes (train, export ONNX and C, simulate, report)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from ternkit.cli import main
from ternkit.core import load_dataset, load_model

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler (cc)")


def _json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    """y = 3 a - 2 b + 0.5 c + noise, 400 rows; a CoNNTrA model trained on it from the CLI."""
    tmp = tmp_path_factory.mktemp("reg")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = 50 + 10 * (3 * x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 2]) + rng.normal(size=400)
    csv = tmp / "r.csv"
    rows = [",".join(f"{v:.5f}" for v in (*r, t)) for r, t in zip(x, y, strict=True)]
    csv.write_text("a,b,c,target\n" + "\n".join(rows) + "\n")
    out = tmp / "r.tern"
    assert main(["train", "--dataset", f"csv:{csv}:target", "--model", "mlp:16", "--epochs", "8", "--batch-size", "32",
                 "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    return tmp, csv, out


def test_regression_is_inferred_trained_and_evaluated(regression, capsys):
    tmp, csv, out = regression
    m = load_model(out)
    assert m.task == "regress" and m.labels == ["target"]
    r = _json(capsys, ["eval", str(out), "--dataset", f"csv:{csv}:target@val:0", "--json"])
    assert r["task"] == "regress" and r["r2"] > 0.9 and r["mae"] < 10 and "accuracy" not in r
    # the artifact answers in the data's units (targets ~50 +- 37), not in standardised ones
    d = load_dataset(f"csv:{csv}:target")
    assert abs(float(m.forward(d.x).mean()) - float(d.y.mean())) < 0.2 * float(d.y.std())


def test_regression_onnx_and_c_outputs_match_the_reference(regression, capsys):
    from ternkit.export.c.program import build_program, emulate

    tmp, csv, out = regression
    onnx = tmp / "r.onnx"
    assert main(["export", "onnx", str(out), "-o", str(onnx)]) == 0
    capsys.readouterr()
    ro = _json(capsys, ["eval", str(onnx), "--dataset", f"csv:{csv}:target@val:0", "--json"])
    rt = _json(capsys, ["eval", str(out), "--dataset", f"csv:{csv}:target@val:0", "--json"])
    assert ro["task"] == "regress" and abs(ro["mse"] - rt["mse"]) <= 1e-3 * rt["mse"]
    m, data = load_model(out), load_dataset(f"csv:{csv}:target")
    prog = build_program(m, data.x[:300])
    c_out = emulate(prog, data.x[300:]) * prog.steps[-1].scale
    ref = m.forward(data.x[300:])
    assert np.abs(c_out - ref).mean() <= 0.01 * np.abs(ref).mean()
    cdir = tmp / "c"
    assert main(["export", "c", str(out), "-o", str(cdir), "--calibrate", f"csv:{csv}:target"]) == 0
    header = (cdir / "model.h").read_text()
    assert "#define TK_OUTPUT_SCALE" in header and "void tk_outputs(const int32_t *scores, float *out);" in header


@pytest.mark.xfail(strict=True, reason="target missed (docs/benchmarks.md, regression): int8 activations put the "
                   "C outputs up to 1.05 % of the output range off the reference here, over the 1 % target")
def test_regression_c_outputs_within_one_percent_everywhere(regression):
    from ternkit.export.c.program import build_program, emulate

    _, csv, out = regression
    m, data = load_model(out), load_dataset(f"csv:{csv}:target")
    prog = build_program(m, data.x[:300])
    c_out = emulate(prog, data.x[300:]) * prog.steps[-1].scale
    ref = m.forward(data.x[300:])
    assert np.abs(c_out - ref).max() <= 0.01 * np.abs(ref).max()


def test_regression_lava_export_is_refused_in_one_line(regression, capsys):
    tmp, _, out = regression
    assert main(["export", "lava", str(out), "-o", str(tmp / "g.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "regress model" in err and not (tmp / "g.json").exists()


def test_autoencoder_auc_on_labelled_anomalies(tmp_path, capsys):
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(300, 6)) @ np.diag([3, 2, 1, 0.1, 0.1, 0.1])
    np.savez(tmp_path / "train.npz", x=normal)
    test_x = np.r_[rng.normal(size=(50, 6)) @ np.diag([3, 2, 1, 0.1, 0.1, 0.1]), rng.normal(size=(50, 6)) * 3]
    np.savez(tmp_path / "test.npz", x=test_x, y=np.r_[np.zeros(50, int), np.ones(50, int)])
    out = tmp_path / "ae.tern"
    assert main(["train", "--dataset", f"npz:{tmp_path / 'train.npz'}", "--model", "mlp:4", "--epochs", "5",
                 "--method", "float", "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    assert load_model(out).task == "autoencode"
    r = _json(capsys, ["eval", str(out), "--dataset", f"npz:{tmp_path / 'test.npz'}", "--json"])
    assert r["task"] == "autoencode" and r["anomalies"] == 50 and r["auc"] > 0.8


def _three_channel(tmp_path):
    """40 RGB 8x8 images of two classes: red-dominant and blue-dominant."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 120, (40, 8, 8, 3)).astype(np.uint8)
    y = np.arange(40) % 2
    x[y == 0, :, :, 0] += 120
    x[y == 1, :, :, 2] += 120
    return x, y


def _end_to_end(spec: str, tmp, capsys):
    out = tmp / "m.tern"
    assert main(["train", "--dataset", spec, "--model", "cnn:4c3s2-8", "--epochs", "5", "--quiet", "--device", "cpu",
                 "--out", str(out)]) == 0
    m = load_model(out)
    assert m.input.shape == (3, 8, 8)
    assert main(["export", "onnx", str(out), "-o", str(tmp / "m.onnx")]) == 0
    r = _json(capsys, ["eval", str(tmp / "m.onnx"), "--dataset", spec, "--json"])
    assert r["accuracy"] >= 0.85  # 40 images, 5 epochs: learnt (chance is 0.5), not a benchmark
    assert main(["export", "c", str(out), "-o", str(tmp / "c"), "--calibrate", spec]) == 0
    assert main(["simulate", str(out), "--backend", "onnx", "--dataset", spec]) == 0
    assert main(["report", str(out), "--dataset", spec, "-o", str(tmp / "report")]) == 0
    assert (tmp / "report" / "report.json").exists()
    capsys.readouterr()
    return out


def test_three_channel_model_from_npz(tmp_path, capsys):
    x, y = _three_channel(tmp_path)
    np.savez(tmp_path / "rgb.npz", x=x.transpose(0, 3, 1, 2), y=y)  # arrays are NCHW as torch's
    _end_to_end(f"npz:{tmp_path / 'rgb.npz'}", tmp_path, capsys)


def test_three_channel_model_from_a_folder_of_pngs(tmp_path, capsys):
    x, y = _three_channel(tmp_path)
    root = tmp_path / "images"
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        (root / ("red", "blue")[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / ("red", "blue")[label] / f"{i}.png")
    _end_to_end(f"folder:{root}", tmp_path, capsys)


@needs_cc
@pytest.mark.slow
def test_three_channel_model_in_the_c_build(tmp_path, capsys):
    x, y = _three_channel(tmp_path)
    np.savez(tmp_path / "rgb.npz", x=x.transpose(0, 3, 1, 2), y=y)
    spec = f"npz:{tmp_path / 'rgb.npz'}"
    out = _end_to_end(spec, tmp_path, capsys)
    assert main(["simulate", str(out), "--backend", "c", "--dataset", spec, "--calibrate", spec, "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["emulation_identical"] and rec["accuracy"] >= 0.85


def test_pipeline_runs_a_regression(regression, tmp_path, capsys):
    _, csv, _ = regression
    toml = tmp_path / "reg.toml"
    toml.write_text(f'name = "reg"\nruns_dir = "{tmp_path / "runs"}"\n[data]\ndataset = "csv:{csv}:target"\n'
                    '[train]\nmodel = "mlp:8"\nepochs = 20\nbaseline = ""\n[simulate]\nlimit = 20\n'
                    '[report]\ntargets = ["mcu"]\n')
    assert main(["pipeline", str(toml)]) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "runs" / "reg" / "summary.json").read_text())
    assert summary["accuracy"]["conntra (reference numpy)"] > 0.5  # R^2 on the held-out part
    assert "R² (regression" in (tmp_path / "runs" / "reg" / "summary.md").read_text()


@pytest.mark.slow
def test_guide_own_three_channel_model(tmp_path, capsys, monkeypatch):
    """The guide's "Your own model" flow as written: a user loop, to_artifact, then the CLI with npz: data."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    import ternkit
    from ternkit.nn import TernaryConv2d, TernaryLinear

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    y = np.arange(600) % 2
    x = rng.integers(0, 128, (600, 3, 32, 32)).astype(np.uint8)
    x[y == 0, 0] += 100
    x[y == 1, 2] += 100
    np.savez("rgb.npz", x=x[:500], y=y[:500], x_test=x[500:], y_test=y[500:])
    mean, std = np.zeros((3, 1, 1), np.float32), np.full((3, 1, 1), 255, np.float32)
    net = nn.Sequential(TernaryConv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                        TernaryConv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), TernaryLinear(16, 2))
    xt, yt = torch.from_numpy((x[:500] - mean) / std).float(), torch.from_numpy(y[:500])
    opt = ternkit.optim.CoNNTrA(net, lr=1e-2, total_steps=5 * 16)
    for _ in range(5):
        for i in range(0, 500, 32):
            opt.zero_grad()
            F.cross_entropy(net(xt[i:i + 32]), yt[i:i + 32]).backward()
            opt.step()
    ternkit.recalibrate_batchnorm(net, xt)
    model = ternkit.to_artifact(net, example_input=xt[:1], labels=["red", "blue"], normalisation=(mean, std))
    ternkit.save_model(model, "rgb.tern")
    assert model.input.mean.shape == (3, 1, 1)
    r = _json(capsys, ["eval", "rgb.tern", "--dataset", "npz:rgb.npz:test", "--json"])
    assert r["accuracy"] > 0.9
    for argv in (["export", "onnx", "rgb.tern", "-o", "rgb.onnx"],
                 ["export", "c", "rgb.tern", "-o", "rgb_c", "--calibrate", "npz:rgb.npz"],
                 ["report", "rgb.tern", "--dataset", "npz:rgb.npz", "-o", "rgb_report/"]):
        assert main(argv) == 0, capsys.readouterr().err
    assert ternkit.evaluate(model, (x[500:], y[500:]))["accuracy"] == r["accuracy"]
    assert ternkit.simulate(model, (x[500:], y[500:]), "onnx")["accuracy"] == r["accuracy"]
    ternkit.export_c(model, "api_c", calibrate=x[:500])
    assert (tmp_path / "api_c" / "model.h").exists()
    if shutil.which("cc"):
        assert main(["simulate", "rgb.tern", "--backend", "c", "--dataset", "npz:rgb.npz:test", "--calibrate",
                     "npz:rgb.npz"]) == 0


def test_identity_normalisation_is_stored_as_scalars_and_the_task_round_trips(tmp_path):
    import torch
    import torch.nn as nn

    import ternkit
    from ternkit.core import ArtifactError, save_model
    from ternkit.core.io import model_bytes, parse_model
    from ternkit.nn import TernaryConv2d, TernaryLinear

    torch.manual_seed(0)
    net = nn.Sequential(TernaryConv2d(3, 8, 3, stride=4), nn.ReLU(), nn.Flatten(), TernaryLinear(8 * 24 * 24, 2))
    model = ternkit.to_artifact(net, example_input=(3, 96, 96))
    assert model.input.mean.shape == (1,) and model.input.std.shape == (1,)
    save_model(model, tmp_path / "m.tern")
    # 96x96x3 identity arrays would be 2 x 110 KB; the weights are ~9 KB packed
    assert (tmp_path / "m.tern").stat().st_size < 20_000
    x = np.random.default_rng(0).random((2, 3, 96, 96)).astype(np.float32)
    assert np.array_equal(load_model(tmp_path / "m.tern").forward(x), model.forward(x))
    reg = ternkit.to_artifact(nn.Sequential(TernaryLinear(4, 1)), example_input=(4,), labels=["y"], task="regress")
    back = parse_model(model_bytes(reg))
    assert back.task == "regress" and back.fingerprint() == reg.fingerprint()
    assert parse_model(model_bytes(model)).task == "classify"  # no "task" key: a classifier, as older files
    raw = model_bytes(reg).replace(b'\\"task\\": \\"regress\\"', b'\\"task\\": \\"dancing\\"')
    with pytest.raises(ArtifactError, match="unknown task"):
        parse_model(raw)


def test_train_takes_arrays_and_torch_datasets(tmp_path):
    import torch
    from torch.utils.data import TensorDataset

    import ternkit

    x, y = _three_channel(tmp_path)
    x = x.transpose(0, 3, 1, 2).astype(np.float32)
    r = ternkit.train(ternkit.TrainConfig(dataset=(x, y), model="cnn:4c3s2-8", epochs=3, device="cpu"),
                      out=tmp_path / "a.tern", progress=False)
    assert r.model.input.shape == (3, 8, 8) and r.metrics["val_error"] <= 0.25
    assert load_model(tmp_path / "a.tern").provenance["dataset"] == "<arrays>"  # named, not stored
    ae = ternkit.train(ternkit.TrainConfig(dataset=TensorDataset(torch.from_numpy(x)), model="mlp:4", epochs=1,
                                           device="cpu"), progress=False)
    assert ae.model.task == "autoencode" and ae.model.provenance["dataset"] == "<TensorDataset>"


@pytest.mark.parametrize("make", ["pickle", "bomb", "truncated"])
def test_cli_answers_hostile_data_with_one_line(regression, tmp_path, capsys, make):
    _, _, model = regression
    if make == "pickle":
        np.savez(tmp_path / "evil.npz", x=np.array([{}, None], dtype=object), y=np.arange(2))
        spec = f"npz:{tmp_path / 'evil.npz'}"
    else:
        root = tmp_path / "imgs"
        for c in ("a", "b"):
            (root / c).mkdir(parents=True)
            Image.new("RGB", (64, 64), (10, 20, 30)).save(root / c / "0.png")
        if make == "bomb":
            Image.new("L", (5000, 5000)).save(root / "a" / "1.png")
        else:
            whole = (root / "b" / "0.png").read_bytes()
            (root / "b" / "0.png").write_bytes(whole[: len(whole) // 2])
        spec = f"folder:{root}"
    capsys.readouterr()
    assert main(["eval", str(model), "--dataset", spec]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and ("evil.npz" in err or ".png" in err), err
