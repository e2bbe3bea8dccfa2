"""Checkpoints: the network, the rule's state and the position in training, written atomically.

Saved with torch.save and read back with `weights_only=True`, so a checkpoint cannot run code either.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from ternkit.core.atomic import write_bytes
from ternkit.core.errors import ArtifactError, OptionError
from ternkit.core.readers import read_bytes

MAX_CHECKPOINT = 16 << 30  # 16 GiB: a network, Adam's two moments and CoNNTrA's, for ~1e9 weights

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path: Path, net: torch.nn.Module, rule: Any, history: dict[str, Any], epoch: int, batch: int,
                    identity: dict[str, Any]) -> None:
    state = {"net": net.state_dict(), "rule": rule.state_dict(), "epoch": epoch, "batch": batch,
             "history": json.dumps(history), "identity": json.dumps(identity, sort_keys=True)}
    buf = io.BytesIO()  # serialised first: a full disk is then an OSError of the write (one line), not torch's
    torch.save(state, buf)
    write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    raw = read_bytes(path, MAX_CHECKPOINT, "checkpoint", ArtifactError)  # bounded, regular files only
    try:
        state = torch.load(io.BytesIO(raw), weights_only=True)
        saved = json.loads(state["identity"])
        history = json.loads(state["history"])
    except Exception as e:  # torch raises many types for a bad file; all mean the same to the user
        raise ArtifactError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if saved != json.loads(json.dumps(identity, sort_keys=True)):
        diff = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        raise OptionError(f"{path} was written with different settings ({', '.join(diff)}); "
                          "use the same options to resume, or drop --resume")
    return {**state, "history": history}
