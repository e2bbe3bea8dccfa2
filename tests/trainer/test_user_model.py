"""Bring your own model: drop-in ternary layers, CoNNTrA as a torch optimizer, tracing into the artifact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ternkit
from ternkit.cli import main
from ternkit.core import UnsupportedError, load_model
from ternkit.nn import TernaryConv2d, TernaryLinear, ternarize
from ternkit.optim import CoNNTrA
from ternkit.trainer.trace import StaleBatchNormWarning

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))


def test_ternary_layers_take_torch_arguments_and_compute_scale_times_trits():
    torch.manual_seed(0)
    conv = TernaryConv2d(4, 8, (3, 1), stride=(2, 1), padding=(1, 0), groups=2, bias=False)
    lin = TernaryLinear(12, 5, method="ste")
    x = torch.randn(3, 4, 6, 5)
    w, s = conv.deployed()
    assert w.shape == (8, 2, 3, 1) and set(w.unique().tolist()) <= {-1.0, 0.0, 1.0}
    ref = F.conv2d(x, w * s.view(-1, 1, 1, 1), None, (2, 1), (1, 0), 1, 2)
    torch.testing.assert_close(conv(x), ref)
    assert not conv.bias.requires_grad and lin.bias.requires_grad
    with pytest.raises(ValueError, match="dilation"):
        TernaryConv2d(2, 2, 3, dilation=2)


def test_ternarize_swaps_in_place_and_keeps_what_is_skipped():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    out = ternarize(model, skip=["last"])
    assert out is model and isinstance(model[0], TernaryConv2d) and type(model[3]) is nn.Linear
    with pytest.raises(UnsupportedError, match="3: a float Linear in a ternary model"):
        ternkit.to_artifact(model, (1, 8, 8))


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


def _net(seed=0):
    torch.manual_seed(seed)
    return ternarize(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                   nn.Flatten(), nn.Linear(4 * 64, 4)))


def _steps(model, opt, x, y, steps, start=0):
    for i in range(start, start + steps):
        b = slice(32 * (i % 8), 32 * (i % 8) + 32)
        opt.zero_grad()
        F.cross_entropy(model(x[b]), y[b]).backward()
        opt.step()


def test_optimizer_state_dict_resumes_exactly(tmp_path):
    x, y = _data()
    a = _net()
    opt = CoNNTrA(a, lr=1e-2, total_steps=20, lr_schedule="cosine")
    _steps(a, opt, x, y, 20)
    b = _net()
    opt_b = CoNNTrA(b, lr=1e-2, total_steps=20, lr_schedule="cosine")
    _steps(b, opt_b, x, y, 7)
    torch.save({"model": b.state_dict(), "opt": opt_b.state_dict()}, tmp_path / "ck.pt")
    c = _net(seed=5)  # a fresh process: other initial weights, all replaced by the checkpoint
    opt_c = CoNNTrA(c, lr=1e-2, total_steps=20, lr_schedule="cosine")
    state = torch.load(tmp_path / "ck.pt", weights_only=True)
    c.load_state_dict(state["model"])
    opt_c.load_state_dict(state["opt"])
    _steps(c, opt_c, x, y, 13, start=7)
    for (name, pa), pc in zip(a.state_dict().items(), c.state_dict().values(), strict=True):
        assert torch.equal(pa, pc), name
    q = a[0].weight.detach()
    assert set(q.unique().tolist()) <= {-1.0, 0.0, 1.0} and opt.step_index == 20


def test_optimizer_moves_only_discrete_weights_by_one_level():
    x, y = _data()
    model = _net()
    opt = CoNNTrA(model.parameters(), lr=1e-2, total_steps=10, frac_start=0.2, frac_end=0.2)
    before = model[0].weight.detach().clone()
    _steps(model, opt, x, y, 1)
    delta = (model[0].weight.detach() - before).abs()
    assert set(delta.unique().tolist()) <= {0.0, 1.0} and delta.sum() > 0
    assert opt.moves_last_step > 0


def test_traced_artifact_reproduces_the_model_and_folds_batchnorm():
    from resnet_small import build

    torch.manual_seed(0)
    model = ternarize(build((1, 8, 8), 10))
    x, _ = _data(64)
    model.train()
    model(x)  # BatchNorm statistics that are not the identity
    art = ternkit.to_artifact(model, x, normalisation=(np.zeros((1, 1, 1)), np.ones((1, 1, 1))))
    kinds = [n.op.kind for n in art.nodes]
    assert "affine" not in kinds and kinds.count("add") == 2 and kinds.count("conv2d") == 6
    model.eval()
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(art.forward(x.numpy()), ref, rtol=1e-4, atol=1e-4)


class _Dilated(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer3 = nn.Sequential(nn.Identity(), nn.Sequential(nn.Identity(), nn.Identity()))
        self.layer3[1].conv2 = nn.Conv2d(1, 2, 3, dilation=2)
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.layer3[1].conv2(x), 1))


def test_tracer_names_what_it_cannot_express():
    with pytest.raises(UnsupportedError, match=r"^layer3\.1\.conv2 \(test_user_model\.py:\d+: return self\.fc\("
                       r"torch\.flatten\(self\.layer3\[1\]\.conv2\(x\), 1\)\)\): Conv2d with dilation=2 is not "
                       r"supported$"):
        ternkit.to_artifact(_Dilated(), (1, 8, 8))
    norm = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    with pytest.raises(UnsupportedError, match="^2: LayerNorm is not supported"):
        ternkit.to_artifact(norm, (1, 8, 8))
    with pytest.raises(UnsupportedError, match="dense does not fit"):
        ternkit.to_artifact(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), (1, 9, 9))


def test_user_loop_and_cli_give_the_same_artifact(tmp_path, capsys):
    from _user_loop import train_in_user_loop
    from kws_dscnn import build

    ours = train_in_user_loop(lambda s, k: build(s, k, width=4), "digits", epochs=1, seed=3)
    factory = tmp_path / "net.py"
    factory.write_text(f"import sys\nsys.path.insert(0, {str(EXAMPLES)!r})\nfrom kws_dscnn import build as _b\n\n"
                       "def build(shape, k):\n    return _b(shape, k, width=4)\n")
    # the loop's batch size and rate, given explicitly: on a set this small the CLI would otherwise pick its own
    assert main(["train", "--dataset", "digits", "--model", f"{factory}:build", "--epochs", "1", "--seed", "3",
                 "--batch-size", "64", "--lr", "0.001", "--quiet", "--out", str(tmp_path / "m.tern")]) == 0
    cli = load_model(tmp_path / "m.tern")
    assert cli.fingerprint() == ours.fingerprint()


@pytest.mark.parametrize("body, words", [
    ("def build(shape, k):\n    raise RuntimeError('boom')\n", "the factory raised RuntimeError: boom"),
    ("def build(shape, k):\n    return 3\n", "returned int, not a torch nn.Module"),
    ("import torch.nn as nn\ndef build(shape, k):\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 7))\n",
     "outputs (7,) per sample; the dataset has 10 classes"),
    ("import torch.nn as nn\ndef build(shape, k):\n    return nn.Sequential(nn.Flatten(), nn.Linear(63, 10))\n",
     "fails on input of shape (1, 8, 8)"),
    ("import torch.nn as nn\ndef build(shape, k):\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 9), "
     "nn.LayerNorm(9), nn.Linear(9, 10))\n", "2: LayerNorm is not supported"),
    ("this is not python\n", "importing"),
])
def test_bad_factories_exit_2_with_one_line(tmp_path, capsys, body, words):
    (tmp_path / "net.py").write_text(body)
    code = main(["train", "--dataset", "digits", "--model", f"{tmp_path / 'net.py'}:build", "--epochs", "1",
                 "--quiet", "--out", str(tmp_path / "m.tern")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "m.tern").exists()


def test_chain_only_techniques_refuse_a_graph(tmp_path, capsys):
    for extra in (["--dropout", "batchwise:0.5"], ["--widen", "2"]):
        code = main(["train", "--dataset", "digits", "--model", "resnet:4", "--epochs", "1", "--quiet",
                     "--out", str(tmp_path / "m.tern"), *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and ("chain" in err or "spec" in err), err


@pytest.mark.parametrize("script", ["kws_dscnn.py", "resnet_small.py"])
def test_examples_run_end_to_end(tmp_path, script):
    r = subprocess.run([sys.executable, str(EXAMPLES / script), "--dataset", "digits", "--epochs", "1",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    for name in ("model.tern", "model.onnx", "model.lava.json", "report/report.json"):
        assert (tmp_path / name).exists(), name
    model = load_model(tmp_path / "model.tern")
    from ternkit.export import OnnxModel

    data = ternkit.load_dataset("digits")
    agree = (OnnxModel(tmp_path / "model.onnx").predict(data.x) == model.predict(data.x)).mean()
    assert agree >= 0.999


def test_example_input_of_the_wrong_shape_is_one_clear_error():
    model = ternarize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)))
    with pytest.raises(UnsupportedError, match="conv2d does not fit its input") as e:
        ternkit.to_artifact(model, torch.zeros(2, 3, 8, 8))
    assert "\n" not in str(e.value)


def test_device_option(tmp_path, capsys):
    args = ["train", "--dataset", "iris", "--model", "mlp:4", "--epochs", "1", "--quiet", "--out"]
    assert main([*args, str(tmp_path / "cpu.tern"), "--device", "cpu"]) == 0
    assert main([*args, str(tmp_path / "auto.tern")]) == 0
    assert load_model(tmp_path / "cpu.tern").fingerprint() == load_model(tmp_path / "auto.tern").fingerprint()
    capsys.readouterr()
    if not torch.cuda.is_available():
        assert main([*args, str(tmp_path / "gpu.tern"), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(2, 5, 16), (2, 3, 7, 16)])
def test_ternary_linear_is_right_on_any_rank(shape):
    """scale and bias act on the last axis, as nn.Linear's bias does, whatever the input's rank."""
    torch.manual_seed(0)
    layer = TernaryLinear(16, 5, method="conntra")
    x = torch.randn(*shape)
    w = layer.weight * layer.scale.reshape(-1, 1)
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
        np.testing.assert_allclose(layer(x).numpy(), torch.nn.functional.linear(x, w, layer.bias).numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_ternarize_converts_linear_subclasses_and_refuses_own_forwards():
    class Attention(nn.Module):  # torch's MultiheadAttention keeps its projection in such a subclass
        def __init__(self):
            super().__init__()
            self.out_proj = nn.modules.linear.NonDynamicallyQuantizableLinear(8, 8)

        def forward(self, x):
            return self.out_proj(x)

    model = ternarize(nn.Sequential(nn.Flatten(), Attention(), nn.ReLU(), nn.Linear(8, 3)))
    assert not [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]  # none left float

    class Lora(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    with pytest.raises(ValueError, match=r"^ternarize: 0 is a Lora, a subclass of Linear with its own forward.*"
                                         r"skip=\['0'\]"):
        ternarize(nn.Sequential(Lora(4, 3)))


def test_conntra_without_total_steps_works_like_a_torch_optimizer():
    torch.manual_seed(0)
    model = ternarize(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)))
    x, y = torch.randn(256, 8), torch.randint(0, 3, (256,))
    opt = CoNNTrA(model.parameters(), lr=1e-2)  # no run length: a constant move budget
    before = [m.weight.detach().clone() for m in model if hasattr(m, "scale")]
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert opt.fraction() == pytest.approx(1e-3)
    assert losses[-1] < losses[0]
    assert any((m.weight != b).any() for m, b in zip([m for m in model if hasattr(m, "scale")], before, strict=True))
    with pytest.raises(ValueError, match="cosine"):
        CoNNTrA(model.parameters(), lr=1e-2, lr_schedule="cosine")


def test_stale_batchnorm_is_hard_to_miss():
    """After CoNNTrA steps the running statistics describe earlier weights: to_artifact warns, and with
    recalibrate= it re-estimates them (the same artifact as ternkit.recalibrate_batchnorm first)."""
    import copy

    torch.manual_seed(0)
    model = ternarize(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(4 * 6 * 6, 3)))
    x, y = torch.randn(128, 1, 8, 8), torch.randint(0, 3, (128,))
    opt = CoNNTrA(model, lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    twin = copy.deepcopy(model)
    with pytest.warns(StaleBatchNormWarning, match=r"^1: BatchNorm running statistics"):
        ternkit.to_artifact(model, x)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        art = ternkit.to_artifact(model, x, recalibrate=x)
        ternkit.recalibrate_batchnorm(twin, x)
        ref = ternkit.to_artifact(twin, x)
    assert art.fingerprint() == ref.fingerprint()


class _Shapes(nn.Module):
    """Shape arithmetic as users write it: x.shape, split with sizes, permute, reshape with -1, mean keepdim."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        y = self.conv(x)
        n, c, h, w = y.shape
        a, b = torch.split(y, [2, 4], dim=1)
        b = b.permute(0, 1, 3, 2).reshape(n, 4, -1).reshape(n, 4, w, h).transpose(2, 3)
        y = torch.cat([a, b], dim=-3) * 0.5 + 1
        return self.fc(torch.sigmoid(y).mean((2, 3), keepdim=True).flatten(1))


