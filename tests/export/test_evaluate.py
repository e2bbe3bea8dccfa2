"""`ternkit.evaluate`: the figures of a .tern (numpy reference) and its .onnx export (onnxruntime) on real data,
counted independently here; the same dict `ternkit eval --json` prints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import random_mlp

import ternkit
from ternkit.cli import main
from ternkit.core import OptionError, load_dataset, save_model
from ternkit.export import evaluate, export_onnx


@pytest.fixture
def files(tmp_path):
    model = random_mlp((4, 16, 3), seed=3)
    tern, onnx = tmp_path / "m.tern", tmp_path / "m.onnx"
    save_model(model, tern)
    export_onnx(model, onnx)
    return model, tern, onnx


def test_figures_are_those_of_the_reference(files):
    model, tern, _ = files
    data = load_dataset("iris")
    pred = model.predict(data.x)
    r = evaluate(tern, "iris")
    assert r["n"] == 150 and r["accuracy"] == pytest.approx(float((pred == data.y).mean()))
    for k, name in enumerate(model.labels):
        assert r["confusion"][k] == [int(((data.y == k) & (pred == j)).sum()) for j in range(3)]
        assert r["per_class"][name] == pytest.approx(float((pred[data.y == k] == k).mean()))
    assert r["labels"] == list(model.labels) and r["model"] == str(tern)


def test_onnx_file_and_loaded_artifact_agree_with_the_tern_file(files):
    model, tern, onnx = files
    by_file = evaluate(tern, "iris", limit=60)
    for other in (evaluate(onnx, "iris", limit=60), evaluate(model, "iris", limit=60)):
        assert {k: other[k] for k in ("n", "accuracy", "per_class", "confusion")} == \
            {k: by_file[k] for k in ("n", "accuracy", "per_class", "confusion")}
    assert evaluate(model, "iris")["model"] is None


def test_the_cli_prints_the_api_result(files, capsys):
    _, tern, _ = files
    assert main(["eval", str(tern), "--dataset", "iris", "--limit", "30", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(ternkit.evaluate(tern, "iris", 30)))


def test_bad_input(files):
    model, tern, _ = files
    with pytest.raises(OptionError, match="--limit must be at least 1"):
        evaluate(tern, "iris", limit=0)
    with pytest.raises(OptionError, match="the model expects"):
        evaluate(tern, "digits")
    small = random_mlp((4, 8, 2))
    with pytest.raises(OptionError, match="3 classes, the model only 2"):
        evaluate(small, "iris")
    assert np.isfinite(evaluate(model, "iris")["accuracy"])
