"""`ternkit eval MODEL --dataset SPEC`: accuracy, per-class accuracy and confusion matrix.

A `.tern` file runs through the numpy reference; a `.onnx` file runs through onnxruntime
(`ternkit.export.evaluate`); this module parses and prints.
"""

from __future__ import annotations

import argparse
import json

from ternkit.commands import SUMMARIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help=SUMMARIES["eval"],
                       description="Evaluate a model: accuracy, per-class accuracy and the confusion matrix of a "
                       "classifier; MSE, MAE and R2 of a regression; and for an autoencoder on labelled data "
                       "(0 = normal, others anomalies) the ROC AUC of the reconstruction error.")
    p.add_argument("model", help="a .tern artifact or an .onnx export")
    p.add_argument("--dataset", default="mnist-sample", help="dataset spec (default: mnist-sample)")
    p.add_argument("--limit", type=int, default=None, help="evaluate N samples spread evenly over the dataset")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ternkit.core.text import plain
    from ternkit.export.evaluate import MAX_CONFUSION_LABELS, evaluate

    r = evaluate(args.model, args.dataset, args.limit)
    if args.json:
        print(json.dumps(r))
        return 0
    if r["task"] != "classify":
        auc = f", ROC AUC of the reconstruction error {r['auc']:.4f} ({r['anomalies']} anomalies)" \
            if r.get("auc") is not None else ""
        r2 = "-" if r["r2"] is None else f"{r['r2']:.4f}"
        print(f"{r['model']} ({r['task']}) on {r['dataset']}: MSE {r['mse']:.6g}, MAE {r['mae']:.6g}, R2 {r2}{auc} "
              f"over {r['n']} samples")
        return 0
    print(f"{r['model']} on {r['dataset']}: accuracy {100 * r['accuracy']:.2f} % over {r['n']} samples")
    labels = r["labels"]
    if r["confusion"] is None:
        print(f"({len(labels)} classes: the confusion matrix is shown for at most {MAX_CONFUSION_LABELS}; "
              "--json has the per-class accuracy)")
        return 0
    shown = [plain(s, 40) for s in labels]  # a model's labels are its author's text: no control characters
    w = max(5, *(len(s) for s in shown))
    cw = min(12, max(5, len(str(max(max(row) for row in r["confusion"]))) + 1, *(len(s) + 1 for s in shown)))
    print(f"\n{'class':>{w}}  accuracy   confusion (rows: true class, columns: predicted)")
    print(f"{'':>{w}}  {'':>8}   " + "".join(f"{s[:cw - 1]:>{cw}}" for s in shown))
    for name, text, row in zip(labels, shown, r["confusion"], strict=True):
        acc = r["per_class"][name]
        print(f"{text:>{w}}  {'-' if acc is None else f'{100 * acc:.1f} %':>8}   " + "".join(f"{v:>{cw}}" for v in row))
    return 0
