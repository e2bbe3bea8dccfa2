"""Integer weights packed as `bits`-bit two's complement, 8 // bits per byte, first element in the lowest
bits: for ternary weights (2 bits) this is the ONNX INT2 layout, so exporters reuse the bytes."""

from __future__ import annotations

import math

import numpy as np

from .errors import ArtifactError

__all__ = ["pack_ints", "unpack_ints", "bits_for_levels"]


def bits_for_levels(levels: int) -> int:
    return max(2, math.ceil(math.log2(2 * levels + 1)))


def pack_ints(q: np.ndarray, bits: int) -> np.ndarray:
    per = 8 // bits
    flat = (q.astype(np.int16).reshape(-1) & ((1 << bits) - 1)).astype(np.uint8)
    flat = np.concatenate([flat, np.zeros((-len(flat)) % per, np.uint8)]).reshape(-1, per)
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)
    return np.bitwise_or.reduce(flat << shifts, axis=1).astype(np.uint8)


def unpack_ints(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    per = 8 // bits
    if packed.ndim != 1 or packed.size != -(-count // per):
        raise ArtifactError(f"packed weights hold {packed.size} bytes, {count} values declared")
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)
    vals = ((packed.reshape(-1, 1) >> shifts) & ((1 << bits) - 1)).reshape(-1)[:count].astype(np.int16)
    vals = np.where(vals >= (1 << (bits - 1)), vals - (1 << bits), vals)
    return vals.astype(np.int8)
