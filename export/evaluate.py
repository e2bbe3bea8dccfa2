"""Evaluate a model file on a dataset: accuracy, per-class accuracy and the confusion matrix of a classifier;
MSE, MAE, R^2 (and for an autoencoder on labelled data the ROC AUC of the reconstruction error) of a regression.

A `.tern` artifact runs through the numpy reference (`TernaryModel.forward`); an `.onnx` export runs through
onnxruntime, so the figures are those of the deployed file. `ternkit eval` and the pipeline call `evaluate`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ternkit.core import ArtifactError, Dataset, OptionError, TernaryModel, load_dataset, load_model
from ternkit.core.data import DatasetLike
from ternkit.core.model import TASKS
from ternkit.core.readers import check_regular

__all__ = ["evaluate", "predictor", "load_predictor", "Predictor", "regression_scores", "roc_auc", "anomaly_labels",
           "MAX_CONFUSION_LABELS", "MAX_ONNX"]

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


@dataclass
class Predictor:
    labels: list[str]  # class names, or a regression's output names
    shape: tuple[int, ...]  # one input sample
    forward: Callable[[np.ndarray], np.ndarray]  # raw batch -> logits or outputs
    task: str  # classify | regress | autoencode


def load_predictor(model: str | os.PathLike | TernaryModel) -> Predictor:
    """A loaded artifact or a model file of either kind, as something to run on batches."""
    if isinstance(model, TernaryModel):
        return Predictor(list(model.labels), tuple(model.input.shape), model.forward, model.task)
    path = str(model)
    if Path(path).suffix == ".onnx":
        from .onnx.infer import OnnxModel

        _no_external_data(path)
        m = OnnxModel(path)
        task = m.metadata.get("ternkit.task", "classify")
        if task not in TASKS:
            raise ArtifactError(f"{path}: unknown ternkit.task {task[:40]!r} in its metadata")
        return Predictor(m.labels, m.input_shape, m.forward, task)
    loaded = load_model(path)
    return Predictor(list(loaded.labels), tuple(loaded.input.shape), loaded.forward, loaded.task)


def predictor(model: str | os.PathLike | TernaryModel
              ) -> tuple[list[str], tuple[int, ...], Callable[[np.ndarray], np.ndarray]]:
    """(labels, input shape, batch -> logits) for a loaded artifact or a model file of either kind."""
    p = load_predictor(model)
    return p.labels, p.shape, p.forward


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of `score` for the boolean `positive` (ties count half): the chance that a
    random positive scores above a random negative. None when one of the two kinds is missing."""
    score, positive = np.asarray(score, np.float64).reshape(-1), np.asarray(positive, bool).reshape(-1)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), np.float64)
    sorted_scores = score[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(score)]
    for a, b in zip(starts, ends, strict=True):  # average rank (1-based) over each run of ties
        ranks[order[a:b]] = (a + b + 1) / 2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def anomaly_labels(data: Dataset) -> np.ndarray | None:
    """True for the anomalies of a labelled set (label "0" = normal, any other = anomaly), or None when the set
    has no class labels (an autoencoder's data keeps them in `classes`)."""
    if data.task == "classify":
        idx, names = data.y, data.labels
    elif data.classes is not None and data.class_names is not None:
        idx, names = data.classes, data.class_names
    else:
        return None
    if "0" not in names:
        raise OptionError(f"{data.name}: anomaly labels must mark normal samples 0 (labels: {', '.join(names[:5])})")
    return np.array(names)[idx] != "0"


def regression_scores(out: np.ndarray, target: np.ndarray, anomaly: np.ndarray | None = None) -> dict[str, Any]:
    """MSE, MAE and R^2 (1 - residual / total sum of squares, summed over the outputs, so outputs that never
    vary -- an image's blank border -- do not divide by zero) of outputs against targets; with `anomaly`
    (boolean per sample) also the ROC AUC of each sample's reconstruction error (mean squared) as its score."""
    out, target = np.asarray(out, np.float64).reshape(len(out), -1), np.asarray(target, np.float64)
    target = target.reshape(len(target), -1)
    err = out - target
    total = float(((target - target.mean(0)) ** 2).sum())
    scores: dict[str, Any] = {"mse": float((err ** 2).mean()), "mae": float(np.abs(err).mean()),
                              "r2": 1 - float((err ** 2).sum()) / total if total > 0 else None}
    if anomaly is not None:
        scores["auc"] = roc_auc((err ** 2).mean(1), anomaly)
        scores["anomalies"] = int(np.sum(anomaly))
    return scores


def _outputs(forward: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    return np.concatenate([forward(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])


def evaluate(model: str | os.PathLike | TernaryModel, dataset: DatasetLike, limit: int | None = None
             ) -> dict[str, Any]:
    """Figures of `model` (a `.tern` or `.onnx` path, or a loaded artifact) on `dataset` (a spec, or in the
    API arrays or a torch dataset); `limit`: N samples spread evenly over it.

    A classifier: {"model", "dataset", "n", "task", "accuracy", "per_class", "confusion", "labels"};
    `confusion` (rows: true class, columns: predicted) is None above MAX_CONFUSION_LABELS classes. A regression
    or autoencoder: {"model", "dataset", "n", "task", "mse", "mae", "r2", "labels"}, and for an autoencoder on
    a labelled set (label 0 = normal, others anomalies) "auc", the ROC AUC of the reconstruction error."""
    p = load_predictor(model)
    labels, shape, forward = p.labels, p.shape, p.forward
    # read for the model's task (so SPEC@val is the part its training held out); an autoencoder's data keeps its
    # class labels, if any: they mark the anomalies
    data = load_dataset(dataset, p.task)
    name = dataset if isinstance(dataset, str) else data.name
    if limit is not None:
        if limit < 1:
            raise OptionError(f"--limit must be at least 1, got {limit}")
        data = data.spread(limit)
    if data.shape != tuple(shape):
        raise OptionError(f"{name} has samples of shape {data.shape}, the model expects {tuple(shape)}")
    head = {"model": None if isinstance(model, TernaryModel) else str(model), "dataset": name,
            "n": int(len(data)), "task": p.task}
    if p.task != "classify":
        target = data.x.reshape(len(data), -1) if p.task == "autoencode" else data.y
        if target.shape[1] != len(labels):
            raise OptionError(f"{name} has {target.shape[1]} targets per sample, the model {len(labels)} outputs")
        anomaly = anomaly_labels(data) if p.task == "autoencode" else None
        return {**head, **regression_scores(_outputs(forward, data.x), target, anomaly), "labels": list(labels)}
    if len(data.labels) > len(labels):
        raise OptionError(f"{name} has {len(data.labels)} classes, the model only {len(labels)}")
    pred = _outputs(forward, data.x).argmax(1)
    k = len(labels)
    support = np.bincount(data.y, minlength=k)  # per class from counts: O(k)
    hits = np.bincount(data.y[pred == data.y], minlength=k)
    per_class = {labels[i]: (float(hits[i] / support[i]) if support[i] else None) for i in range(k)}
    confusion = None
    if k <= MAX_CONFUSION_LABELS:
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (data.y, pred), 1)
        confusion = matrix.tolist()
    return {**head, "accuracy": float((pred == data.y).mean()), "per_class": per_class,
            "confusion": confusion, "labels": list(labels)}
