"""Read and write `.tern` files: one safetensors file, packed integer weights, JSON metadata.

Why safetensors: loading never executes code (no pickle), the header is JSON, and the format is validated
by a small reader. Format version 2 stores a graph: `nodes` in topological order, each with its operation
type, inputs and attributes; a node's arrays are the tensors `<node>.<name>`. Version 1 (a chain of dense,
conv2d, flatten and relu layers) still loads: it is the chain `layer0, layer1, ...` with the same tensors.
Every size in the header is checked before anything is allocated for it.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import ArtifactError
from .model import INPUT, TASKS, InputSpec, Node, TernaryModel
from .ops import op_class
from .ops.base import read_ints
from .packing import bits_for_levels, pack_ints, unpack_ints
from .readers import MIB, read_bytes
from .text import NAME_RULE, cut, is_name

__all__ = ["save_model", "load_model", "pack_ints", "unpack_ints", "bits_for_levels", "FORMAT", "VERSION",
           "MAX_FILE"]

FORMAT = "ternkit-model"
VERSION = 2
READS = (1, 2)
MAX_FILE = 1024 * MIB
MAX_HEADER = 16 * MIB
MAX_DEPTH = 32


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def model_bytes(model: TernaryModel) -> bytes:
    """The `.tern` file's content for `model`."""
    from safetensors.numpy import save

    model.validate()
    bits = bits_for_levels(model.levels)
    tensors: dict[str, np.ndarray] = {
        "input.mean": np.ascontiguousarray(model.input.mean, dtype=np.float32),
        "input.std": np.ascontiguousarray(model.input.std, dtype=np.float32),
    }
    nodes = []
    for n in model.nodes:
        for key, arr in n.op.arrays(model.kind, bits).items():
            tensors[f"{n.name}.{key}"] = arr
        nodes.append({"name": n.name, "op": n.op.kind, "inputs": list(n.inputs), "attrs": n.op.attrs()})
    meta = {
        "format": FORMAT, "version": VERSION, "kind": model.kind, "levels": model.levels, "bits": bits,
        "input": {"shape": list(model.input.shape)}, "labels": [str(x) for x in model.labels], "nodes": nodes,
        "provenance": _jsonable(model.provenance), "metrics": _jsonable(model.metrics),
    }
    if model.task != "classify":  # absent = classify, as every file written before tasks were recorded
        meta["task"] = model.task
    return save(tensors, metadata={"ternkit": json.dumps(meta)})


def save_model(model: TernaryModel, path: str | os.PathLike) -> None:
    """Write atomically; the round trip through `load_model` is bit-exact."""
    data = model_bytes(model)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _depth(obj: Any, limit: int) -> int:
    stack, deepest = [(obj, 1)], 0
    while stack:
        o, d = stack.pop()
        deepest = max(deepest, d)
        if d > limit:
            return d
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return deepest


def _loads(raw: bytes | str, what: str) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise ArtifactError(f"{what} is nested too deeply") from None
    except (ValueError, TypeError) as e:  # includes ints with more digits than Python converts
        raise ArtifactError(f"{what} is not valid JSON ({str(e).splitlines()[0][:100]})") from None


