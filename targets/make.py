"""The report of a model as `ternkit report` makes it: which targets, which data to measure activation sparsity
on, the activity record and the measured figures of a build, then `build_report`.

Data choice: `dataset` when given, else the dataset the model was trained on if it is a bundled one (the
model's provenance is data, never a file to read); without either, an activity record must supply the counts.
Measured figures of a Cortex-M4 build arrive as data (targets never build or read a build directory:
`ternkit.export.c.sim.build_figures(DIR)` reads one), or from the `mcu` section of the activity record.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from ternkit.core import DataError, OptionError, TernaryModel, load_dataset, load_model
from ternkit.core.data import is_builtin
from ternkit.core.metrics import synaptic_nodes

from .activity import read_activity
from .measured import measured_from_record, parse_measured
from .report import build_report
from .spec import Target, load_target, shipped_targets

__all__ = ["report_model", "DEFAULT_LIMIT"]

DEFAULT_LIMIT = 1000  # samples the activation sparsity is measured on


def _samples(spec: Any, limit: int, shape: tuple[int, ...]) -> np.ndarray:
    data = load_dataset(spec)
    if data.shape != shape:
        name = spec if isinstance(spec, str) else "the given data"
        raise OptionError(f"{name} has samples of shape {data.shape}, the model expects {shape}")
    return data.spread(limit).x


def _dataset(model: TernaryModel, dataset: str | None = None) -> tuple[str | None, str | None]:
    """(the dataset spec to measure on or None, the dataset the model names as its training data or None)."""
    named = model.provenance.get("dataset") if isinstance(model.provenance.get("dataset"), str) else None
    return dataset or (named if named and is_builtin(named) else None), named


def report_model(model: TernaryModel | str | os.PathLike, targets: Iterable[str | Target] | None = None, *,
                 dataset: str | None = None, activity: str | os.PathLike | None = None,
                 limit: int = DEFAULT_LIMIT, build: dict[str, Any] | None = None, build_where: str = "the build",
                 model_path: str | None = None) -> dict[str, Any]:
    """The report (what report.json holds) of `model` (an artifact or a `.tern` path) on `targets` (names,
    TOML paths or `Target`s; default: every shipped target). `activity`: a record written by a simulation;
    `build`: the measured figures of a Cortex-M4 build (from `build_where`), checked to belong to the model."""
    if limit < 1:
        raise OptionError(f"--limit must be at least 1, got {limit}")
    if not isinstance(model, TernaryModel):
        model_path = str(model) if model_path is None else model_path
        model = load_model(model)
    where = model_path if model_path is not None else "the model"
    names = list(targets) if targets else shipped_targets()
    chosen = [t if isinstance(t, Target) else load_target(t)
              for t in dict.fromkeys(names)]  # a target named twice is reported once
    record = read_activity(activity, len(synaptic_nodes(model)), model.fingerprint(),
                           where) if activity else None
    data_given = dataset
    if dataset is not None and not isinstance(dataset, str):  # the API's arrays or torch dataset: measured, named
        dataset = None
    spec, named = _dataset(model, dataset)
    x = None
    if data_given is not None and dataset is None:
        x = _samples(data_given, limit, tuple(model.input.shape))
        spec = "the given data"
    elif spec:
        try:
            x = _samples(spec, limit, tuple(model.input.shape))
        except DataError:
            if dataset or record is None:
                raise
            spec = None  # the training data is not here; the activity record still gives measured counts
    elif record is None:
        hint = f" (the model was trained on {named[:200]!r})" if named else ""
        raise OptionError(f"give --dataset SPEC to measure activation sparsity{hint}, or --activity RUN.json")
    measured = None
    if build is not None:
        measured = parse_measured(build, build_where, model.fingerprint(), where)
    elif activity:
        measured = measured_from_record(activity, model.fingerprint(), where)
    return build_report(model, chosen, x=x, activity=record, model_path=model_path or "", dataset=spec,
                        measured=measured)
