"""`ternkit train`: train a model and write the artifact (+ metrics JSON, checkpoints)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ternkit.commands import SUMMARIES
from ternkit.core.dataset import TASKS
from ternkit.core.errors import OptionError
from ternkit.trainer import (
    METHODS,
    MODES,
    SCHEDULES,
    TrainConfig,
    TrainingInterrupted,
    compare_path,
    metrics_path,
    train_methods,
)
from ternkit.trainer.api import RESUME_WIDEN
from ternkit.trainer.distributed import DistributedError, is_main_process, launched_by_torchrun
from ternkit.trainer.launch import LaunchFailed, launch_local
from ternkit.trainer.native import KERNELS
from ternkit.trainer.technique import options_extra, registered
from ternkit.trainer.widen import KEY as WIDEN_KEY

_HELP = """Methods: conntra (coordinate descent on ternary weights, the default), ste (straight-through
ternary), float (float32 backprop, the baseline). Datasets: iris, digits, mnist-sample, idx:DIR[:train|:t10k],
csv:FILE[:LABEL_COLUMN], npz:FILE[:test] (arrays x, y), folder:DIR[@HxW] (a subfolder of PNG/JPEG per class).

Models: mlp:256, mlp:512x256, mlp:256bnx128 (bn: BatchNorm); cnn (= cnn:16c5s2-32c5s2-100), tokens joined by
'-': <ch>c<k>[x<k2>][s<stride>][p<pad>][g<groups>][bn][r6|hs] convolution, dw<k>[s<stride>][bn][r6|hs]
depthwise convolution (activation ReLU; r6 ReLU6, hs Hardswish), se squeeze-and-excitation (Hardsigmoid gate),
ap<k> / mp<k> average / max pooling, gap global average pooling, <units>[bn] dense (e.g. a
depthwise-separable net: cnn:16c3s2bn-dw3bn-32c1bn-dw3s2bn-64c1bn-gap; MobileNetV3-like:
cnn:16c3s2bnhs-dw3bnhs-se-24c1bn-gap); resnet:16-32-64 (a small residual CNN, 16x2 = two blocks per stage);
mbv2:16-24x2-32x3 (a MobileNetV2: inverted residuals with ReLU6, 24x2 = two blocks); or FILE.py:FUNCTION,
your own torch model: FUNCTION(input_shape, num_classes) returns an nn.Module whose Linear/Conv2d layers are
made ternary per --method. Loading FILE.py runs its code:
that is trusted by design (it is yours); no data file ternkit reads is ever executed.

example: ternkit train --dataset mnist-sample --model mlp:256 --epochs 30 --compare float --out model.tern"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=SUMMARIES["train"], description=_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig()
    p.add_argument("--dataset", default=d.dataset, help=f"dataset spec (default: {d.dataset})")
    p.add_argument("--test", default=None, metavar="SPEC",
                   help="external test set, e.g. idx:DIR (reported, never trained on)")
    p.add_argument("--model", default=d.model, help=f"model spec or FILE.py:FUNCTION (default: {d.model}; see above)")
    p.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"),
                   help="train on a CUDA device when torch sees one (auto, the default), or force cpu/cuda; the "
                   "artifact is the same either way")
    p.add_argument("--method", default=d.method, choices=METHODS, help="training method (default: conntra)")
    p.add_argument("--task", default=None, choices=TASKS,
                   help="classify, regress (MSE; the label column holds targets) or autoencode (the target is the "
                        "input); default: inferred from the labels, and said")
    p.add_argument("--mode", default=d.mode, choices=MODES, help="CoNNTrA mode (default: gradient)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs (default: at least 10, and at least 600 steps on a small dataset)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="minibatch size (default: from the training samples: 8 below 400, 16 below 2,400, else 64)")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (default: 1e-2 below 400 training samples, 3e-3 below 2,400, else 1e-3)")
    p.add_argument("--lr-schedule", default=d.lr_schedule, choices=SCHEDULES,
                   help="constant (default) or cosine: from --lr down to 0 over the run")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for split, init and batch order (default: 0)")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="validation share (default: 0.2; 0 = train on all)")
    p.add_argument("--levels", type=int, default=d.levels, help="weights in {-L..L}; 1 = ternary (default)")
    p.add_argument("--scale", default=d.scale, choices=("channel", "layer"), help="scale per output unit or layer")
    p.add_argument("--frac-start", type=float, default=d.frac_start,
                   help="CoNNTrA: share of weights moved per step at the start")
    p.add_argument("--frac-end", type=float, default=d.frac_end, help="CoNNTrA: ... at the end (exponential decay)")
    p.add_argument("--conntra-kernel", dest="kernel", default=d.kernel, choices=KERNELS,
                   help="CoNNTrA's CPU step: auto (default: compiled where a C compiler is found), native or torch; "
                   "the same rule, float rounding apart")
    p.add_argument("--zero-bonus", type=float, default=d.zero_bonus, help="CoNNTrA: favour moves toward 0 (sparsity)")
    p.add_argument("--exact-block", type=int, default=d.exact_block, help="exact mode: coordinates searched jointly")
    p.add_argument("--exact-coords", type=int, default=d.exact_coords, help="exact mode: coordinates per step")
    add_technique_arguments(p)  # each technique's flags, from its typed settings
    p.add_argument("--out", "-o", default="model.tern", help="artifact path (default: model.tern)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt (written each epoch and on Ctrl-C)")
    p.add_argument("--compare", action="append", default=[], choices=METHODS,
                   help="also train this method on the same data and print both side by side (repeatable)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel: run N processes on this machine via torchrun (see docs/distributed.md)")
    p.set_defaults(run=run, forward=_forwarder(p))


