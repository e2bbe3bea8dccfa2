"""Smaller models that keep their accuracy: HALO vs L1 vs magnitude pruning, and go wide then narrow.

Part `halo`: LeNet-300-100 (784-300-100-10) trained on the MNIST sample (all 5,000 images), tested on the
official 10,000-image test set. Each of {no penalty, L1, HALO} is trained once per method (float, and ternary
with CoNNTrA); copies of the trained network are then pruned with one global magnitude threshold to each
sparsity, without fine-tuning (ternary: sparsity = zeros among the trits).

Part `widen`: a thin ternary MLP (784-32-32-10, CoNNTrA) trained through a 4x wide float teacher
(teacher + layerwise imitation + fine-tune epochs = the direct run's epochs) vs the same thin network
trained directly; wall seconds of every stage.

    OMP_NUM_THREADS=1 python benchmarks/compression.py [--only halo,widen] [--epochs 30] [--quick]

Prints tables and writes benchmarks/out/compression.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from ternkit.core.data import load_split, normalisation
from ternkit.core.model import InputSpec
from ternkit.trainer import TrainConfig, train
from ternkit.trainer.loop import accuracy
from ternkit.trainer.prune import Prune, prune_global, sparsity
from ternkit.trainer.technique import techniques_for
from ternkit.trainer.widen import go_wide_then_narrow

HERE = Path(__file__).resolve().parent
DEFAULT_TEST = HERE.parent.parent / "shared" / "datasets" / "mnist"
# per method, the strength with the best accuracy at 95 % sparsity on a held-out 20 % of the training sample
# (20 epochs; tried L1 1e-4, 3e-4 and HALO xi 1e-4, 3e-4, 1e-3 with psi = xi / 10), never on the test set
PENALTIES = {
    "float": {"none": None, "l1": {"kind": "l1", "strength": 3e-4}, "halo": {"kind": "halo", "xi": 1e-4, "psi": 1e-5}},
    "conntra": {"none": None, "l1": {"kind": "l1", "strength": 3e-4},
                "halo": {"kind": "halo", "xi": 3e-4, "psi": 3e-5}},
}


def _test_tensors(split, spec):
    return torch.from_numpy(spec.normalise(split.test.x)), torch.from_numpy(split.test.y)


def halo_part(args, split) -> list[dict]:
    mean, std = normalisation(split.train)
    spec = InputSpec(split.train.shape, mean, std)
    test = _test_tensors(split, spec)
    rows = []
    for method in args.methods:
        for name, penalty in PENALTIES[method].items():
            extra = {} if penalty is None else {"penalty": dict(penalty)}
            cfg = TrainConfig(dataset="mnist-sample", model="mlp:300x100", method=method, epochs=args.epochs,
                              batch_size=64, val_fraction=0.0, seed=args.seed, test=str(args.test), extra=extra)
            tracker = Prune(0.0)  # collects CoNNTrA's tie-break evidence; prunes nothing itself
            t0 = time.perf_counter()
            r = train(cfg, progress=False, split=split, techniques=techniques_for(cfg) + [tracker])
            seconds = time.perf_counter() - t0
            dense_acc = accuracy(r.net, *test)
            for target in args.sparsities:
                rankings = ["magnitude"] + (["halo"] if penalty and penalty["kind"] == "halo" else [])
                for ranking in rankings:
                    net = copy.deepcopy(r.net)
                    stats = prune_global(net, target, ranking, tracker.saliency())
                    row = {"method": method, "penalty": name, "ranking": ranking, "target": target,
                           "sparsity": sparsity(net), "natural_zeros": stats["zeros_before"] / stats["weights"],
                           "dense_test_acc": dense_acc, "test_acc": accuracy(net, *test),
                           "train_seconds": seconds}
                    rows.append(row)
                    print(f"{method:8} {name:5} {ranking:9} {100 * target:5.1f}% -> {100 * row['sparsity']:6.2f}% "
                          f"zeros   test {100 * row['test_acc']:6.2f} %  (unpruned {100 * dense_acc:6.2f} %, "
                          f"{100 * row['natural_zeros']:5.1f} % zeros before, {seconds:6.1f} s)", flush=True)
    return rows


def widen_part(args, split) -> list[dict]:
    mean, std = normalisation(split.train)
    spec = InputSpec(split.train.shape, mean, std)
    test = _test_tensors(split, spec)
    rows = []
    total, teacher_ep, imitate_ep = args.epochs, args.teacher_epochs, args.imitate_epochs
    finetune_ep = total - teacher_ep - 2 * imitate_ep
    base = dict(dataset="mnist-sample", model=args.thin, method="conntra", batch_size=64, val_fraction=0.0,
                seed=args.seed, test=str(args.test))
    t0 = time.perf_counter()
    direct = train(TrainConfig(**base, epochs=total), progress=False, split=split)
    direct_s = time.perf_counter() - t0
    rows.append({"run": "direct", "epochs": total, "test_acc": accuracy(direct.net, *test), "seconds": direct_s})
    t0 = time.perf_counter()
    cfg = TrainConfig(**base, epochs=finetune_ep, extra={"widen": {"factor": args.factor, "teacher_epochs": teacher_ep,
                                                                   "imitate_epochs": imitate_ep,
                                                                   "teacher_method": args.teacher_method}})
    wide = go_wide_then_narrow(cfg, progress=False, split=split)
    rep = wide.metrics["wide_then_narrow"]
    rows.append({"run": "wide-then-narrow", "epochs": f"{teacher_ep}+2x{imitate_ep}+{finetune_ep}",
                 "test_acc": accuracy(wide.net, *test), "seconds": time.perf_counter() - t0,
                 "teacher_test_acc": 1 - rep["teacher_test_error"], "teacher_seconds": rep["teacher_seconds"],
                 "imitation_seconds": rep["imitation_seconds"], "finetune_seconds": rep["finetune_seconds"],
                 "imitation": rep["imitation"]})
    for r in rows:
        extra = "" if r["run"] == "direct" else (
            f"  teacher {100 * r['teacher_test_acc']:.2f} % ({r['teacher_seconds']:.1f} s), imitation "
            f"{r['imitation_seconds']:.1f} s, fine-tune {r['finetune_seconds']:.1f} s")
        print(f"{r['run']:17} {str(r['epochs']):>10} ep  test {100 * r['test_acc']:6.2f} %  "
              f"{r['seconds']:6.1f} s{extra}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="halo,widen")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="float,conntra")
    ap.add_argument("--sparsities", default="0.9,0.95")
    ap.add_argument("--thin", default="mlp:32x32")
    ap.add_argument("--factor", type=int, default=4)
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--imitate-epochs", type=int, default=3)
    ap.add_argument("--teacher-method", default="conntra", choices=("float", "ste", "conntra"))
    ap.add_argument("--test", type=Path, default=DEFAULT_TEST)
    ap.add_argument("--quick", action="store_true", help="3 epochs, for a smoke run")
    args = ap.parse_args()
    args.methods = args.methods.split(",")
    args.sparsities = [float(s) for s in args.sparsities.split(",")]
    if args.quick:
        args.epochs, args.teacher_epochs, args.imitate_epochs = 4, 1, 1
    if not args.test.exists():
        print(f"MNIST test set not found at {args.test}; pass --test DIR", file=sys.stderr)
        return 2
    split = load_split("mnist-sample", args.seed, 0.0, f"idx:{args.test}")
    out: dict = {"command": " ".join(sys.argv), "threads": torch.get_num_threads(), "epochs": args.epochs}
    t0 = time.perf_counter()
    parts = args.only.split(",")
    if "widen" in parts:
        out["widen"] = widen_part(args, split)
    if "halo" in parts:
        out["halo"] = halo_part(args, split)
    out["seconds"] = time.perf_counter() - t0
    name = "compression" if set(parts) == {"halo", "widen"} else "compression-" + "-".join(parts)
    dest = HERE / "out" / f"{name}.json"
    dest.parent.mkdir(exist_ok=True)
    from ternkit.core.atomic import write_text

    write_text(dest, json.dumps(out, indent=2))
    print(f"wrote {dest} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
