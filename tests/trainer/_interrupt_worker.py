"""Run `ternkit train ARGS...` in this process and send this process a real signal at one point of a step.

usage: python _interrupt_worker.py SIGNAL POINT N -- TRAIN_ARGS...
SIGNAL: INT (Ctrl-C) or KILL (kill -9). POINT: where in the N-th occurrence the signal is raised:
  backward    -- after the backward pass, before any parameter changed
  continuous  -- after Adam's step on scales and biases, before CoNNTrA moves any integer weight
  moves       -- after the integer weights moved (all layers in one update), before the step is complete
  step-end    -- after the whole update, before the loop records the step
  eval        -- during the end-of-epoch evaluation
  checkpoint  -- during the end-of-epoch checkpoint write
"""

from __future__ import annotations

import os
import signal
import sys

from ternkit.trainer import conntra, loop, optim, rules


def main() -> int:
    sig, point, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    args = sys.argv[sys.argv.index("--") + 1:]
    count = {"n": 0}

    def fire() -> None:
        count["n"] += 1
        if count["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL if sig == "KILL" else signal.SIGINT)

    def after(cls, name):
        real = getattr(cls, name)

        def wrapped(*a, **k):
            out = real(*a, **k)
            fire()
            return out
        setattr(cls, name, wrapped)

    def before(owner, name):
        real = getattr(owner, name)

        def wrapped(*a, **k):
            fire()
            return real(*a, **k)
        setattr(owner, name, wrapped)

    # Adam's step: UpdateRule.step_continuous (float, ste); CoNNTrA's optimizer has its own (conntra)
    if point == "backward":
        before(rules.UpdateRule, "step_continuous")
        before(optim.CoNNTrA, "_step_continuous")
    elif point == "continuous":
        after(rules.UpdateRule, "step_continuous")
        after(optim.CoNNTrA, "_step_continuous")
    elif point == "moves":  # the torch form moves in _move, the compiled one in _step_native
        after(optim.CoNNTrA, "_move")
        after(optim.CoNNTrA, "_step_native")
    elif point == "step-end":
        after(conntra.ConntraRule, "step")
        after(rules.AdamRule, "step")
    elif point == "eval":
        before(loop, "accuracy")
    elif point == "checkpoint":
        before(loop, "save_checkpoint")
    else:
        raise SystemExit(f"unknown point {point}")
    from ternkit.cli import main as cli

    return cli(["train", *args])


if __name__ == "__main__":
    sys.exit(main())
