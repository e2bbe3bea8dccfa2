"""Weight storage of the C export: 2-bit trits (four per byte, the artifact's packing) or base-3 (five trits
per byte, 3^5 = 243 <= 256: 1.6 bits per weight). Every output row (dense) or output channel's kernel (conv)
starts on a byte, so a kernel can walk rows independently.

Base-3 byte = sum_i (t_i + 1) * 3^i, first trit in the lowest digit; padding trits are zeros (digit 1).
"""

from __future__ import annotations

import numpy as np

from ternkit.core.errors import OptionError
from ternkit.core.packing import pack_ints

__all__ = ["PACKINGS", "TRITS_PER_BYTE", "pack_rows", "interleave", "unpack_rows", "byte_trits", "check_packing"]

PACKINGS = ("2bit", "base3")
TRITS_PER_BYTE = {"2bit": 4, "base3": 5}


def check_packing(packing: str) -> str:
    if packing not in PACKINGS:
        raise OptionError(f"unknown weight packing {packing!r}: choose one of {', '.join(PACKINGS)}")
    return packing


def byte_trits(packing: str) -> np.ndarray:
    """(entries, trits per byte) int8: the trits each byte value stands for (2-bit: all 256 bytes; code 2
    (binary 10) is never written and reads as -2's low bits, here 0; base-3: the 243 valid bytes)."""
    if packing == "2bit":
        b = np.arange(256)
        codes = np.stack([(b >> (2 * i)) & 3 for i in range(4)], 1)
        return np.select([codes == 1, codes == 3], [1, -1], 0).astype(np.int8)
    b = np.arange(243)
    return np.stack([(b // 3 ** i) % 3 - 1 for i in range(5)], 1).astype(np.int8)


def pack_rows(q: np.ndarray, packing: str = "2bit") -> tuple[np.ndarray, int]:
    """Trits (rows, n) packed per row, each row padded to whole bytes: (bytes (rows, row_bytes), row_bytes)."""
    check_packing(packing)
    rows, n = q.shape
    per = TRITS_PER_BYTE[packing]
    pad = (-n) % per
    qp = np.concatenate([q.astype(np.int8), np.zeros((rows, pad), np.int8)], axis=1)
    if packing == "2bit":
        packed = pack_ints(qp, 2).reshape(rows, -1)
    else:
        digits = (qp.astype(np.int64) + 1).reshape(rows, -1, 5)
        packed = (digits * (3 ** np.arange(5))).sum(-1).astype(np.uint8)
    return packed, packed.shape[1]


def interleave(packed: np.ndarray, groups: int = 1, block: int = 4) -> np.ndarray:
    """Within each of `groups` equal runs of rows, every whole block of `block` rows stored byte by byte
    interleaved (byte j of rows r..r+3 side by side), the remaining rows as they are: a kernel reading four
    rows at once walks one pointer. Each block keeps the bytes (and the offset) of its rows."""
    out = np.array(packed, np.uint8, copy=True)
    rows, rb = packed.shape
    per = rows // groups
    flat = out.reshape(-1)
    for g in range(groups):
        for r in range(g * per, g * per + (per // block) * block, block):
            flat[r * rb:(r + block) * rb] = packed[r:r + block].T.reshape(-1)
    return out


def unpack_rows(packed: np.ndarray, n: int, packing: str = "2bit") -> np.ndarray:
    """The inverse of `pack_rows`: (rows, n) int8 trits."""
    table = byte_trits(packing)
    return table[np.asarray(packed, np.int64)].reshape(len(packed), -1)[:, :n]
