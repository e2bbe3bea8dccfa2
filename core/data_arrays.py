"""Datasets from Python objects, for the API: wherever a dataset spec is taken, a `Dataset`, arrays `(x, y)`, an
array `x` alone (an autoencoder's data), or any torch `Dataset` (items `(x, y)` or `x`) or `DataLoader` (batches
`(x, y)` or `x`) is accepted too. Duck-typed (anything with `.detach()` is a tensor): core never imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .dataset import Dataset, build
from .errors import DataError

__all__ = ["from_object"]

MAX_ITEMS = 10_000_000  # items read from a torch Dataset: a bound for one that claims an absurd length


def _array(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _pairs(items: list[Any], what: str) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    xs, ys = [], []
    for item in items:
        if isinstance(item, tuple | list):
            if len(item) < 1 or len(item) > 2:
                raise DataError(f"{what}: items must be (x, y) or x, got a {type(item).__name__} of {len(item)}")
            xs.append(_array(item[0]))
            if len(item) == 2:
                ys.append(_array(item[1]))
        else:
            xs.append(_array(item))
    if ys and len(ys) != len(xs):
        raise DataError(f"{what}: some items have labels and some do not")
    return xs, (ys or None)


def from_object(obj: Any, task: str | None = None) -> Dataset:
    """The Dataset an API caller passed instead of a spec string; DataError (one line) when it is none of the
    accepted kinds or its arrays do not fit."""
    if isinstance(obj, Dataset):
        if task is not None and task != obj.task:
            if task == "autoencode":
                labelled = obj.task == "classify"
                return build(obj.x, obj.y if labelled else None, obj.name, "autoencode",
                             obj.labels if labelled else None)
            raise DataError(f"{obj.name}: a {obj.task} dataset, not {task}")
        return obj
    if isinstance(obj, np.ndarray) or hasattr(obj, "detach"):
        return build(_array(obj), None, "array", task)
    if isinstance(obj, tuple) and len(obj) == 2:
        return build(_array(obj[0]), None if obj[1] is None else _array(obj[1]), "arrays", task)
    if hasattr(obj, "dataset") and hasattr(obj, "__iter__"):  # a torch DataLoader: batches
        xs, ys = _pairs(list(obj), "DataLoader")
        if not xs:
            raise DataError("DataLoader: yields no batches")
        try:
            x, y = np.concatenate(xs), None if ys is None else np.concatenate(ys)
        except ValueError as e:
            raise DataError(f"DataLoader: batches differ in shape ({str(e).splitlines()[0][:80]})") from None
        return build(x, y, "DataLoader", task)
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not isinstance(obj, str | bytes | dict):
        n = len(obj)
        if n > MAX_ITEMS:
            raise DataError(f"dataset of {n} items is more than {MAX_ITEMS}")
        xs, ys = _pairs([obj[i] for i in range(n)], type(obj).__name__)
        if not xs:
            raise DataError(f"{type(obj).__name__}: dataset is empty")
        try:
            x, y = np.stack(xs), None if ys is None else np.stack(ys)
        except ValueError as e:
            raise DataError(f"{type(obj).__name__}: items differ in shape ({str(e).splitlines()[0][:80]})") from None
        return build(x, y, type(obj).__name__, task)
    raise DataError(f"a dataset must be a spec string, a Dataset, arrays (x, y), an array x, or a torch "
                    f"Dataset/DataLoader; got {type(obj).__name__}")
