"""Checkpoints: the network, the rule's state and the position in training, written atomically.

Saved with torch.save and read back with `weights_only=True`, so a checkpoint cannot run code either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ternkit.core.atomic import atomic_path
from ternkit.core.errors import ArtifactError, OptionError

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path: Path, net: torch.nn.Module, rule: Any, history: dict[str, Any], epoch: int, batch: int,
                    identity: dict[str, Any]) -> None:
    state = {"net": net.state_dict(), "rule": rule.state_dict(), "epoch": epoch, "batch": batch,
             "history": json.dumps(history), "identity": json.dumps(identity, sort_keys=True)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    try:
        state = torch.load(path, weights_only=True)
        saved = json.loads(state["identity"])
        history = json.loads(state["history"])
    except Exception as e:  # torch raises many types for a bad file; all mean the same to the user
        raise ArtifactError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if saved != json.loads(json.dumps(identity, sort_keys=True)):
        diff = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        raise OptionError(f"{path} was written with different settings ({', '.join(diff)}); "
                          "use the same options to resume, or drop --resume")
    return {**state, "history": history}
