"""`ternkit eval MODEL --dataset SPEC`: accuracy, per-class accuracy and confusion matrix.

A `.tern` file runs through the numpy reference; a `.onnx` file runs through onnxruntime.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ternkit.commands import SUMMARIES
from ternkit.core import ArtifactError, OptionError, load_dataset, load_model
from ternkit.core.readers import check_regular

MAX_ONNX = 2 << 30  # protobuf's own limit

MAX_CONFUSION_LABELS = 100


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help=SUMMARIES["eval"],
                       description="Evaluate a model: accuracy, per-class accuracy and the confusion matrix.")
    p.add_argument("model", help="a .tern artifact or an .onnx export")
    p.add_argument("--dataset", default="mnist-sample", help="dataset spec (default: mnist-sample)")
    p.add_argument("--limit", type=int, default=None, help="evaluate N samples spread evenly over the dataset")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


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


def predictor(path: str):
    """(labels, input shape, batch -> logits) for a model file of either kind."""
    if Path(path).suffix == ".onnx":
        from ternkit.export.onnx_infer import OnnxModel

        _no_external_data(path)

        m = OnnxModel(path)
        return m.labels, m.input_shape, m.forward
    model = load_model(path)
    return model.labels, tuple(model.input.shape), model.forward


def evaluate(path: str, dataset: str, limit: int | None = None) -> dict:
    labels, shape, forward = predictor(path)
    data = load_dataset(dataset)
    if limit is not None:
        if limit < 1:
            raise OptionError(f"--limit must be at least 1, got {limit}")
        data = data.spread(limit)
    if data.shape != tuple(shape):
        raise OptionError(f"{dataset} has samples of shape {data.shape}, the model expects {tuple(shape)}")
    if len(data.labels) > len(labels):
        raise OptionError(f"{dataset} has {len(data.labels)} classes, the model only {len(labels)}")
    pred = np.concatenate([forward(data.x[i:i + 1024]).argmax(1) for i in range(0, len(data), 1024)])
    k = len(labels)
    # per class from counts (O(k)); the k x k confusion matrix only for a k a person can read (a model may
    # declare tens of thousands of labels: their square would be GBs)
    support = np.bincount(data.y, minlength=k)
    hits = np.bincount(data.y[pred == data.y], minlength=k)
    per_class = {labels[i]: (float(hits[i] / support[i]) if support[i] else None) for i in range(k)}
    confusion = None
    if k <= MAX_CONFUSION_LABELS:
        confusion = np.zeros((k, k), dtype=np.int64)
        np.add.at(confusion, (data.y, pred), 1)
        confusion = confusion.tolist()
    return {"model": str(path), "dataset": dataset, "n": int(len(data)),
            "accuracy": float((pred == data.y).mean()), "per_class": per_class,
            "confusion": confusion, "labels": list(labels)}


def run(args: argparse.Namespace) -> int:
    r = evaluate(args.model, args.dataset, args.limit)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{r['model']} on {r['dataset']}: accuracy {100 * r['accuracy']:.2f} % over {r['n']} samples")
    labels = r["labels"]
    if r["confusion"] is None:
        print(f"({len(labels)} classes: the confusion matrix is shown for at most {MAX_CONFUSION_LABELS}; "
              "--json has the per-class accuracy)")
        return 0
    w = max(5, *(len(s) for s in labels))
    cw = min(12, max(5, len(str(max(max(row) for row in r["confusion"]))) + 1, *(len(s) + 1 for s in labels)))
    print(f"\n{'class':>{w}}  accuracy   confusion (rows: true class, columns: predicted)")
    print(f"{'':>{w}}  {'':>8}   " + "".join(f"{s[:cw - 1]:>{cw}}" for s in labels))
    for name, row in zip(labels, r["confusion"], strict=True):
        acc = r["per_class"][name]
        print(f"{name:>{w}}  {'-' if acc is None else f'{100 * acc:.1f} %':>8}   " + "".join(f"{v:>{cw}}" for v in row))
    return 0
