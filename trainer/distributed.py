"""Data-parallel training on torch.distributed: one global batch split across processes, one shared update.

Launched by `torchrun` (or `ternkit train --nproc N`, which runs torchrun), every process builds the same
network from the seed, reads the same global batch order, and takes its strided shard of each batch (as
`DistributedSampler` does, but without padding, so the global batch is exactly the single-process one).
After the backward pass each process scales its gradients by its share of the batch and the sums are
all-reduced; the loss is reduced the same way. Every process then holds the gradient and loss of the whole
batch and runs the same rule on them, so Adam steps, CoNNTrA's coordinate choices (from the all-reduced
gradient averages) and the exact mode's loss checks are identical everywhere and the weights stay
bit-identical -- no parameter broadcast is needed after the start, and `finish` verifies it.

Why a technique and not `DistributedDataParallel`: CoNNTrA's moves happen in the rule after the closure
returns and the exact mode calls the closure many times without a backward pass; a gradient hook in the
one loop covers float, ste and both CoNNTrA modes alike. Only rank 0 writes checkpoints, the artifact and
the progress bar. A dead or stalled process makes the others fail with `DistributedError` (one line) within
the collective timeout instead of hanging.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ternkit.core.errors import OptionError, TernkitError

from .config import TrainConfig
from .loop import Hooks
from .network import Network
from .technique import Options, Technique, option, register

__all__ = ["DataParallel", "DistributedError", "from_config", "dist_settings", "launched_by_torchrun",
           "is_main_process", "shard_of", "KEY", "BACKENDS", "DEFAULT_TIMEOUT"]

# config.extra[KEY] = {"timeout": seconds a collective may wait for the other processes, "backend": auto | gloo |
# nccl, "init": a rendezvous URL instead of MASTER_ADDR/MASTER_PORT, e.g. file:///tmp/run/rdzv (no port to race
# for)}; not part of the checkpoint identity (`TrainConfig.identity`)
KEY = "distributed"
BACKENDS = ("auto", "gloo", "nccl")
DEFAULT_TIMEOUT = 300.0


class DistributedError(TernkitError):
    """Another process died, stalled or was started with different settings; the run cannot continue."""


def launched_by_torchrun() -> bool:
    """True inside a process that torchrun (or an equivalent launcher) started as one of several ranks."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def shard_of(idx: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's part of a global batch: every world-th index from position rank (disjoint, covering)."""
    return idx[rank::world]


def is_main_process() -> bool:
    """False in every torchrun process but rank 0 (only rank 0 writes outputs)."""
    return os.environ.get("RANK", "0") == "0"


def dist_settings(config: TrainConfig) -> dict[str, Any]:
    """The validated settings under config.extra['distributed'] (`--dist-timeout`; the process-group backend and
    a rendezvous URL from the API), defaults filled in. They travel in the config, never in the environment."""
    raw = config.extra.get(KEY) or {}
    s = {"timeout": DEFAULT_TIMEOUT, "backend": "auto", "init": None, **{k: v for k, v in raw.items() if v is not None}}
    unknown = set(s) - {"timeout", "backend", "init"}
    if unknown:
        raise OptionError(f"unknown distributed settings: {', '.join(sorted(unknown))}")
    if isinstance(s["timeout"], bool) or not isinstance(s["timeout"], int | float) or not 0 < s["timeout"] < 1e6:
        raise OptionError(f"--dist-timeout must be a positive number of seconds, got {s['timeout']!r}")
    if s["backend"] not in BACKENDS:
        raise OptionError(f"the distributed backend must be one of {', '.join(BACKENDS)}, got {s['backend']!r}")
    if s["init"] is not None and not isinstance(s["init"], str):
        raise OptionError(f"the distributed rendezvous must be a URL such as file:///tmp/rdzv, got {s['init']!r}")
    return {**s, "timeout": float(s["timeout"])}


@dataclass(frozen=True)
class DistOptions(Options):
    """--dist-timeout S, --dist-init URL: how the processes of a data-parallel run meet and wait."""

    timeout: float | None = option("--dist-timeout", type=float, metavar="S",
                                   help="data-parallel: stop with an error when another process is silent for S "
                                        "seconds (300)")
    init: str | None = option("--dist-init", metavar="URL",
                              help="data-parallel processes you start yourself: meet at this rendezvous (e.g. "
                                   "file:///tmp/run/rdzv) instead of MASTER_ADDR/MASTER_PORT")

    def to_extra(self) -> dict[str, Any] | None:
        given = {k: v for k, v in (("timeout", self.timeout), ("init", self.init)) if v is not None}
        return given or None


# one of several torchrun processes: first, so every other technique sees the shards
@register(KEY, order=0, options=DistOptions, settings=dist_settings)
def from_config(config: TrainConfig) -> list[DataParallel]:
    """[DataParallel] when running as one of several torchrun processes, else [] (single-process training)."""
    settings = dist_settings(config)  # checked in every process, so a bad value fails alike with one
    if not launched_by_torchrun():
        return []
    return [DataParallel(**settings)]


