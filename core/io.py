"""Read and write `.tern` files: one safetensors file, packed integer weights, JSON metadata.

Why safetensors: loading never executes code (no pickle), the header is JSON, and the format is
validated by a small reader. Weights of a ternary model are packed 4 per byte as 2-bit two's complement,
first element in the lowest bits -- the same layout as ONNX INT2, so exporters can reuse the bytes.
Models with more levels use ceil(log2(2k+1)) bits, packed 8 // bits per byte.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import ArtifactError
from .model import Conv2d, Dense, Flatten, InputSpec, ReLU, TernaryModel

__all__ = ["save_model", "load_model", "pack_ints", "unpack_ints", "bits_for_levels", "FORMAT", "VERSION"]

FORMAT = "ternkit-model"
VERSION = 1
MAX_HEADER = 16 * 1024 * 1024


def bits_for_levels(levels: int) -> int:
    return max(2, math.ceil(math.log2(2 * levels + 1)))


def pack_ints(q: np.ndarray, bits: int) -> np.ndarray:
    """Pack signed integers as `bits`-bit two's complement, 8 // bits per byte, low bits first."""
    per = 8 // bits
    flat = (q.astype(np.int16).reshape(-1) & ((1 << bits) - 1)).astype(np.uint8)
    flat = np.concatenate([flat, np.zeros((-len(flat)) % per, np.uint8)]).reshape(-1, per)
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)
    return np.bitwise_or.reduce(flat << shifts, axis=1).astype(np.uint8)


def unpack_ints(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    per = 8 // bits
    if packed.size * per < count or packed.size > count // per + 1:
        raise ArtifactError(f"packed weights hold {packed.size} bytes, {count} values were declared")
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)
    vals = ((packed.reshape(-1, 1) >> shifts) & ((1 << bits) - 1)).reshape(-1)[:count].astype(np.int16)
    vals = np.where(vals >= (1 << (bits - 1)), vals - (1 << bits), vals)
    return vals.astype(np.int8)


def _layer_meta(layer: Any) -> dict[str, Any]:
    if isinstance(layer, Dense):
        return {"type": "dense", "shape": list(layer.weight.shape)}
    if isinstance(layer, Conv2d):
        return {"type": "conv2d", "shape": list(layer.weight.shape), "stride": list(layer.stride),
                "padding": list(layer.padding)}
    if isinstance(layer, Flatten | ReLU):
        return {"type": layer.kind}
    raise ArtifactError(f"cannot save layer of type {type(layer).__name__}")


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