def config_from_args(args: argparse.Namespace, method: str | None = None) -> TrainConfig:
    return TrainConfig(dataset=args.dataset, model=args.model, method=method or args.method, mode=args.mode,
                       epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
                       seed=args.seed, device=args.device, kernel=args.kernel,
                       val_fraction=args.val_fraction, test=args.test, levels=args.levels, scale=args.scale,
                       frac_start=args.frac_start, frac_end=args.frac_end, zero_bonus=args.zero_bonus,
                       exact_block=args.exact_block, exact_coords=args.exact_coords, task=args.task,
                       extra=technique_extra(args)).validate()


def add_technique_arguments(p: argparse.ArgumentParser) -> None:
    """The flags every registered technique declares on its typed settings (`trainer.technique.Options`)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for reg in registered():
        if reg.options is None:
            continue
        group = reg.options.group
        target = p if group is None else groups.setdefault(group, p.add_argument_group(group))
        for _, flag, kwargs in reg.options.flags():
            target.add_argument(flag, default=None, **kwargs)


def technique_extra(args: argparse.Namespace) -> dict:
    """config.extra entries of the techniques' flags (validated here, so bad input fails before training)."""
    extra = options_extra(vars(args), epochs=args.epochs)
    if WIDEN_KEY in extra and args.resume:  # said before anything else (e.g. the note on a missing checkpoint)
        raise OptionError(RESUME_WIDEN)
    return extra


def _row(name: str, m: dict) -> str:
    test = f"{100 * m['test_error']:6.2f}" if "test_error" in m else "     -"
    val = "     -" if m["val_error"] is None else f"{100 * m['val_error']:6.2f}"
    mem = m["memory"]
    return (f"{name:<10} {100 * m['train_error']:6.2f} {val} {test} "
            f"{mem['parameter_bytes'] / 1024:9.1f} {mem['bits_per_weight']:5.2f} {m['train_seconds']:8.1f}")


def _forwarder(p: argparse.ArgumentParser):
    """args -> the same `train` command line minus --nproc: what each launched process runs."""
    def forward(args: argparse.Namespace) -> list[str]:
        argv = ["train"]
        for a in p._actions:
            if not a.option_strings or a.dest in ("help", "nproc"):
                continue
            flag, value = next(s for s in a.option_strings if s.startswith("--")), getattr(args, a.dest)
            if isinstance(a, argparse._StoreTrueAction):
                argv += [flag] if value else []
            elif isinstance(a, argparse._AppendAction):
                argv += [f"{flag}={v}" for v in value or []]
            elif value is not None:
                argv.append(f"{flag}={value}")
        return argv
    return forward


def run(args: argparse.Namespace) -> int:
    """Train here; with --nproc N > 1, start N torchrun processes that each run this same command."""
    config_from_args(args)  # bad options fail once, before any process starts
    if not str(args.out).endswith(".tern"):
        raise OptionError(f"--out should end in .tern, got {args.out}")
    if args.nproc != 1 and not launched_by_torchrun():
        try:
            launch_local(args.nproc, ["ternkit", *args.forward(args)])
        except LaunchFailed as e:
            if e.exit_code == 130:
                print(f"ternkit train: {e.message}", file=sys.stderr)
            elif e.exit_code != 2:  # on bad input every process has already said why, in one line
                print(f"ternkit train: error: {e.message}", file=sys.stderr)
            return e.exit_code
        return 0
    try:
        return _train_here(args)
    except DistributedError as e:  # not bad input (exit 2): the run failed around us
        print(f"ternkit train: error: {e}", file=sys.stderr)
        return 1


def _train_here(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.resume and is_main_process():
        # decided: --resume without a checkpoint starts a new run (so a job script may always pass --resume),
        # and says so
        for method in dict.fromkeys([config.method, *args.compare]):
            ckpt = Path(str(args.out if method == config.method else compare_path(args.out, method)) + ".ckpt")
            if not ckpt.is_file():
                print(f"ternkit train: note: no checkpoint {ckpt} to resume from; starting a new run", file=sys.stderr)
    try:
        runs = train_methods(config, args.compare, out=args.out, resume=args.resume, progress=not args.quiet)
    except TrainingInterrupted as e:
        print(f"ternkit train: {e}; continue with --resume", file=sys.stderr)
        return 130
    if not is_main_process():
        return 0  # one of several processes: rank 0 reports
    results = {method: r.metrics for method, r in runs.items()}
    if args.json:
        print(json.dumps(results if args.compare else results[config.method]))
        return 0
    sched = results[config.method]["schedule"]
    print(f"dataset {config.dataset}, model {config.model}, {sched['epochs']} epochs, batch {sched['batch_size']}, "
          f"lr {sched['lr']:g}, seed {config.seed}")
    if sched["defaults"]:
        print(f"defaults: {sched['why']}")
    m0 = results[config.method]
    if m0.get("task", "classify") != "classify":
        why = f" (inferred: {m0['task_note']}; --task classify to override)" if m0.get("task_note") else ""
        print(f"task {m0['task']}{why}: errors are the MSE of standardised targets (1 = predicting the mean)")
    print(f"{'method':<10} {'train%':>6} {'val%':>6} {'test%':>6} {'params KiB':>9} {'bits':>5} {'train s':>8}"
          "   (error rates)")
    for name, m in results.items():
        print(_row(name, m))
    if len(results) > 1 and "float" in results:
        for name, m in results.items():
            if name != "float":
                print(f"{name}: {m['train_seconds'] / results['float']['train_seconds']:.2f}x float's training time, "
                      f"{results['float']['memory']['parameter_bytes'] / m['memory']['parameter_bytes']:.1f}x smaller")
    print(f"wrote {args.out} and {metrics_path(args.out)}")
    return 0
