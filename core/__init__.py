"""ternkit.core: the model artifact (a graph of registered operations), its file format, the datasets,
errors, atomic writes and bounded readers. Imports nothing else of ternkit."""

from .data import Dataset, Split, load_dataset, load_split, normalisation, split_dataset
from .errors import ArtifactError, DataError, OptionError, TernkitError, UnsupportedError
from .io import load_model, save_model
from .model import INPUT, InputSpec, Node, TernaryModel
from .ops import OPS, Add, Affine, AvgPool2d, Concat, Conv2d, Counts, Dense, Flatten, MaxPool2d, Op, ReLU, WeightOp

__all__ = [
    "TernaryModel", "Node", "INPUT", "InputSpec", "Op", "WeightOp", "Counts", "OPS",
    "Dense", "Conv2d", "Flatten", "ReLU", "Affine", "AvgPool2d", "MaxPool2d", "Add", "Concat",
    "load_model", "save_model",
    "Dataset", "Split", "load_dataset", "load_split", "split_dataset", "normalisation",
    "TernkitError", "DataError", "ArtifactError", "OptionError", "UnsupportedError",
]