def save_model(model: TernaryModel, path: str | os.PathLike) -> None:
    """Write atomically; the round trip through `load_model` is bit-exact."""
    from safetensors.numpy import save

    model.validate()
    bits = bits_for_levels(model.levels)
    tensors: dict[str, np.ndarray] = {
        "input.mean": np.ascontiguousarray(model.input.mean, dtype=np.float32),
        "input.std": np.ascontiguousarray(model.input.std, dtype=np.float32),
    }
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense | Conv2d):
            w = layer.weight
            tensors[f"layer{i}.weight"] = pack_ints(w, bits) if model.kind == "ternary" else np.ascontiguousarray(
                w, dtype=np.float32)
            tensors[f"layer{i}.scale"] = np.ascontiguousarray(layer.scale, dtype=np.float32)
            tensors[f"layer{i}.bias"] = np.ascontiguousarray(layer.bias, dtype=np.float32)
    meta = {
        "format": FORMAT, "version": VERSION, "kind": model.kind, "levels": model.levels, "bits": bits,
        "input": {"shape": list(model.input.shape)}, "labels": [str(x) for x in model.labels],
        "layers": [_layer_meta(layer) for layer in model.layers],
        "provenance": _jsonable(model.provenance), "metrics": _jsonable(model.metrics),
    }
    data = save(tensors, metadata={"ternkit": json.dumps(meta)})
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _read_header(raw: bytes, path: Path) -> dict[str, Any]:
    if len(raw) < 8:
        raise ArtifactError(f"{path}: not a ternkit model (file too short)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER or 8 + n > len(raw):
        raise ArtifactError(f"{path}: not a ternkit model (not a safetensors file, or truncated)")
    try:
        header = json.loads(raw[8 : 8 + n])
        meta = json.loads(header["__metadata__"]["ternkit"])
    except (ValueError, KeyError, TypeError) as e:
        raise ArtifactError(f"{path}: not a ternkit model (no ternkit metadata: {type(e).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a ternkit model (format tag missing)")
    if meta.get("version") != VERSION:
        raise ArtifactError(f"{path}: model format version {meta.get('version')!r} is not supported "
                            f"(this ternkit reads version {VERSION})")
    return meta


def _ints(value: Any, n: int | None, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or (n is not None and len(value) != n) or not all(
            isinstance(v, int) and 0 <= v < 1 << 31 for v in value):
        raise ArtifactError(f"bad {what} in model metadata: {value!r}")
    return tuple(value)


def load_model(path: str | os.PathLike) -> TernaryModel:
    """Read and validate a `.tern` file; any defect raises ArtifactError with one clear line."""
    from safetensors.numpy import load

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such file") from None
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read ({e.strerror})") from None
    meta = _read_header(raw, path)
    try:
        tensors = load(raw)
    except Exception as e:  # safetensors raises its own error types for every malformation
        raise ArtifactError(f"{path}: corrupt safetensors data ({str(e).splitlines()[0][:120]})") from None

    def get(name: str, dtype: Any) -> np.ndarray:
        if name not in tensors:
            raise ArtifactError(f"{path}: tensor {name!r} is missing")
        t = tensors[name]
        if t.dtype != dtype:
            raise ArtifactError(f"{path}: tensor {name!r} has dtype {t.dtype}, expected {np.dtype(dtype)}")
        return t

    try:
        kind, levels, bits = meta["kind"], int(meta["levels"]), int(meta["bits"])
        if kind not in ("ternary", "float") or not 1 <= levels <= 7 or bits != bits_for_levels(levels):
            raise ArtifactError(f"{path}: inconsistent model kind/levels/bits in metadata")
        layers: list[Any] = []
        for i, lm in enumerate(meta["layers"]):
            t = lm["type"]
            if t in ("dense", "conv2d"):
                shape = _ints(lm["shape"], 2 if t == "dense" else 4, "weight shape")
                count = int(np.prod(shape))
                if kind == "ternary":
                    w = unpack_ints(get(f"layer{i}.weight", np.uint8), bits, count).reshape(shape)
                else:
                    w = get(f"layer{i}.weight", np.float32)
                    if w.shape != shape:
                        raise ArtifactError(f"{path}: layer {i} weight shape {w.shape} != declared {shape}")
                scale, bias = get(f"layer{i}.scale", np.float32), get(f"layer{i}.bias", np.float32)
                if t == "dense":
                    layers.append(Dense(w, scale, bias))
                else:
                    layers.append(Conv2d(w, scale, bias, _ints(lm["stride"], 2, "stride"),
                                         _ints(lm["padding"], 2, "padding")))
            elif t == "flatten":
                layers.append(Flatten())
            elif t == "relu":
                layers.append(ReLU())
            else:
                raise ArtifactError(f"{path}: unsupported layer type {t!r}")
        shape = _ints(meta["input"]["shape"], None, "input shape")
        mean, std = get("input.mean", np.float32), get("input.std", np.float32)
        try:
            np.broadcast_shapes(mean.shape, std.shape, shape)
        except ValueError:
            raise ArtifactError(f"{path}: normalisation statistics do not fit input shape {shape}") from None
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ArtifactError(f"{path}: normalisation statistics hold NaN, inf or non-positive std")
        labels = meta["labels"]
        if not isinstance(labels, list):
            raise ArtifactError(f"{path}: labels must be a list")
        model = TernaryModel(layers, InputSpec(shape, mean, std), [str(x) for x in labels], kind=kind,
                             levels=levels, provenance=dict(meta.get("provenance") or {}),
                             metrics=dict(meta.get("metrics") or {}))
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ArtifactError(f"{path}: malformed model metadata ({type(e).__name__}: {e})") from None
    try:
        model.validate()
    except ArtifactError as e:
        raise ArtifactError(f"{path}: {e}") from None
    return model
