"""`ternkit train` options for smaller models: sparsity penalties, pruning, go wide then narrow.

Kept apart from train.py so the flags, their validation and the dispatch to the staged trainer sit in one
place; train.py calls `add_arguments` and `compression_extra`. Running them (go wide then narrow included) is
`ternkit.trainer.train`'s job.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ternkit.core.errors import OptionError
from ternkit.trainer import TrainConfig
from ternkit.trainer.halo import KEY as PENALTY_KEY
from ternkit.trainer.halo import KINDS, penalty_settings
from ternkit.trainer.prune import KEY as PRUNE_KEY
from ternkit.trainer.prune import PRUNE_METHODS, prune_settings
from ternkit.trainer.widen import KEY as WIDEN_KEY
from ternkit.trainer.widen import widen_settings

__all__ = ["add_arguments", "compression_extra"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("smaller models (docs/compression.md)")
    g.add_argument("--penalty", default=None, choices=KINDS,
                   help="sparsity penalty: halo (learned per-weight shrinkage) or l1")
    g.add_argument("--halo-xi", type=float, default=None, metavar="XI",
                   help="HALO: weight of sum |w|/lambda^2 (default: 1e-4 for float, 3e-4 for ste and conntra)")
    g.add_argument("--halo-psi", type=float, default=None, metavar="PSI",
                   help="HALO: weight of sum |lambda| (default: 1e-5 for float, 3e-5 for ste and conntra)")
    g.add_argument("--l1", type=float, default=None, metavar="S", help="L1: strength (with --penalty l1; default 3e-4)")
    g.add_argument("--prune", type=float, default=None, metavar="FRACTION",
                   help="after training, zero exactly this share of the weights (global magnitude threshold)")
    g.add_argument("--prune-method", default=None, choices=PRUNE_METHODS,
                   help="rank weights by magnitude (default) or by HALO's lambda")
    g.add_argument("--widen", type=int, default=None, metavar="K",
                   help="go wide then narrow: train a K-times wider teacher, imitate it layerwise, fine-tune")
    g.add_argument("--teacher", default=None, metavar="MODEL",
                   help="go wide then narrow with this trained model as the teacher (instead of --widen)")
    g.add_argument("--teacher-epochs", type=int, default=None, metavar="N",
                   help="--widen: epochs of the wide teacher (default: the data's default number of epochs, "
                   "not --epochs: 10 on the MNIST sample)")
    g.add_argument("--imitate-epochs", type=int, default=None, metavar="N",
                   help="--widen/--teacher: imitation epochs per hidden block (default: 3)")


def compression_extra(args: argparse.Namespace) -> dict[str, Any]:
    """config.extra entries for these flags, validated so bad input fails before any training."""
    extra: dict[str, Any] = {}
    if args.penalty is None and any(v is not None for v in (args.halo_xi, args.halo_psi, args.l1)):
        raise OptionError("--halo-xi, --halo-psi and --l1 need --penalty halo|l1")
    if args.penalty == "halo":
        if args.l1 is not None:
            raise OptionError("--l1 sets the L1 penalty's strength; with --penalty halo use --halo-xi/--halo-psi")
        extra[PENALTY_KEY] = {"kind": "halo", "xi": args.halo_xi, "psi": args.halo_psi}
    elif args.penalty == "l1":
        if args.halo_xi is not None or args.halo_psi is not None:
            raise OptionError("--halo-xi/--halo-psi apply to --penalty halo; the L1 strength is --l1")
        extra[PENALTY_KEY] = {"kind": "l1", "strength": args.l1}
    if args.prune_method is not None and args.prune is None:
        raise OptionError("--prune-method needs --prune FRACTION")
    if args.prune is not None:
        extra[PRUNE_KEY] = {"fraction": args.prune, "method": args.prune_method}
    if args.widen is not None and args.teacher is not None:
        raise OptionError("use either --widen K (train a wide teacher) or --teacher MODEL, not both")
    if args.widen is None and args.teacher is None and (args.teacher_epochs or args.imitate_epochs):
        raise OptionError("--teacher-epochs and --imitate-epochs need --widen K or --teacher MODEL")
    if args.widen is not None or args.teacher is not None:
        if getattr(args, "resume", False):  # said before anything else (e.g. the note on a missing checkpoint)
            raise OptionError("--resume is not supported with --widen/--teacher (the stages restart)")
        if args.teacher is not None and args.teacher_epochs is not None:
            raise OptionError("--teacher-epochs trains a wide teacher; it does not apply to --teacher MODEL")
        extra[WIDEN_KEY] = {"factor": args.widen, "teacher": None if args.teacher is None else str(
            Path(args.teacher)), "teacher_epochs": args.teacher_epochs, "imitate_epochs": args.imitate_epochs}
        if args.widen is None:
            extra[WIDEN_KEY]["factor"] = None
    probe = TrainConfig(epochs=max(1, getattr(args, "epochs", 1) or 1), extra=extra)
    penalty_settings(probe), prune_settings(probe), widen_settings(probe)
    return extra