def _read_header(raw: bytes) -> dict[str, Any]:
    if len(raw) < 8:
        raise ArtifactError("not a ternkit model (file too short)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER or 8 + n > len(raw):
        raise ArtifactError("not a ternkit model (not a safetensors file, or truncated)")
    header = _loads(raw[8: 8 + n], "safetensors header")
    text = header.get("__metadata__", {}).get("ternkit") if isinstance(header, dict) else None
    if not isinstance(text, str):
        raise ArtifactError("not a ternkit model (no ternkit metadata)")
    meta = _loads(text, "model metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError("not a ternkit model (format tag missing)")
    if _depth(meta, MAX_DEPTH) > MAX_DEPTH:
        raise ArtifactError(f"model metadata is nested deeper than {MAX_DEPTH} levels")
    if meta.get("version") not in READS:
        raise ArtifactError(f"model format version {meta.get('version')!r} is not supported "
                            f"(this ternkit reads versions {', '.join(map(str, READS))})")
    return meta


def _v1_nodes(layers: Any) -> list[dict[str, Any]]:
    """Version 1 metadata (a list of layers) as version 2 nodes."""
    if not isinstance(layers, list):
        raise ArtifactError("'layers' must be a list")
    out, prev = [], INPUT
    for i, lm in enumerate(layers):
        if not isinstance(lm, dict):
            raise ArtifactError(f"layer {i} is not an object")
        attrs = {k: v for k, v in lm.items() if k != "type"}
        out.append({"name": f"layer{i}", "op": lm.get("type"), "inputs": [prev], "attrs": attrs})
        prev = f"layer{i}"
    return out


def parse_model(raw: bytes) -> TernaryModel:
    """A validated model from the bytes of a `.tern` file; any defect raises ArtifactError."""
    from safetensors.numpy import load

    meta = _read_header(raw)
    try:
        tensors = load(raw)
    except Exception as e:  # safetensors raises its own error types for every malformation
        raise ArtifactError(f"corrupt safetensors data ({str(e).splitlines()[0][:120]})") from None

    def getter(prefix: str):
        def get(name: str, dtype: Any) -> np.ndarray:
            full = f"{prefix}{name}"
            if full not in tensors:
                raise ArtifactError(f"tensor {full!r} is missing")
            t = tensors[full]
            if t.dtype != dtype:
                raise ArtifactError(f"tensor {full!r} has dtype {t.dtype}, expected {np.dtype(dtype)}")
            return t
        return get

    try:
        kind, levels, bits = meta["kind"], meta["levels"], meta["bits"]
        if kind not in ("ternary", "float") or not isinstance(levels, int) or not 1 <= levels <= 7 \
                or bits != bits_for_levels(levels):
            raise ArtifactError("inconsistent model kind/levels/bits in metadata")
        raw_nodes = _v1_nodes(meta["layers"]) if meta["version"] == 1 else meta["nodes"]
        if not isinstance(raw_nodes, list) or not raw_nodes:
            raise ArtifactError("model metadata holds no nodes")
        nodes = []
        for i, nm in enumerate(raw_nodes):
            if not isinstance(nm, dict) or not isinstance(nm.get("name"), str):
                raise ArtifactError(f"node {i} has no name")
            name = nm["name"]
            if not is_name(name) or name == INPUT:
                raise ArtifactError(f"node {i}: name {cut(name)} is not a valid node name ({NAME_RULE})")
            inputs = nm.get("inputs")
            if not isinstance(inputs, list) or not all(is_name(s) for s in inputs):
                raise ArtifactError(f"node {name}: inputs must be a list of node names")
            attrs = nm.get("attrs", {})
            if not isinstance(attrs, dict):
                raise ArtifactError(f"node {name}: attrs must be an object")
            if not is_name(nm.get("op")):
                raise ArtifactError(f"node {name}: operation {cut(nm.get('op'))} is not an operation name")
            cls = op_class(nm.get("op"))
            try:
                op = cls.load(attrs, getter(f"{name}."), kind, bits)
            except ArtifactError as e:
                raise ArtifactError(f"node {name} ({cls.kind}): {e}") from None
            nodes.append(Node(name, op, tuple(inputs)))
        shape = read_ints(meta["input"]["shape"], None, "input shape", low=1)
        if not 1 <= len(shape) <= 3:
            raise ArtifactError(f"input shape {list(shape)} must have 1 to 3 dimensions")
        get = getter("")
        mean, std = get("input.mean", np.float32), get("input.std", np.float32)
        try:
            np.broadcast_shapes(mean.shape, std.shape, shape)
        except ValueError:
            raise ArtifactError(f"normalisation statistics do not fit input shape {shape}") from None
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ArtifactError("normalisation statistics hold NaN, inf or non-positive std")
        labels = meta["labels"]
        if not isinstance(labels, list):
            raise ArtifactError("labels must be a list")
        prov, metrics = meta.get("provenance") or {}, meta.get("metrics") or {}
        if not isinstance(prov, dict) or not isinstance(metrics, dict):
            raise ArtifactError("provenance and metrics must be objects")
        task = meta.get("task", "classify")
        if task not in TASKS:
            raise ArtifactError(f"unknown task {str(task)[:40]!r} (expected one of {', '.join(TASKS)})")
        model = TernaryModel(nodes, InputSpec(shape, mean, std), [str(x) for x in labels], kind=kind,
                             levels=levels, provenance=prov, metrics=metrics, task=task)
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ArtifactError(f"malformed model metadata ({type(e).__name__}: {str(e)[:100]})") from None
    model.validate()
    return model


def load_model(path: str | os.PathLike) -> TernaryModel:
    """Read and validate a `.tern` file; any defect raises ArtifactError with one line naming the file."""
    path = Path(path)
    raw = read_bytes(path, MAX_FILE, "ternkit model", ArtifactError)
    try:
        return parse_model(raw)
    except ArtifactError as e:
        raise ArtifactError(f"{path}: {e}") from None
