"""The one training loop: minibatches, the update rule, evaluation, checkpoints, Ctrl-C.

Techniques plug in through `Hooks` instead of new loops: extra loss terms (penalties, imitation), a
gradient synchroniser (data parallel), and a batch-index filter (each rank's shard). Batch order is a pure
function of (seed, epoch), so a resumed run -- even from the middle of an epoch -- replays the same batches.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint, save_checkpoint
from .network import Network
from .rules import UpdateRule
from .step_context import StepContext

__all__ = ["Hooks", "TrainingInterrupted", "fit", "accuracy", "batch_order"]


@dataclass
class Hooks:
    # loss_terms(net, x_batch, logits) -> scalar added to the task loss (penalties, imitation)
    loss_terms: list[Callable[[Network, torch.Tensor, torch.Tensor], torch.Tensor]] = field(default_factory=list)
    after_backward: list[Callable[[Network], None]] = field(default_factory=list)  # e.g. all-reduce gradients
    before_step: list[Callable[[Network, int], None]] = field(default_factory=list)  # e.g. draw a dropout pattern
    shard: Callable[[np.ndarray], np.ndarray] | None = None  # this process's part of a global batch
    reduce_loss: Callable[[torch.Tensor], torch.Tensor] | None = None  # e.g. the loss over all processes
    # task_loss(logits, y) replaces the cross-entropy (e.g. layerwise imitation trains on loss_terms alone)
    task_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    is_main: bool = True  # only the main process writes checkpoints and shows progress
    # per-step facts a technique hands to the update rule (e.g. the submatrix batchwise dropout trains)
    context: StepContext = field(default_factory=StepContext)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the checkpoint was saved; callers that don't handle it exit as on Ctrl-C."""

    def __init__(self, checkpoint: Path | None):
        super().__init__(f"interrupted; checkpoint saved to {checkpoint}" if checkpoint else "interrupted")
        self.checkpoint = checkpoint


def batch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


