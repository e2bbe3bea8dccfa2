"""The dataset container and its task: what every reader returns.

A task is what the labels mean. `classify`: `y` holds class indices into `labels`. `regress`: `y` holds float
targets (N, K) and `labels` names the K outputs. `autoencode`: regression whose target is the input itself
(`y` = x flattened). Readers hand over raw arrays; `build` checks them once (lengths, NaN/inf, one class) and
infers the task where the data makes it plain, keeping the reason in `note` so a command can say it in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError

__all__ = ["Dataset", "TASKS", "build", "MAX_OUTPUTS"]

TASKS = ("classify", "regress", "autoencode")
MAX_OUTPUTS = 65536  # regression outputs (an autoencoder reproduces its input): bounds the names stored
# a numeric label column is read as regression targets when it is not integer-valued, or holds many distinct
# values that are also many per sample (diabetes: 214 over 442); 10 digits over 5,000 samples stay classes
_MANY_VALUES = 64


@dataclass
class Dataset:
    x: np.ndarray  # float32 (N, *shape), raw (not normalised); images (N, C, H, W)
    y: np.ndarray  # classify: int64 class indices into `labels`; regress/autoencode: float32 (N, K)
    labels: list[str]  # class names, or the names of the K regression outputs
    name: str
    task: str = "classify"
    note: str = ""  # why the task was inferred ("" when it was given or is the reader's only one)
    # an autoencoder's data read from a labelled set keeps the class indices: they stratify its split (the same
    # split as the set read for classification) and mark anomalies in evaluation (class "0" normal)
    classes: np.ndarray | None = None
    class_names: list[str] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> Dataset:
        return Dataset(self.x[idx], self.y[idx], self.labels, self.name, self.task, self.note,
                       None if self.classes is None else self.classes[idx], self.class_names)

    def spread(self, n: int) -> Dataset:
        """n samples evenly spaced over the set, in order: the first n of a file sorted by label (as the MNIST
        sample is) would all be one class."""
        if n >= len(self):
            return self
        return self.subset(np.arange(n) * len(self) // n)


def _numeric(y: np.ndarray) -> np.ndarray | None:
    """y as float64 when every value is a number (strings from a CSV included), else None."""
    if y.dtype.kind in "biuf":
        return y.astype(np.float64)
    try:
        return np.array([float(v) for v in y.reshape(-1)], dtype=np.float64).reshape(y.shape)
    except (TypeError, ValueError):
        return None


def _infer(y: np.ndarray, values: np.ndarray | None) -> tuple[str, str]:
    if values is None:
        return "classify", ""
    if values.ndim > 1 and values.reshape(len(values), -1).shape[1] > 1:
        return "regress", f"the targets hold {values.reshape(len(values), -1).shape[1]} values per sample"
    flat = values.reshape(-1)
    if not np.all(np.isfinite(flat)):
        return "regress", "the targets hold non-integer values"
    if np.any(flat != np.round(flat)):
        return "regress", "the targets hold non-integer values"
    distinct = len(np.unique(flat))
    if distinct > _MANY_VALUES and distinct > len(flat) / 4:
        return "regress", f"the targets hold {distinct} distinct values over {len(flat)} samples"
    return "classify", ""


def _class_names(y: np.ndarray, values: np.ndarray | None) -> tuple[np.ndarray, list[str]]:
    if values is not None and y.dtype.kind in "biuf":
        uniq = np.unique(values)
        names = [str(int(v)) if v == round(v) else repr(float(v)) for v in uniq]
        return np.searchsorted(uniq, values), names
    raw = [str(v).strip() for v in y.reshape(-1)]

    def key(s: str) -> tuple[float, str]:
        try:
            return float(s), s
        except ValueError:
            return float("inf"), s
    names = sorted(set(raw), key=key)
    index = {s: i for i, s in enumerate(names)}
    return np.array([index[s] for s in raw], dtype=np.int64), names


def _indices(y: np.ndarray, values: np.ndarray | None, labels: list[str] | None,
             name: str) -> tuple[np.ndarray, list[str]]:
    """Class indices and names of labels `y` (numbers or strings); `labels` names integer classes."""
    if labels is not None and values is not None:
        if np.any(values != np.round(values)) or values.min() < 0 or values.max() >= len(labels):
            raise DataError(f"{name}: labels must be class indices in 0..{len(labels) - 1}")
        return values.astype(np.int64), list(labels)
    if values is not None and np.any(values != np.round(values)):
        raise DataError(f"{name}: class labels hold non-integer values (use --task regress for targets)")
    idx, names = _class_names(y, values)
    return np.asarray(idx, np.int64), names


def _finite(a: np.ndarray, name: str, what: str) -> None:
    if not np.all(np.isfinite(a)):
        bad = int(np.argwhere(~np.isfinite(a.reshape(len(a), -1)))[0, 0])
        raise DataError(f"{name}: {what} hold NaN or inf (first at sample {bad})")


def build(x: np.ndarray, y: np.ndarray | None, name: str, task: str | None = None,
          labels: list[str] | None = None, outputs: list[str] | None = None) -> Dataset:
    """A checked Dataset. `y` None: an autoencoder's data (targets = inputs). `labels`: the class names that
    integer `y` indexes (else they come from the values); `outputs`: the regression outputs' names. DataError (one
    line) for an empty set, NaN/inf, lengths that differ, one class, or a task the data cannot serve."""
    if task is not None and task not in TASKS:
        raise DataError(f"unknown task {task!r}; use one of: {', '.join(TASKS)}")
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{name}: features must be numbers, got dtype {x.dtype}")
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{name}: dataset is empty" if len(x) == 0 or x.ndim == 0 else
                        f"{name}: features must be a batch (N, ...), got shape {x.shape}")
    if x.ndim > 4:  # the artifact's input is (features), (H, W) or (C, H, W)
        raise DataError(f"{name}: samples of shape {tuple(x.shape[1:])} have more than 3 dimensions (at most "
                        "(C, H, W))")
    x = x.astype(np.float32)
    _finite(x, name, "features")
    note = ""
    if y is None:
        if task not in (None, "autoencode"):
            raise DataError(f"{name}: holds no labels or targets, so it can only be used with --task autoencode")
        task = "autoencode"
    else:
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != len(x):
            raise DataError(f"{name}: {len(x)} samples but {y.shape[0] if y.ndim else 0} labels/targets")
        if y.dtype.kind not in "biufUS":
            raise DataError(f"{name}: labels/targets must be numbers or strings, got dtype {y.dtype}")
    values = None if y is None else _numeric(y)
    if task == "autoencode":
        k = int(np.prod(x.shape[1:]))
        if k > MAX_OUTPUTS:
            raise DataError(f"{name}: an autoencoder of {k} values per sample has more than {MAX_OUTPUTS} outputs")
        classes, class_names = None, None
        if y is not None and y.ndim == 1 and (values is None or np.all(values == np.round(values))):
            classes, class_names = _indices(y, values, labels, name)
        return Dataset(x, x.reshape(len(x), -1).copy(), [str(i) for i in range(k)], name, "autoencode", "",
                       classes, class_names)
    if task is None:
        task, note = _infer(y, values)
    if task == "regress":
        if values is None:
            raise DataError(f"{name}: regression needs numeric targets (these are not all numbers)")
        t = values.reshape(len(values), -1)
        _finite(t, name, "targets")
        if np.any(np.abs(t) > np.finfo(np.float32).max):
            raise DataError(f"{name}: targets overflow float32")
        k = t.shape[1]
        if k > MAX_OUTPUTS:
            raise DataError(f"{name}: {k} targets per sample are more than {MAX_OUTPUTS}")
        names = list(outputs) if outputs is not None and len(outputs) == k else (
            ["y"] if k == 1 else [f"y{i}" for i in range(k)])
        return Dataset(x, t.astype(np.float32), names, name, "regress", note)
    if y.ndim != 1:
        raise DataError(f"{name}: class labels must be one per sample, got shape {y.shape} (use --task regress "
                        "for several targets per sample)")
    idx, names = _indices(y, values, labels, name)
    if len(np.unique(idx)) < 2:
        raise DataError(f"{name}: labels hold a single class; at least two are needed")
    return Dataset(x, np.asarray(idx, dtype=np.int64), names, name, "classify", note)
