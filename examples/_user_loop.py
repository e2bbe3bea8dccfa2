"""The examples' training script: your own loop with `ternkit.optim.CoNNTrA`, then trace, export, report.

It draws batches exactly as `ternkit train` does (same split, normalisation, order and seed), so
`ternkit train --model examples/<name>.py:build` gives the same artifact.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import ternkit
from ternkit.core import load_split, normalisation


def train_in_user_loop(build, dataset: str = "mnist-sample", epochs: int = 10, seed: int = 0, batch_size: int = 64,
                       lr: float = 1e-3, method: str = "conntra") -> ternkit.TernaryModel:
    split = load_split(dataset, seed, 0.2)
    mean, std = normalisation(split.train)
    x = torch.from_numpy(((split.train.x - mean) / std).astype(np.float32))
    y = torch.from_numpy(split.train.y)
    torch.manual_seed(seed)
    model = ternkit.ternarize(build(split.train.shape, len(split.train.labels)), method=method)
    steps = epochs * -(-len(x) // batch_size)
    opt = (ternkit.optim.CoNNTrA(model, lr=lr, total_steps=steps) if method == "conntra"
           else torch.optim.Adam(model.parameters(), lr=lr))
    model.train()
    for epoch in range(epochs):  # ---- the user loop
        order = np.random.default_rng([seed, epoch]).permutation(len(x))
        for b in range(0, len(x), batch_size):
            idx = order[b:b + batch_size]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    ternkit.recalibrate_batchnorm(model, x)  # BatchNorm statistics for the final (discrete) weights
    return ternkit.to_artifact(model, x[:1], labels=split.train.labels, normalisation=(mean, std))


def main(build, name: str) -> None:
    ap = argparse.ArgumentParser(description=f"train the {name} example with ternkit.optim.CoNNTrA in a user loop")
    ap.add_argument("--dataset", default="mnist-sample")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=f"runs/{name}")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = train_in_user_loop(build, args.dataset, args.epochs, args.seed)
    ternkit.save_model(model, out / "model.tern")
    data = ternkit.load_dataset(args.dataset)
    print(f"{name}: {len(model.nodes)} nodes ({', '.join(sorted({n.op.kind for n in model.nodes}))}); "
          f"accuracy on {args.dataset} {float((model.predict(data.x) == data.y).mean()):.4f}")
    ternkit.export_onnx(model, out / "model.onnx")
    from ternkit.export.lava.graph import build_graph, save_graph
    from ternkit.targets import build_report, load_target, write_report

    save_graph(build_graph(model, data.x[:500]), out / "model.lava.json")
    report = build_report(model, [load_target(t) for t in ("loihi2", "mcu", "cpu-fp32")], x=data.x[:200])
    write_report(report, out / "report")
    print(f"wrote {out}/model.tern, model.onnx, model.lava.json and report/")