class DataParallel(Technique):
    name = "data_parallel"

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, backend: str = "auto", init: str | None = None):
        if not timeout > 0:
            raise DistributedError(f"the distributed timeout must be > 0 seconds, got {timeout}")
        if backend not in BACKENDS:
            raise DistributedError(f"the distributed backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.timeout, self.backend, self.init = timeout, backend, init
        self.rank, self.world = 0, 1
        self._weight = 1.0  # this rank's share of the current global batch
        self._step = 0
        self._pending: Network | None = None  # set by a backward pass, cleared by its reduction

    # -- set-up ---------------------------------------------------------------------------------------------
    def attach(self, net: Network, hooks: Hooks, config: TrainConfig) -> list[torch.nn.Parameter]:
        self._init_group(net)
        if config.batch_size is not None and config.batch_size < self.world:  # None: train() resolves it first
            raise OptionError(f"--batch-size {config.batch_size} is smaller than the {self.world} processes sharing it")
        self._agree(_fingerprint(config.identity(), net), "were started with different settings or code "
                    "(every process must get the same options)")
        hooks.shard = self._shard
        hooks.after_backward.append(self._take_gradients)
        hooks.reduce_loss = self._reduce_loss
        hooks.is_main = self.rank == 0
        return []

    def _init_group(self, net: Network) -> None:
        if dist.is_initialized():  # a user's script may have set it up already: join it, leave it to them
            self.rank, self.world, self.backend = dist.get_rank(), dist.get_world_size(), dist.get_backend()
            return
        on_gpu = any(p.is_cuda for p in net.parameters())
        backend = self.backend if self.backend != "auto" else ("nccl" if on_gpu else "gloo")
        if backend == "nccl" and not (on_gpu and dist.is_nccl_available()):
            raise DistributedError("nccl needs the network on a CUDA device; ternkit's trainer runs on the CPU, "
                                   "use gloo (backend auto)")
        try:
            init = self.init
            extra = {} if not init else {"init_method": init, "rank": int(os.environ["RANK"]),
                                         "world_size": int(os.environ["WORLD_SIZE"])}
            dist.init_process_group(backend, timeout=timedelta(seconds=self.timeout), **extra)
        except (RuntimeError, ValueError) as e:
            raise DistributedError(f"could not join the other processes within {self.timeout:g} s "
                                   f"({_first_line(e)})") from None
        atexit.register(_destroy)
        self.rank, self.world, self.backend = dist.get_rank(), dist.get_world_size(), backend

    # -- hooks of the loop ----------------------------------------------------------------------------------
    def _shard(self, idx: np.ndarray) -> np.ndarray:
        mine = shard_of(idx, self.rank, self.world)
        self._weight = len(mine) / max(1, len(idx))
        self._step += 1
        return mine

    def _take_gradients(self, net: Network) -> None:
        # reduced together with the loss (the loop calls reduce_loss right after the after_backward hooks):
        # one collective per step instead of two halves the per-step latency; the rule reads the gradients
        # only after the closure returns, and per-rank hooks that are linear in the gradient (masks) commute.
        # The gradients are read when reduced, so a later hook may still replace a `.grad` tensor.
        self._pending = net

    def _reduce_loss(self, loss: torch.Tensor) -> torch.Tensor:
        net, self._pending = self._pending, None
        grads = [] if net is None else [p.grad for p in net.parameters() if p.grad is not None]
        flat = torch.cat([*(g.reshape(-1) for g in grads), loss.reshape(1).to(torch.float32)])
        # each rank's mean is weighted by its share of the batch; an empty shard (the last, short batch) has
        # a NaN mean loss and contributes nothing
        flat = flat.mul_(self._weight) if self._weight > 0 else torch.zeros_like(flat)
        self._collective(lambda: dist.all_reduce(flat), "the gradient all-reduce" if grads else "the loss all-reduce")
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
        return flat[-1].to(loss.dtype).reshape(loss.shape)

    # -- the end --------------------------------------------------------------------------------------------
    def finish(self, net: Network, config: TrainConfig) -> dict[str, Any]:
        self._agree(_fingerprint({}, net), "ended with different weights (a technique's state is not "
                    "synchronised); the artifact would depend on the rank")
        _CLEAN["finished"] = True
        return {"data_parallel": {"world_size": self.world, "backend": self.backend, "timeout_s": self.timeout}}

    def _agree(self, digest: int, problem: str) -> None:
        mine = torch.tensor([digest], dtype=torch.int64)
        every = [torch.zeros_like(mine) for _ in range(self.world)]
        self._collective(lambda: dist.all_gather(every, mine), "a consistency check")
        differ = [r for r, t in enumerate(every) if int(t) != digest]
        if differ:
            raise DistributedError(f"rank {self.rank}: processes {sorted(set(differ) | {self.rank})} {problem}")

    def _collective(self, op, what: str) -> None:
        try:
            op()
        except RuntimeError as e:  # gloo/nccl raise DistBackendError (a RuntimeError) for a dead or stalled peer
            _CLEAN["failed"] = True
            raise DistributedError(f"rank {self.rank} of {self.world}: {what} at step {self._step} failed: another "
                                   f"process died or stalled for over {self.timeout:g} s ({_first_line(e)})") from None


def _fingerprint(settings: dict[str, Any], net: Network) -> int:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for p in net.state_dict().values():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "little", signed=True)


def _first_line(e: BaseException) -> str:
    """The gist of a backend error: its first line without the C++ source location, shortened."""
    text = str(e).strip().splitlines()
    line = re.sub(r"^\[[^\]]*\]\s*", "", text[0]) if text else type(e).__name__
    return line.split(". This is typically")[0][:160]


_CLEAN = {"finished": False, "failed": False}  # did this process end its run in step with the others?


def _destroy() -> None:
    """At exit. After a run that ended in step with the others, meet them once more before tearing down: a
    process that destroyed its group while a peer was still tearing its own down was seen to abort the peer
    (gloo: "terminate called without an active exception") on a loaded machine. After a failure, no meeting
    (a dead peer would hold it until the timeout)."""
    if not dist.is_initialized():
        return
    if _CLEAN["failed"]:
        # a group with a dead peer aborts in its teardown (gloo: std::terminate), turning the clear error already
        # printed into a crash: leave without tearing it down, with the failure's exit code
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    if _CLEAN["finished"]:
        with contextlib.suppress(RuntimeError):
            dist.barrier()
    dist.destroy_process_group()
