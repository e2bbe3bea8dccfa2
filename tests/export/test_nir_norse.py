"""Norse, an independent NIR consumer, runs ternkit's .nir files: its spike counts must equal ternkit's NIR
simulation exactly, sample by sample, for an MLP, a conv net with average pooling and a residual net (a*q and
integer weights).

How the file is loaded is how a user should load it (docs/nir.md): `nir.read`, then `nirtorch.nir_to_torch`
with Norse's node mapping for IF, Conv2d, SumPool2d and Flatten, and Affine and Scale mapped here -- nirtorch
2.6's default Affine leaves the bias random and Norse maps no Scale; the deprecated `norse.from_nir` runs
residual graphs in the wrong order. NIR shapes carry no batch dimension and Norse applies Flatten literally, so
graphs with a Flatten get one sample at a time."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_mlp
from op_examples import example_input, example_model

norse = pytest.importorskip("norse", reason="norse is not installed (the full environment installs it: make setup)")
nir = pytest.importorskip("nir", reason="the `nir` package is not installed (pip install 'ternkit[nir]')")
nirtorch = pytest.importorskip("nirtorch", reason="nirtorch is not installed (it comes with norse)")

import torch  # noqa: E402

from ternkit.export.nir.calibrate import calibrate  # noqa: E402
from ternkit.export.nir.graph import build_graph  # noqa: E402
from ternkit.export.nir.nirfile import write_nir  # noqa: E402
from ternkit.export.nir.sim import run_graph  # noqa: E402


def _affine(node) -> torch.nn.Module:
    m = torch.nn.Linear(node.weight.shape[1], node.weight.shape[0])
    m.weight.data = torch.from_numpy(np.asarray(node.weight, np.float32))
    m.bias.data = torch.from_numpy(np.asarray(node.bias, np.float32))
    return m


class _Scale(torch.nn.Module):
    def __init__(self, scale: np.ndarray):
        super().__init__()
        self.register_buffer("scale", torch.from_numpy(np.asarray(scale, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def norse_module(path):
    from norse.torch.utils.import_nir import _import_norse_module as norse_map

    mapping = {nir.IF: norse_map, nir.Conv2d: norse_map, nir.SumPool2d: norse_map, nir.Flatten: norse_map,
               nir.Affine: _affine, nir.Scale: lambda n: _Scale(n.scale)}
    return nirtorch.nir_to_torch(nir.read(path), mapping)


def norse_counts(module, x: np.ndarray, timesteps: int, batched: bool) -> np.ndarray:
    def run(xb: torch.Tensor) -> np.ndarray:
        state, total = None, 0
        with torch.no_grad():
            for _ in range(timesteps):
                out, state = module(xb, state)
                total = total + out
        return np.asarray(total.numpy(), np.int64)

    if batched:
        return run(torch.from_numpy(x))
    return np.stack([run(torch.from_numpy(s)) for s in x])


MODELS = {"mlp": lambda: random_mlp((20, 48, 24, 10), seed=5), "conv-avgpool": lambda: example_model("avgpool2d"),
          "residual": lambda: example_model("add")}


@pytest.mark.parametrize("integer", [False, True], ids=["aq", "integer"])
@pytest.mark.parametrize("name", list(MODELS))
def test_norse_spike_counts_equal_ternkit(tmp_path, name, integer):
    model = MODELS[name]()
    x = example_input(model, 120, seed=2) if name != "mlp" else \
        np.random.default_rng(2).normal(0, 1, (120, 20)).astype(np.float32)
    T = 32
    params = calibrate(model, x[:40], T, integer_weights=integer)
    graph = build_graph(model, params, integer_weights=integer, timesteps=T)
    write_nir(graph, tmp_path / "m.nir")
    xn = model.input.normalise(x[40:])
    ours = run_graph(graph, xn, T).counts
    theirs = norse_counts(norse_module(tmp_path / "m.nir"), xn, T, batched=name == "mlp")
    assert ours.sum() > 0 and len(np.unique(ours.argmax(1))) > 1  # the network really spikes and decides
    np.testing.assert_array_equal(theirs, ours)
