"""ternkit.core: the model artifact, its file format and the datasets. Imports nothing else of ternkit."""

from .data import Dataset, Split, load_dataset, load_split, normalisation, split_dataset
from .errors import ArtifactError, DataError, OptionError, TernkitError
from .io import load_model, save_model
from .model import Conv2d, Dense, Flatten, InputSpec, ReLU, TernaryModel

__all__ = [
    "TernaryModel", "Dense", "Conv2d", "Flatten", "ReLU", "InputSpec",
    "load_model", "save_model",
    "Dataset", "Split", "load_dataset", "load_split", "split_dataset", "normalisation",
    "TernkitError", "DataError", "ArtifactError", "OptionError",
]
