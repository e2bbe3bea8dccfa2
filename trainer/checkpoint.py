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
STATE_COPIES = 8  # the network, its rule's state (Adam: 2 moments; CoNNTrA: a few per weight) and spare
SLACK = 64 << 20  # pickling overhead, the history JSON, a technique's small extra state

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_limit"]


def save_checkpoint(path: Path, net: torch.nn.Module, rule: Any, history: dict[str, Any], epoch: int, batch: int,
                    identity: dict[str, Any]) -> None:
    state = {"net": net.state_dict(), "rule": rule.state_dict(), "epoch": epoch, "batch": batch,
             "history": json.dumps(history), "identity": json.dumps(identity, sort_keys=True)}
    buf = io.BytesIO()  # serialised first: a full disk is then an OSError of the write (one line), not torch's
    torch.save(state, buf)
    write_bytes(path, buf.getvalue())


def checkpoint_limit(net: torch.nn.Module | None) -> int:
    """The largest checkpoint `net` can have written: STATE_COPIES times its state plus SLACK (MAX_CHECKPOINT
    without a network). A bigger file belongs to another network, or is hostile: refused before it is read."""
    if net is None:
        return MAX_CHECKPOINT
    size = sum(t.numel() * t.element_size() for t in net.state_dict().values() if isinstance(t, torch.Tensor))
    return min(MAX_CHECKPOINT, STATE_COPIES * size + SLACK)


def load_checkpoint(path: Path, identity: dict[str, Any], net: torch.nn.Module | None = None) -> dict[str, Any]:
    """The saved state, read with `weights_only=True` (no code runs), in a size bounded by the network
    it is resumed into (`checkpoint_limit`)."""
    raw = read_bytes(path, checkpoint_limit(net), "checkpoint", ArtifactError)  # bounded, regular files only
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
