"""A model small enough to count on paper: one dense layer, 8 ternary weights of which 4 are zero."""

from __future__ import annotations

import numpy as np

from ternkit.core import Dense, InputSpec, TernaryModel

W = np.array([[1, 0, -1, 0], [0, 0, 1, 1]], np.int8)  # 8 weights, 4 zeros
X = np.array([[1, 0, 2, 0], [0, 0, 0, 3]], np.float32)  # sample 1: inputs 0, 2 non-zero; sample 2: input 3


def one_layer() -> TernaryModel:
    spec = InputSpec((4,), np.zeros(4, np.float32), np.ones(4, np.float32))
    return TernaryModel([Dense(W, np.array([0.5], np.float32), np.zeros(2, np.float32))], spec, ["a", "b"])
