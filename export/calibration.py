"""Calibration data for exports that set units from data (Lava graphs; fixed-point C): which samples, and
where they come from. Never the test set: by default the training part of the model's own (bundled) dataset,
as its provenance records it -- provenance is data from the model's author, checked, never a file to follow.
"""

from __future__ import annotations

import math

import numpy as np

from ternkit.core import ArtifactError, OptionError, TernaryModel, load_dataset
from ternkit.core.data import DatasetLike, is_builtin

__all__ = ["calibration_data", "CALIBRATION_SAMPLES"]

CALIBRATION_SAMPLES = 2000


def _provenance_number(value, field: str, where: str, integer: bool) -> float:
    """A training setting from a model's provenance, which is data from the model's author: checked."""
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    # ints beyond float64 (JSON allows them) are refused as out of range, not by an overflow deep in numpy
    if isinstance(value, bool) or not ok or abs(value) > 2**53 or not math.isfinite(value):
        raise ArtifactError(f"{where}: provenance field {field} must be {'an integer' if integer else 'a number'}, "
                            f"got {str(value)[:40]!r}")
    return value


def calibration_data(model: TernaryModel, spec: DatasetLike | None, n: int = CALIBRATION_SAMPLES,
                     held_out: int = 0, where: str = "the model") -> tuple[np.ndarray, np.ndarray, str]:
    """(n calibration samples, `held_out` further samples for choosing settings, the dataset spec used).
    `spec`: a dataset spec, data (an array of raw samples, a Dataset, a torch dataset: see `load_dataset`) or None: the
    training split the model's provenance names (bundled datasets only)."""
    if spec is not None and not isinstance(spec, str):  # arrays, Datasets, torch datasets: the API's callers
        data = load_dataset(spec)
        return _split(model, data.x, n, held_out, f"the given data ({len(data)} samples)")
    if spec is None:
        # provenance is data, never a file to follow: only a bundled training set is used without --calibrate
        prov = model.provenance if isinstance(model.provenance, dict) else {}
        cfg = prov.get("config")
        if cfg is not None and not isinstance(cfg, dict):  # refused, as a string val_fraction is: never a guess
            raise ArtifactError(f"{where}: provenance field config must be an object of training settings, got "
                                f"{type(cfg).__name__}; give --calibrate DATASET or fix the file")
        cfg = cfg or {}
        named = prov.get("dataset")
        if not isinstance(named, str):
            raise OptionError(f"{where} does not name its training dataset; give --calibrate DATASET")
        if not is_builtin(named):
            raise OptionError(f"give --calibrate DATASET: {where} was trained on {named[:200]!r}, which is not a "
                              "bundled dataset, and a model never makes ternkit read a file")
        fraction = float(_provenance_number(cfg.get("val_fraction", 0.2), "config.val_fraction", where, False))
        seed = int(_provenance_number(cfg.get("seed", prov.get("seed", 0)) or 0, "config.seed", where, True))
        if not 0 <= fraction < 1 or not 0 <= seed < 2**32:
            raise ArtifactError(f"{where}: provenance seed {seed} / val_fraction {fraction} out of range")
        spec = f"{named}@train:{seed}:{fraction}" if fraction > 0 else named  # 0: all trained on
    # read for the model's task: a regression's split is a plain shuffle, a classifier's stratified
    return _split(model, load_dataset(spec, None if model.task == "classify" else model.task).x, n, held_out, spec)


def _split(model: TernaryModel, x: np.ndarray, n: int, held_out: int, spec: str) -> tuple[np.ndarray, np.ndarray, str]:
    if tuple(x.shape[1:]) != tuple(model.input.shape):
        raise OptionError(f"calibration data {spec} has samples of shape {tuple(x.shape[1:])}, the model expects "
                          f"{tuple(model.input.shape)}")
    perm = np.random.default_rng(0).permutation(len(x))
    if held_out:  # keep at least a quarter of the data for calibration
        n = min(n, max(1, len(x) - held_out, 3 * len(x) // 4))
    return x[np.sort(perm[:n])], x[np.sort(perm[n:n + held_out])], spec
