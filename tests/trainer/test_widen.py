import numpy as np
import pytest
import torch
from conftest import random_cnn, random_mlp

from ternkit.cli import main
from ternkit.core import load_model, save_model
from ternkit.core.errors import OptionError
from ternkit.core.model import InputSpec
from ternkit.trainer import TrainConfig, build_network
from ternkit.trainer.widen import (
    Imitation,
    go_wide_then_narrow,
    load_float_weights,
    merge,
    teacher_from_model,
    widen_settings,
    widen_spec,
)


def test_widen_spec():
    assert widen_spec("mlp:32x16", 4) == "mlp:128x64"
    assert widen_spec("cnn:8c3s2-16c5s2p1-20", 2) == "cnn:16c3s2p1-32c5s2p1-40"
    assert build_network(widen_spec("cnn", 3), (1, 28, 28), 10, "float")  # parses back


@pytest.mark.parametrize("thin_spec,wide_spec,shape", [("mlp:6x5", "mlp:24x20", (7,)),
                                                       ("cnn:3c3s2-4c3s1-6", "cnn:12c3s2-16c3s1-24", (2, 9, 9))])
def test_merged_thin_network_computes_the_same_function(thin_spec, wide_spec, shape):
    teacher = build_network(wide_spec, shape, 4, "discrete", seed=1)
    thin = build_network(thin_spec, shape, 4, "float", seed=2)
    im = Imitation(teacher, thin)
    with torch.no_grad():  # maps far from their initial embedding, so the merge has real work to do
        for p in [*im.blocks.parameters(), *im.maps.parameters()]:
            p.add_(torch.randn_like(p) * 0.3)
    x = torch.randn(11, *shape)
    with torch.no_grad():
        before = im(x)
        load_float_weights(thin, merge(im))
        after = thin(x)
    assert after.shape == before.shape
    assert torch.allclose(after, before, atol=1e-5 * before.abs().max().item())


def test_imitation_at_full_width_starts_as_the_teacher():
    teacher = build_network("mlp:9x7", (5,), 3, "float", seed=1)
    im = Imitation(teacher, build_network("mlp:9x7", (5,), 3, "float", seed=2))
    x = torch.randn(4, 5)
    with torch.no_grad():
        assert torch.allclose(im(x), teacher(x), atol=1e-6)


@pytest.mark.parametrize("model", [random_mlp((4, 12, 3), kind="float"), random_cnn()])
def test_teacher_from_an_artifact_computes_its_function_under_another_normalisation(model):
    shape = tuple(model.input.shape)
    student = InputSpec(shape, np.full_like(model.input.mean, 0.5) if model.input.mean.ndim else 0.5,
                        np.full_like(model.input.std, 2.0))
    net = teacher_from_model(model, student)
    x = np.random.default_rng(0).normal(3, 2, size=(6, *shape)).astype(np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(student.normalise(x))).numpy()
    assert np.allclose(got, model.forward(x), atol=1e-4)


def test_requantised_conntra_weights():
    net = build_network("mlp:8", (5,), 3, "discrete")
    w = [(torch.randn(8, 5), torch.randn(8)), (torch.randn(3, 8), torch.randn(3))]
    load_float_weights(net, w)
    for layer, (fw, _) in zip(net.weight_layers(), w, strict=True):
        q = layer.weight.detach()
        assert set(q.unique().tolist()) <= {-1.0, 0.0, 1.0}
        keep = fw.abs() > 0.7 * fw.abs().mean(1, keepdim=True)
        assert torch.equal(q != 0, keep) and torch.equal(torch.sign(fw)[keep], q[keep])


@pytest.mark.parametrize("method", ["float", "ste", "conntra"])
def test_go_wide_then_narrow_end_to_end(method, tmp_path):
    cfg = TrainConfig(dataset="iris", model="mlp:6", method=method, epochs=8, batch_size=16, lr=1e-2, seed=1,
                      extra={"widen": {"factor": 4, "teacher_epochs": 15, "imitate_epochs": 3}})
    r = go_wide_then_narrow(cfg, out=tmp_path / "thin.tern", progress=False)
    report = r.metrics["wide_then_narrow"]
    assert report["teacher_spec"] == "mlp:24" and report["teacher_method"] == method
    assert len(report["imitation"]) == 1
    assert all(report[k] > 0 for k in ("teacher_seconds", "imitation_seconds", "finetune_seconds"))
    model = load_model(tmp_path / "thin.tern")
    assert [layer.weight.shape for layer in model.weight_layers] == [(6, 4), (3, 6)]
    assert model.kind == ("float" if method == "float" else "ternary")
    assert r.metrics["val_error"] <= 0.25
    teacher = load_model(tmp_path / "thin.teacher.tern")  # reusable with --teacher
    assert teacher.weight_layers[0].weight.shape == (24, 4)


def test_teacher_file_and_bad_input(tmp_path, capsys):
    teacher = random_mlp((4, 20, 3), kind="float")
    teacher.labels = ["setosa", "versicolor", "virginica"]
    save_model(teacher, tmp_path / "t.tern")
    from ternkit.core import load_dataset
    assert load_dataset("iris").labels == teacher.labels
    code = main(["train", "--dataset", "iris", "--model", "mlp:5", "--method", "ste", "--epochs", "2", "--quiet",
                 "--teacher", str(tmp_path / "t.tern"), "--imitate-epochs", "1", "--out", str(tmp_path / "s.tern")])
    assert code == 0 and load_model(tmp_path / "s.tern").weight_layers[0].weight.shape == (5, 4)
    for argv in (["--teacher", str(tmp_path / "missing.tern")], ["--widen", "1"], ["--imitate-epochs", "2"],
                 ["--widen", "4", "--teacher", str(tmp_path / "t.tern")],
                 ["--model", "mlp:5x5", "--teacher", str(tmp_path / "t.tern")],
                 ["--widen", "2", "--resume"]):
        code = main(["train", "--dataset", "iris", "--model", "mlp:5", "--epochs", "1", "--quiet",
                     "--out", str(tmp_path / "bad.tern"), *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)
        assert not (tmp_path / "bad.tern").exists()
    with pytest.raises(OptionError):
        widen_settings(TrainConfig(extra={"widen": {"factor": 4, "colour": 1}}))
