"""Evaluate a model file on a dataset: accuracy, per-class accuracy and the confusion matrix.

A `.tern` artifact runs through the numpy reference (`TernaryModel.forward`); an `.onnx` export runs through
onnxruntime, so the figures are those of the deployed file. `ternkit eval` and the pipeline call `evaluate`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ternkit.core import ArtifactError, OptionError, TernaryModel, load_dataset, load_model
from ternkit.core.readers import check_regular

__all__ = ["evaluate", "predictor", "MAX_CONFUSION_LABELS", "MAX_ONNX"]

MAX_ONNX = 2 << 30  # protobuf's own limit

# the k x k confusion matrix only for a k a person can read (a model may declare tens of thousands of labels:
# their square would be GBs); per-class accuracy is always given
MAX_CONFUSION_LABELS = 100

BATCH = 1024


def _no_external_data(path: str) -> None:
    """An .onnx file may name other files to load its tensors from ("external data"): a model never makes
    ternkit read a file, so such a model is refused before onnxruntime sees it."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    check_regular(path, MAX_ONNX, "ONNX", ArtifactError)
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf raises its own types for a corrupt file
        raise ArtifactError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None
    for t in _get_all_tensors(proto):
        if uses_external_data(t):
            raise ArtifactError(f"{path}: tensor {t.name[:60]!r} is stored in another file (external data); "
                                "ternkit reads only the files you name")


def predictor(model: str | os.PathLike | TernaryModel
              ) -> tuple[list[str], tuple[int, ...], Callable[[np.ndarray], np.ndarray]]:
    """(labels, input shape, batch -> logits) for a loaded artifact or a model file of either kind."""
    if isinstance(model, TernaryModel):
        return list(model.labels), tuple(model.input.shape), model.forward
    path = str(model)
    if Path(path).suffix == ".onnx":
        from .onnx.infer import OnnxModel

        _no_external_data(path)
        m = OnnxModel(path)
        return m.labels, m.input_shape, m.forward
    loaded = load_model(path)
    return loaded.labels, tuple(loaded.input.shape), loaded.forward


def evaluate(model: str | os.PathLike | TernaryModel, dataset: str, limit: int | None = None) -> dict[str, Any]:
    """{"model", "dataset", "n", "accuracy", "per_class", "confusion", "labels"} of `model` (a `.tern` or
    `.onnx` path, or a loaded artifact) on the dataset spec `dataset`; `limit`: N samples spread evenly over
    it. `confusion` (rows: true class, columns: predicted) is None above MAX_CONFUSION_LABELS classes."""
    labels, shape, forward = predictor(model)
    data = load_dataset(dataset)
    if limit is not None:
        if limit < 1:
            raise OptionError(f"--limit must be at least 1, got {limit}")
        data = data.spread(limit)
    if data.shape != tuple(shape):
        raise OptionError(f"{dataset} has samples of shape {data.shape}, the model expects {tuple(shape)}")
    if len(data.labels) > len(labels):
        raise OptionError(f"{dataset} has {len(data.labels)} classes, the model only {len(labels)}")
    pred = np.concatenate([forward(data.x[i:i + BATCH]).argmax(1) for i in range(0, len(data), BATCH)])
    k = len(labels)
    support = np.bincount(data.y, minlength=k)  # per class from counts: O(k)
    hits = np.bincount(data.y[pred == data.y], minlength=k)
    per_class = {labels[i]: (float(hits[i] / support[i]) if support[i] else None) for i in range(k)}
    confusion = None
    if k <= MAX_CONFUSION_LABELS:
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (data.y, pred), 1)
        confusion = matrix.tolist()
    return {"model": None if isinstance(model, TernaryModel) else str(model), "dataset": dataset,
            "n": int(len(data)), "accuracy": float((pred == data.y).mean()), "per_class": per_class,
            "confusion": confusion, "labels": list(labels)}
