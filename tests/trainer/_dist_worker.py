"""One rank of a data-parallel test run: train each config given as JSON, save the final state per rank.

Started by tests/trainer/test_distributed.py with torchrun's environment variables (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT) set by hand, so a test can kill one rank and watch the others.
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from ternkit.trainer import Hooks, TrainConfig, build_network, train
from ternkit.trainer.distributed import from_config


def gradient_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """23 rows: shards of 12 and 11, as the gradient check in the test computes them in one process."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn(23, 4, generator=gen), torch.randint(0, 3, (23,), generator=gen)


def reduced_gradient(out: str, rank: int, init: str) -> None:
    """One backward pass through the technique's hooks: the all-reduced gradient and loss of one batch."""
    net = build_network("mlp:16", (4,), 3, "discrete", seed=3)
    hooks = Hooks()
    (technique,) = from_config(TrainConfig(dataset="iris", extra={"distributed": {"init": init}}))
    technique.attach(net, hooks, TrainConfig(dataset="iris"))
    x, y = gradient_batch()
    idx = hooks.shard(np.arange(len(x)))
    loss = F.cross_entropy(net(x[idx]), y[idx])
    loss.backward()
    for hook in hooks.after_backward:
        hook(net)
    loss = hooks.reduce_loss(loss.detach())  # as the loop does: the gradients are final after this
    np.savez(os.path.join(out, f"grad_rank{rank}.npz"), loss=loss.numpy(),
             **{n: p.grad.numpy() for n, p in net.named_parameters()})


def main() -> None:
    out, configs, init = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]  # init: the rendezvous URL
    rank = int(os.environ.get("RANK", "0"))
    for i, c in enumerate(configs):
        r = train(TrainConfig(**c, extra={"distributed": {"init": init}}), progress=False)
        state = {k: v.detach().numpy() for k, v in r.net.state_dict().items()}
        np.savez(os.path.join(out, f"run{i}_rank{rank}.npz"), **state,
                 loss=np.array([e["loss"] for e in r.metrics["epochs"]]),
                 world=np.array(r.metrics.get("data_parallel", {}).get("world_size", 1)))
    reduced_gradient(out, rank, init)


if __name__ == "__main__":
    main()
