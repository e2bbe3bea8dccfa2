"""`CoNNTrA`: a `torch.optim.Optimizer` that moves the discrete weights of ternary layers by coordinate descent
and fits every other parameter with Adam -- for your own training loop (`zero_grad`, `backward`, `step`)."""

from ternkit.trainer.optim import CoNNTrA, StepContext

__all__ = ["CoNNTrA", "StepContext"]
