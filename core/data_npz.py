"""`npz:FILE[:test]`: numpy arrays `x` (N, ...) and `y` (optional `x_test`/`y_test`, read with `:test`).

Why checked by hand first: an .npz is a zip of .npy files, and each .npy declares its dtype and shape in a
header. A zip bomb (a tiny member that inflates to GBs) or a header declaring a huge shape would cost memory
before numpy noticed, and an object array is a pickle. So the archive's member sizes are summed against
LIMITS["npz"], every header is read and checked (no object dtype, shape x itemsize within the member's size),
and only then does numpy read the arrays -- with `allow_pickle=False` all the same.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from .dataset import Dataset, build
from .errors import DataError
from .readers import LIMITS, check_regular

__all__ = ["load_npz"]

_MAX_MEMBERS = 64


def _headers(path: Path, zf: zipfile.ZipFile) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    infos = zf.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise DataError(f"{path}: the archive holds {len(infos)} members (at most {_MAX_MEMBERS})")
    total = sum(i.file_size for i in infos)
    if total > LIMITS["npz"]:
        raise DataError(f"{path}: its arrays unpack to {total} bytes, more than the {LIMITS['npz'] >> 20} MiB limit "
                        "for npz files (a zip bomb, or data too large)")
    out = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            continue
        name = info.filename[:-4]
        with zf.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f, max_header_size=10000)
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
                raise DataError(f"{path}: member {name!r} is not a readable .npy array "
                                f"({str(e).splitlines()[0][:80]})") from None
        if dtype.hasobject:
            raise DataError(f"{path}: array {name!r} holds Python objects (a pickle); only numeric or string "
                            "arrays are read")
        if math.prod(shape) * dtype.itemsize > info.file_size:
            raise DataError(f"{path}: array {name!r} declares shape {shape}, more than its member holds")
        out[name] = (dtype, tuple(shape))
    return out


def load_npz(arg: str, task: str | None = None) -> Dataset:
    """The dataset of `npz:ARG`; DataError with one line for anything unreadable, hostile or inconsistent."""
    path, part = Path(arg), ""
    if not path.exists() and arg.endswith(":test"):
        path, part = Path(arg[:-5]), "_test"
    path = check_regular(path, LIMITS["npz"], "npz", DataError)
    name = f"npz:{arg}"
    try:
        with zipfile.ZipFile(path) as zf:
            heads = _headers(path, zf)
    except zipfile.BadZipFile:
        raise DataError(f"{path}: not an .npz file (not a zip archive)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    xk, yk = f"x{part}", f"y{part}"
    if xk not in heads:
        raise DataError(f"{path}: holds no array {xk!r} (it has: {', '.join(sorted(heads)) or 'none'})")
    try:
        with np.load(path, allow_pickle=False) as z:
            x = z[xk]
            y = z[yk] if yk in heads else None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: cannot read its arrays ({str(e).splitlines()[0][:80]})") from None
    labels = None
    if "labels" in heads and y is not None:  # optional class names (a string array)
        with np.load(path, allow_pickle=False) as z:
            names = z["labels"]
        if names.ndim == 1 and names.dtype.kind in "US" and 2 <= len(names) <= 4096:
            labels = [str(s) for s in names]
    return build(x, y, name, task, labels)
