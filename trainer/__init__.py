"""ternkit.trainer: CoNNTrA and its baselines in one training loop with pluggable update rules."""

# every technique registers itself on import (`technique.register`), as core/ops/__init__ imports the operations;
# api imports widen, the stage above the run
from . import approx, distributed, dropout, halo, prune  # noqa: F401
from .api import TrainResult, compare_path, memory_summary, metrics_path, train, train_methods
from .config import METHODS, MODES, SCHEDULES, TrainConfig
from .conntra import ConntraRule, ExactConntraRule
from .layers import QuantLayer
from .loop import Hooks, TrainingInterrupted, fit
from .network import Network, build_network, to_artifact
from .rules import AdamRule, UpdateRule
from .specs import parse_model_spec
from .technique import Technique, techniques_for

__all__ = [
    "train", "train_methods", "compare_path", "TrainConfig", "TrainResult", "METHODS", "MODES", "SCHEDULES",
    "memory_summary", "metrics_path",
    "Network", "build_network", "to_artifact", "QuantLayer", "parse_model_spec",
    "fit", "Hooks", "TrainingInterrupted",
    "UpdateRule", "AdamRule", "ConntraRule", "ExactConntraRule", "Technique", "techniques_for",
]