@torch.no_grad()
def accuracy(net: Network, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> float:
    was_training = net.training
    net.eval()
    if y.is_floating_point():  # regression on standardised targets: 1 - MSE, so the "error" is the MSE (~1 - R^2)
        sq = sum(float(((net(x[i:i + batch]) - y[i:i + batch]) ** 2).sum()) for i in range(0, len(x), batch))
        net.train(was_training)
        return 1 - sq / max(1, y.numel())
    correct = sum(int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    net.train(was_training)
    return correct / max(1, len(x))


def fit(net: Network, rule: UpdateRule, train: tuple[torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor], *, epochs: int, batch_size: int, seed: int,
        hooks: Hooks | None = None, checkpoint: Path | None = None, resume: bool = False,
        identity: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Train in place; returns the history (per-epoch errors, seconds). Raises TrainingInterrupted on Ctrl-C."""
    hooks = hooks or Hooks()
    x, y = train
    n = len(x)
    steps_per_epoch = max(1, -(-n // batch_size))
    # CPU seconds beside wall seconds: on a shared machine wall time swings with other load, CPU time much less
    history: dict[str, Any] = {"epochs": [], "train_seconds": 0.0, "train_cpu_seconds": 0.0}
    start_epoch, start_batch, partial_loss = 0, 0, 0.0
    device = x.device
    if resume and checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, identity or {}, net)
        net.load_state_dict(state["net"])
        rule.load_state_dict(state["rule"])
        history, start_epoch, start_batch = state["history"], state["epoch"], state["batch"]
        partial_loss = float(history.pop(_PARTIAL_LOSS, 0.0))

    def closure(backward: bool = True, xb=None, yb=None) -> torch.Tensor:
        out = net(xb)
        loss = hooks.task_loss(out, yb) if hooks.task_loss is not None else (
            F.mse_loss(out, yb) if yb.is_floating_point() else F.cross_entropy(out, yb))  # float targets: regression
        for term in hooks.loss_terms:
            loss = loss + term(net, xb, out)
        if backward:
            loss.backward()
            for hook in hooks.after_backward:
                hook(net)
        return loss.detach() if hooks.reduce_loss is None else hooks.reduce_loss(loss.detach())

    # once the training loss nears 0, squared gradients (Adam's and CoNNTrA's second moments) underflow into
    # denormal floats, which x86 processes many times slower; flush them to zero while training
    torch.set_flush_denormal(True)
    rule.context = hooks.context  # what techniques decide for a step reaches the rule here
    bar = None
    if progress and hooks.is_main:
        from tqdm import tqdm

        bar = tqdm(total=epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch + start_batch,
                   unit="batch", dynamic_ncols=True, leave=False)
    # `done` is the position a checkpoint records: (epoch, batches of it applied), changed only once a step
    # has finished; Ctrl-C during a step is held until the step is complete (see _DeferredInterrupt), so a
    # checkpoint never records a batch as not done whose update was partly applied (scales, biases)
    # the epoch's loss is summed on the device and read back once per epoch and per progress update: a read
    # per step would make the host wait for every GPU step (float64, as a Python float sum was)
    done, loss_sum = (start_epoch, start_batch), torch.tensor(partial_loss, dtype=torch.float64, device=device)
    guard = _DeferredInterrupt()
    try:
        guard.install()
        net.train()
        for epoch in range(start_epoch, epochs):
            order = batch_order(n, seed, epoch)
            # the batch indices go to the device once per epoch, not once per step
            order_d = torch.from_numpy(order).to(device) if hooks.shard is None else None
            t0, c0 = time.perf_counter(), time.process_time()
            first = start_batch if epoch == start_epoch else 0
            if epoch != start_epoch:
                loss_sum.zero_()
            for b in range(first, steps_per_epoch):
                if order_d is not None:
                    idx = order_d[b * batch_size:(b + 1) * batch_size]
                else:
                    idx = hooks.shard(order[b * batch_size:(b + 1) * batch_size])
                xb, yb = x[idx], y[idx]
                with guard:
                    for hook in hooks.before_step:
                        hook(net, rule.step_index)
                    loss = rule.step(lambda backward=True, xb=xb, yb=yb: closure(backward, xb, yb))
                    loss_sum += loss
                    done = (epoch, b + 1)
                if bar is not None:
                    bar.update(1)
                    if (b + 1) % _SHOW_EVERY == 0:  # a progress update: the one place a step's loss is read
                        bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss):.3f}", refresh=False)
            history["train_seconds"] += time.perf_counter() - t0
            history["train_cpu_seconds"] += time.process_time() - c0
            # the mean over the whole epoch, also when it was resumed from its middle (loss_sum carried over)
            record = {"epoch": epoch + 1, "loss": float(loss_sum) / steps_per_epoch,
                      "train_error": 1 - accuracy(net, x, y),
                      "val_error": 1 - accuracy(net, *val) if len(val[0]) else None,
                      "seconds": history["train_seconds"]}
            with guard:  # the record and the position move together
                history["epochs"].append(record)
                done = (epoch + 1, 0)
                loss_sum.zero_()
            if bar is not None:
                bar.set_postfix(epoch=epoch + 1, loss=f"{record['loss']:.3f}",
                                val_acc="-" if record["val_error"] is None else f"{1 - record['val_error']:.3f}")
            if checkpoint is not None and hooks.is_main:
                save_checkpoint(checkpoint, net, rule, history, epoch + 1, 0, identity or {})
    except KeyboardInterrupt:
        guard.uninstall()  # a second Ctrl-C while saving stops at once (the last checkpoint file stays whole)
        if checkpoint is not None and hooks.is_main:
            saved = {**history, _PARTIAL_LOSS: float(loss_sum)} if done[1] else history
            save_checkpoint(checkpoint, net, rule, saved, done[0], done[1], identity or {})
        raise TrainingInterrupted(checkpoint if hooks.is_main else None) from None
    finally:
        guard.uninstall()
        if bar is not None:
            bar.close()
        torch.set_flush_denormal(False)
    return history


_PARTIAL_LOSS = "partial_epoch_loss_sum"  # in a mid-epoch checkpoint's history: the losses of its done batches
_SHOW_EVERY = 50  # steps between progress-bar loss updates


class _DeferredInterrupt:
    """`with guard:` holds SIGINT until the block ends, then raises KeyboardInterrupt: a training step is
    atomic with respect to Ctrl-C. Outside such blocks Ctrl-C interrupts at once. Only installed in the main
    thread (where Python delivers signals); elsewhere it does nothing."""

    def __init__(self) -> None:
        self.inside, self.pending, self.previous = False, False, None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is \
                signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def uninstall(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None

    def _handle(self, signum, frame) -> None:
        if self.inside:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def __enter__(self) -> _DeferredInterrupt:
        self.inside = True
        return self

    def __exit__(self, *exc) -> None:
        self.inside = False
        if self.pending and exc[0] is None:
            self.pending = False
            raise KeyboardInterrupt
