"""Do the defaults reproduce the docs? Each headline training figure of docs/benchmarks.md, run as the
`ternkit train` command a user would type: defaults only, except what the claim itself names (dataset, model,
epochs, method, and for MNIST the claim's "all 5,000 images, official test set": --val-fraction 0 --test).

    OMP_NUM_THREADS=1 python benchmarks/defaults.py [--only iris,digits,...] [--mnist-test DIR]

Prints claim vs result per figure and writes benchmarks/out/defaults.json (the commands, every run's metrics
summary and the schedule the defaults chose).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_TEST = HERE.parent.parent / "shared" / "datasets" / "mnist"
MNIST = ["--dataset", "mnist-sample", "--val-fraction", "0", "--test", "idx:{test}"]


def _claims() -> dict[str, dict]:
    """name -> the figure as docs/benchmarks.md states it, and the command (per seed) that should give it.

    kind "accuracy": mean accuracy (test set if the command has one, else validation) over the seeds, per method
    (the first --method and every --compare). kind "prune": accuracy after --prune. kind "gain": mean of
    (accuracy with the command's extra flags) - (accuracy without them) over the seeds."""
    return {
        "mnist-256": dict(kind="accuracy", seeds=[0, 1, 2], tolerance=0.3,
                          claim={"conntra": 94.64, "float": 94.24, "ste": 93.28},
                          argv=[*MNIST, "--model", "mlp:256", "--epochs", "30", "--compare", "float",
                                "--compare", "ste"]),
        "mnist-512": dict(kind="accuracy", seeds=[0], tolerance=0.5, claim={"conntra": 94.82, "float": 94.61},
                          argv=[*MNIST, "--model", "mlp:512", "--epochs", "30", "--compare", "float"]),
        "iris": dict(kind="accuracy", seeds=[0, 1, 2, 3, 4], tolerance=1.4,
                     claim={"conntra": 96.0, "ste": 96.0, "float": 96.0},
                     argv=["--dataset", "iris", "--model", "mlp:16", "--epochs", "100", "--compare", "ste",
                           "--compare", "float"]),
        "iris-10": dict(kind="accuracy", seeds=[0, 1, 2, 3, 4], tolerance=1.4,
                        claim={"conntra": 96.0, "ste": 96.0, "float": 96.0},
                        note="the issue's first run (was 53-63 %), against the 100-epoch figure",
                        argv=["--dataset", "iris", "--model", "mlp:16", "--epochs", "10", "--compare", "ste",
                              "--compare", "float"]),
        "digits": dict(kind="accuracy", seeds=[0, 1, 2], tolerance=0.7,
                       claim={"conntra": 97.77, "ste": 95.82, "float": 96.66},
                       argv=["--dataset", "digits", "--model", "mlp:64", "--epochs", "30", "--compare", "ste",
                             "--compare", "float"]),
        "halo-float": dict(kind="prune", seeds=[0], tolerance=0.5, claim={"float": 93.85},
                           argv=[*MNIST, "--model", "mlp:300x100", "--method", "float", "--epochs", "30",
                                 "--penalty", "halo", "--prune", "0.95"]),
        "halo-conntra": dict(kind="prune", seeds=[0], tolerance=0.5, claim={"conntra": 93.91},
                             argv=[*MNIST, "--model", "mlp:300x100", "--method", "conntra", "--epochs", "30",
                                   "--penalty", "halo", "--prune", "0.95"]),
        "widen": dict(kind="gain", seeds=[0, 1, 2], tolerance=None, claim={"conntra": 1.05},
                      note="the docs' single-seed +1.05 pp (target >= +1 pp); default --val-fraction, as typed",
                      argv=["--dataset", "mnist-sample", "--test", "idx:{test}", "--model", "mlp:32x32", "--method",
                            "conntra", "--epochs", "30"], extra=["--widen", "4"]),
    }


def ternkit_train(argv: list[str], workdir: Path) -> tuple[dict, float]:
    """One `ternkit train ... --json` in a fresh process, as a user runs it; returns its metrics JSON."""
    cmd = [sys.executable, "-m", "ternkit", "train", *argv, "--quiet", "--json", "--out", str(workdir / "m.tern")]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


def _accuracy(m: dict) -> float:
    err = m["test_error"] if "test_error" in m else m["val_error"]
    return 100 * (1 - err)


def _per_method(metrics: dict, argv: list[str]) -> dict[str, dict]:
    """--json prints one method's metrics, or (with --compare) {method: metrics}."""
    return metrics if "--compare" in argv else {metrics["method"]: metrics}


def run_claim(name: str, c: dict, test: str, workdir: Path) -> dict:
    argv = [a.replace("{test}", test) for a in c["argv"]]
    runs, results = [], {m: [] for m in c["claim"]}
    for seed in c["seeds"]:
        seeded = [*argv, "--seed", str(seed)]
        metrics, seconds = ternkit_train(seeded, workdir)
        per = _per_method(metrics, seeded)
        if c["kind"] == "gain":
            wide, wide_s = ternkit_train([*seeded, *c["extra"]], workdir)
            for m in results:
                results[m].append(_accuracy(wide) - _accuracy(per[m]))
            runs.append({"seed": seed, "direct": _accuracy(per[c["argv"][c["argv"].index("--method") + 1]]),
                         "wide": _accuracy(wide), "seconds": seconds + wide_s,
                         "schedule": wide["schedule"]})
        else:
            for m in results:
                results[m].append(_accuracy(per[m]))
            first = next(iter(per.values()))
            runs.append({"seed": seed, "accuracy": {m: _accuracy(per[m]) for m in results}, "seconds": seconds,
                         "schedule": first["schedule"],
                         "sparsity": first.get("prune", {}).get("sparsity")})
        print(f"  {name} seed {seed}: " + ", ".join(f"{m} {v[-1]:+.2f}" if c["kind"] == "gain" else
                                                    f"{m} {v[-1]:.2f} %" for m, v in results.items())
              + f"  ({runs[-1]['seconds']:.0f} s)", flush=True)
    rows = []
    for m, vals in results.items():
        mean = statistics.fmean(vals)
        diff = mean - c["claim"][m]
        if c["kind"] == "gain":
            verdict = "meets the +1 pp target" if mean >= 1.0 else "under the +1 pp target"
        else:
            verdict = "reproduced" if diff >= -c["tolerance"] else f"below (more than {c['tolerance']} pp)"
        rows.append({"method": m, "claim": c["claim"][m], "result": mean, "per_seed": vals, "difference": diff,
                     "verdict": verdict})
    command = "ternkit train " + " ".join(a.replace(test, "DIR") for a in argv) + (
        f" [{' '.join(c['extra'])}]" if c["kind"] == "gain" else "")
    return {"command": command, "kind": c["kind"], "seeds": c["seeds"], "note": c.get("note"), "rows": rows,
            "runs": runs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    claims = _claims()
    ap.add_argument("--only", default=",".join(claims), help="comma-separated claim names")
    ap.add_argument("--mnist-test", type=Path, default=DEFAULT_TEST, help="directory of the official MNIST test set")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "defaults.json")
    args = ap.parse_args()
    names = args.only.split(",")
    unknown = [n for n in names if n not in claims]
    if unknown:
        print(f"unknown claim(s) {', '.join(unknown)}; choose from {', '.join(claims)}", file=sys.stderr)
        return 2
    if any("{test}" in " ".join(claims[n]["argv"]) for n in names) and not args.mnist_test.is_dir():
        print(f"MNIST test set not found at {args.mnist_test}; pass --mnist-test DIR", file=sys.stderr)
        return 2
    out: dict = {"claims": {}, "threads": 1}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            out["claims"][name] = run_claim(name, claims[name], str(args.mnist_test), Path(tmp))
    out["seconds"] = time.perf_counter() - t0
    print(f"\n{'claim':<13} {'method':<8} {'docs':>7} {'defaults':>9} {'diff':>6}  verdict   (accuracy %, gain pp)")
    for name, r in out["claims"].items():
        for row in r["rows"]:
            print(f"{name:<13} {row['method']:<8} {row['claim']:7.2f} {row['result']:9.2f} {row['difference']:+6.2f}"
                  f"  {row['verdict']}")
        print(f"{'':<13} {r['command']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from ternkit.core.atomic import write_text

    write_text(args.out, json.dumps(out, indent=2))
    print(f"\nwrote {args.out} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
