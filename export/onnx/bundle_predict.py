#!/usr/bin/env python3
"""Predict with the exported model: needs only numpy and onnxruntime.

    python predict.py INPUTS.npy|INPUTS.csv [--model model.onnx] [--scores]

INPUTS holds raw samples (the model normalises them itself): an .npy array of shape (N, *input_shape)
or (N, prod(input_shape)), or a CSV with one sample per row (a header row of names is skipped).
Prints one line per sample: its index and predicted label (and the logits with --scores).
Written by `ternkit export onnx --bundle`. Needs onnxruntime >= NEEDS_ONNXRUNTIME below: the version that
checked this export against ternkit's reference (a `--nbits` model uses its contrib operator MatMulNBits
with 2-bit weights, which older versions lack or run on a slow path).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
NEEDS_ONNXRUNTIME = "1.0"  # replaced by ternkit when it writes the bundle


def _version(v):
    parts = []
    for p in v.split(".")[:3]:
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def fail(msg):
    print(f"predict.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def session(path):
    if _version(ort.__version__) < _version(NEEDS_ONNXRUNTIME):
        fail(f"this model needs onnxruntime >= {NEEDS_ONNXRUNTIME}, found {ort.__version__}")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    # all graph optimisations, but no QDQ fusion: the 2-bit weights are dequantised once at load,
    # which is both the fastest form and exact (see ternkit's docs/onnx.md)
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        fail(f"{path}: onnxruntime cannot load the model ({str(e).strip().splitlines()[0][:160]})")


def read_inputs(path):
    if not path.is_file():
        fail(f"{path}: no such file")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False).astype(np.float32)
        rows = []
        with open(path, newline="") as f:
            for i, line in enumerate(f):
                cells = [c.strip() for c in line.strip().split(",")]
                if not line.strip():
                    continue
                try:
                    rows.append([float(c) for c in cells])
                except ValueError:
                    if i == 0:
                        continue  # header
                    raise ValueError(f"line {i + 1} is not numeric") from None
        return np.asarray(rows, dtype=np.float32)
    except (ValueError, OSError) as e:
        fail(f"{path}: cannot read inputs ({e})")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Predict class labels with the exported ONNX model.")
    ap.add_argument("inputs", type=Path, help=".npy or .csv of raw samples")
    ap.add_argument("--model", type=Path, default=HERE / "model.onnx")
    ap.add_argument("--scores", action="store_true", help="also print the logits")
    args = ap.parse_args(argv)
    sess = session(args.model)
    meta = sess.get_modelmeta().custom_metadata_map
    shape = tuple(json.loads(meta["ternkit.input_shape"]))
    labels_file = args.model.parent / "labels.json"
    labels = json.loads(labels_file.read_text()) if labels_file.is_file() else json.loads(meta["ternkit.labels"])
    x = read_inputs(args.inputs)
    if x.ndim == 1 and x.size == int(np.prod(shape)):
        x = x.reshape(1, -1)
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != int(np.prod(shape)):
        fail(f"{args.inputs}: samples have {int(np.prod(x.shape[1:])) if x.ndim >= 2 else x.size} values, "
             f"the model expects {int(np.prod(shape))} (shape {shape})")
    if not np.all(np.isfinite(x)):
        fail(f"{args.inputs}: inputs hold NaN or inf")
    x = x.reshape(len(x), *shape)
    name_in, name_out = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    for start in range(0, len(x), 1024):
        logits = sess.run([name_out], {name_in: x[start:start + 1024]})[0]
        for i, row in enumerate(logits):
            line = f"{start + i},{labels[int(row.argmax())]}"
            if args.scores:
                line += "," + ",".join(f"{v:.6g}" for v in row)
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