def test_shape_arithmetic_traces_and_matches():
    model = _Shapes().eval()
    x = torch.randn(4, 1, 5, 7)
    art = ternkit.to_artifact(model, x)
    kinds = [n.op.kind for n in art.nodes]
    assert {"slice", "transpose", "reshape", "scale_shift", "sigmoid", "avgpool2d", "concat"} <= set(kinds)
    with torch.no_grad():
        np.testing.assert_allclose(art.forward(x.numpy()), model(x).numpy(), rtol=1e-5, atol=1e-5)


class _Refused(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(1, 2, 3))
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        y = self.block(x)
        y = torch.logsumexp(y, dim=(2, 3))
        return self.fc(y)


def test_refused_calls_name_the_module_and_the_users_line():
    with pytest.raises(UnsupportedError, match=r"^the model\.forward, logsumexp \(test_user_model\.py:\d+: y = "
                                               r"torch\.logsumexp\(y, dim=\(2, 3\)\)\): function logsumexp is not "
                                               r"supported"):
        ternkit.to_artifact(_Refused(), (1, 6, 6))
    odd = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(18, 3))
    with pytest.raises(UnsupportedError, match="^1: adaptive average pooling from 5x5 to 3x3 has unequal windows"):
        ternkit.to_artifact(odd, (1, 7, 7))
