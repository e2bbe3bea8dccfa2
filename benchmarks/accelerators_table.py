"""Markdown tables from runs of accelerators.py (one or more JSON files per seed): every Δ and speed-up is
taken within one run, then shown per seed and as the mean over seeds.

    .venv/bin/python benchmarks/accelerators_table.py benchmarks/out/accelerators-e20-s*.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def _key(row: dict) -> tuple:
    return row["method"], row["width"], row["name"]


def _fmt(values: list[float], spec: str, sign: bool = False) -> str:
    f = ("{:+" + spec + "}") if sign else ("{:" + spec + "}")
    per = " / ".join(f.format(v).replace("-", "−") for v in values)
    if len(values) == 1:
        return per
    return f"{per} (mean {f.format(statistics.mean(values)).replace('-', '−')})"


def approx_table(runs: list[dict[tuple, dict]]) -> list[str]:
    out = ["| method | technique | test % | Δ vs exact, pp | MACs | wall s / epoch | Δ time |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for method in ("float", "ste", "conntra"):
        base = (method, 800, "exact")
        if base not in runs[0]:
            continue
        names = [k[2] for k in runs[0] if k[0] == method and k[1] == 800 and not k[2].startswith(("mask", "batch"))]
        for name in names:
            rows = [r[(method, 800, name)] for r in runs]
            exact = [r[base] for r in runs]
            acc = [row["test_acc"] for row in rows]
            t = [row["epoch_wall_median"] for row in rows]
            if name == "exact":
                out.append(f"| {method} | exact | {_fmt(acc, '.2f')} | – | 1.000 | {_fmt(t, '.2f')} | – |")
                continue
            d_acc = [a - e["test_acc"] for a, e in zip(acc, exact, strict=True)]
            d_t = [100 * (row["epoch_wall_median"] / e["epoch_wall_median"] - 1)
                   for row, e in zip(rows, exact, strict=True)]
            macs = statistics.mean(row["mac_ratio"] for row in rows)
            out.append(f"| {method} | {name} | {_fmt(acc, '.2f')} | {_fmt(d_acc, '.2f', True)} | {macs:.3f} | "
                       f"{_fmt(t, '.2f')} | {_fmt(d_t, '.0f', True)} % |")
    return out


def dropout_table(runs: list[dict[tuple, dict]]) -> list[str]:
    out = ["| method | W | mask test % | batchwise test % | Δ, pp | batchwise MACs | wall s / epoch, mask → batchwise "
           "| speed-up |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    pairs = sorted({(k[0], k[1]) for k in runs[0] if k[2] == "mask:0.5"},
                   key=lambda mw: (("float", "ste", "conntra").index(mw[0]), mw[1]))
    for method, width in pairs:
        mask = [r[(method, width, "mask:0.5")] for r in runs]
        bw = [r[(method, width, "batchwise:0.5")] for r in runs]
        d = [b["test_acc"] - m["test_acc"] for m, b in zip(mask, bw, strict=True)]
        sp = [m["epoch_wall_median"] / b["epoch_wall_median"] for m, b in zip(mask, bw, strict=True)]
        times = "; ".join(f"{m['epoch_wall_median']:.2f} → {b['epoch_wall_median']:.2f}"
                          for m, b in zip(mask, bw, strict=True))
        out.append(f"| {method} | {width} | {_fmt([m['test_acc'] for m in mask], '.2f')} | "
                   f"{_fmt([b['test_acc'] for b in bw], '.2f')} | {_fmt(d, '.2f', True)} | "
                   f"{statistics.mean(b['mac_ratio'] for b in bw):.3f} | {times} | {_fmt(sp, '.2f')}× |")
    for key in [k for k in runs[0] if "+" in k[2]]:
        method = key[0]
        rows = [r[key] for r in runs]
        exact = [r.get((method, 800, "exact")) for r in runs]
        if None in exact:
            continue
        d = [row["test_acc"] - e["test_acc"] for row, e in zip(rows, exact, strict=True)]
        sp = [e["epoch_wall_median"] / row["epoch_wall_median"] for row, e in zip(rows, exact, strict=True)]
        out.append(f"| {method}, {key[2]} | 800 | (exact) {_fmt([e['test_acc'] for e in exact], '.2f')} | "
                   f"{_fmt([row['test_acc'] for row in rows], '.2f')} | {_fmt(d, '.2f', True)} vs exact | "
                   f"{statistics.mean(row['mac_ratio'] for row in rows):.3f} | vs exact | {_fmt(sp, '.2f')}× |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="JSON files written by accelerators.py (one per seed)")
    args = ap.parse_args()
    data = [json.loads(p.read_text()) for p in args.runs]
    by_seed: dict[int, dict[tuple, dict]] = {}  # files of one seed (e.g. a run with --skip) are merged
    for d in data:
        by_seed.setdefault(d["seed"], {}).update({_key(row): row for row in d["rows"]})
    runs = [by_seed[seed] for seed in sorted(by_seed)]
    print(f"seeds {', '.join(map(str, sorted(by_seed)))}; {data[0]['epochs']} epochs, batch {data[0]['batch_size']}")
    print("\n".join(approx_table(runs)))
    print()
    print("\n".join(dropout_table(runs)))


if __name__ == "__main__":
    main()
