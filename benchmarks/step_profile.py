"""Where a training step's time goes: float backprop vs CoNNTrA, per phase and per torch operation.

One process, one thread, the same data, network shape and batches for both methods. Per model: CPU time
per step (`time.thread_time`, median of --repeats blocks of --steps steps, methods interleaved so that other
load on the machine hits both alike) split into the forward+backward pass (the closure) and the optimizer
step; then `torch.profiler` over --steps CoNNTrA steps: self CPU time per step of each operation inside the
optimizer step (the rows that make the difference to float).

    OMP_NUM_THREADS=1 python benchmarks/step_profile.py [--only mlp256,kws,resnet_small] [--steps 200]

Prints tables and writes benchmarks/out/step_profile.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

# conntra: the compiled CPU step where a C compiler is found (trainer/native.py); conntra-torch: its torch form
METHODS = ("float", "conntra", "conntra-torch")
MODELS = {"mlp256": "mlp:256", "kws": "examples/kws_dscnn.py:build",
          "resnet_small": "examples/resnet_small.py:build"}


def _setup(model: str, method: str, batch: int, steps: int):
    """The network, its rule and the batches, exactly as `ternkit.trainer.train` builds them."""
    from ternkit.core import load_dataset
    from ternkit.trainer.api import make_rule
    from ternkit.trainer.config import TrainConfig
    from ternkit.trainer.network import build_network
    from ternkit.trainer.usermodel import build_user_network, is_user_model

    data = load_dataset("mnist-sample")
    x = torch.from_numpy((data.x - data.x.mean()) / data.x.std()).float()
    y = torch.from_numpy(data.y).long()
    spec = str(ROOT / MODELS[model]) if model != "mlp256" else MODELS[model]
    cfg = TrainConfig(dataset="mnist-sample", model=spec, method=method, epochs=1, batch_size=batch, lr=1e-3)
    shape, classes = tuple(data.x.shape[1:]), int(data.y.max()) + 1
    if is_user_model(spec):
        net = build_user_network(spec, shape, classes, method, seed=0)
    else:
        net = build_network(spec, shape, classes, {"conntra": "discrete", "float": "float"}[method], seed=0)
    rule = make_rule(cfg, net, steps)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, len(x), (batch,), generator=gen) for _ in range(steps)]
    return net, rule, [(x[i], y[i]) for i in batches]


def _closure(net, xb, yb):
    def closure(backward: bool = True) -> torch.Tensor:
        loss = F.cross_entropy(net(xb), yb)
        if backward:
            loss.backward()
        return loss.detach()
    return closure


def _phases(net, rule, batches) -> tuple[float, float]:
    """CPU µs per step of (forward+backward, optimizer step) over the given batches."""
    opt = rule.optimizer
    fb = st = 0
    for xb, yb in batches:
        opt.zero_grad(set_to_none=True)
        t0 = time.thread_time_ns()
        _closure(net, xb, yb)()
        t1 = time.thread_time_ns()
        if hasattr(rule, "layers") or not hasattr(rule, "step_continuous"):
            opt.step()
        else:
            rule.step_continuous()
        t2 = time.thread_time_ns()
        fb, st = fb + t1 - t0, st + t2 - t1
    return fb / 1e3 / len(batches), st / 1e3 / len(batches)


def _step_ops(net, rule, batches, top: int) -> list[dict]:
    """Self CPU µs per step of each torch operation run inside the optimizer step (profiler event tree)."""
    opt = rule.optimizer
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for xb, yb in batches:
            opt.zero_grad(set_to_none=True)
            _closure(net, xb, yb)()
            with record_function("optimizer.step"):
                opt.step()
    sums: dict[str, float] = {}
    for e in prof.events():
        parent = e.cpu_parent
        while parent is not None and parent.name != "optimizer.step":
            parent = parent.cpu_parent
        if parent is not None:
            sums[e.name] = sums.get(e.name, 0.0) + e.self_cpu_time_total
    ops = [{"op": k, "self_us_per_step": v / len(batches)} for k, v in sums.items()]
    return sorted(ops, key=lambda o: -o["self_us_per_step"])[:top]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(MODELS))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--out", default=str(HERE / "out" / "step_profile.json"))
    args = ap.parse_args()
    torch.set_flush_denormal(True)
    results = {}
    for model in args.only.split(","):
        total = args.steps * (args.repeats + 1)
        runs = {m: _setup(model, m.split("-")[0], args.batch, total) for m in METHODS}
        runs["conntra-torch"][1].optimizer.kernel = "torch"  # the same rule as torch operations (the "before")
        for m in METHODS:  # warm-up
            _phases(*runs[m][:2], runs[m][2][:args.steps])
        times = {m: [] for m in runs}
        for r in range(1, args.repeats + 1):
            for m in (METHODS if r % 2 else METHODS[::-1]):
                net, rule, batches = runs[m]
                times[m].append(_phases(net, rule, batches[r * args.steps:(r + 1) * args.steps]))
        row = {}
        for m, ts in times.items():
            fb, st = statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)
            row[m] = {"forward_backward_us": fb, "step_us": st, "total_us": fb + st}
        net, rule, batches = _setup(model, "conntra", args.batch, args.steps)
        _phases(net, rule, batches[: args.steps // 4])
        row["conntra_step_ops"] = _step_ops(net, rule, batches, args.top)
        results[model] = row
        f, c = row["float"], row["conntra"]
        print(f"\n{model} ({MODELS[model]}), batch {args.batch}: CPU µs per step, median of {args.repeats} x "
              f"{args.steps} steps")
        print(f"{'method':<14}{'fwd+bwd':>10}{'step':>10}{'total':>10}{'x float':>9}")
        for m in METHODS:
            r = row[m]
            print(f"{m:<14}{r['forward_backward_us']:10.0f}{r['step_us']:10.0f}{r['total_us']:10.0f}"
                  f"{r['total_us'] / f['total_us']:9.2f}")
        print(f"conntra step, self CPU µs per step by operation (profiler, with its own overhead), "
              f"step total {c['step_us']:.0f}:")
        for o in row["conntra_step_ops"]:
            print(f"  {o['op']:<40}{o['self_us_per_step']:8.1f}")
        sys.stdout.flush()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"batch": args.batch, "steps": args.steps, "repeats": args.repeats,
                               "torch": torch.__version__, "results": results}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
