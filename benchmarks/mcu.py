"""The C export on a microcontroller, measured: MNIST MLP 784-256-10 and the CNN, ternary int8 C against
emlearn's float C of an sklearn MLPClassifier of the same layers, both built for the same Cortex-M4 the same
way (arm-none-eabi-gcc -O2 -mcpu=cortex-m4 -mthumb, qemu mps2-an386, -icount).

Per model: host C (system cc) vs the numpy emulation on the whole official MNIST test set (bit-identical?),
argmax agreement with `TernaryModel.forward`, accuracy; the Cortex-M4 build in qemu on the first N test
images (identical to the host?), model flash (text + rodata + data of the model's object), RAM (data + bss +
stack high-water mark of one inference), instructions per inference and per MAC (conv padding included).
Each ternkit model is built three ways: portable kernels with 2-bit weights (`--target generic`), the Cortex-M4
SIMD kernels with 2-bit weights and with 1.6-bit base-3 weights (`--target cortex-m4 --packing 2bit|base3`).

    python benchmarks/mcu.py [--mnist-test DIR] [--m4-images 200] [--mlp M.tern] [--cnn C.tern] [--out FILE]

Models missing at --mlp/--cnn are trained first with `ternkit train --dataset mnist-sample --model mlp:256|cnn
--epochs 30 --val-fraction 0`. emlearn: `pip install emlearn` (0.23.2 measured).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/onnx.py would shadow the onnx package that ternkit.export imports: drop this folder from the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from ternkit.core import load_dataset, load_model  # noqa: E402
from ternkit.export.c.build import (  # noqa: E402
    CFLAGS,
    M4_CFLAGS,
    M4_LDFLAGS,
    MCU_DIR,
    build_host,
    build_m4,
    instructions_per_tick,
    object_sizes,
    require_tools,
    run_host,
    run_m4,
    undefined_symbols,
)
from ternkit.export.c.emit import write_c  # noqa: E402
from ternkit.export.c.program import build_program, emulate  # noqa: E402
from ternkit.export.c.stack import plan_stack  # noqa: E402
from ternkit.export.calibration import calibration_data  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_TEST = HERE.parent.parent / "shared" / "datasets" / "mnist"
TRAIN = {"mlp": "mlp:256", "cnn": "cnn"}
CONFIGS = (("generic", "2bit"), ("cortex-m4", "2bit"), ("cortex-m4", "base3"), ("generic", "base3"))  # kernels, packing


def _train(kind: str, path: Path, test_spec: str) -> None:
    cmd = [sys.executable, "-m", "ternkit", "train", "--dataset", "mnist-sample", "--model", TRAIN[kind],
           "--epochs", "30", "--val-fraction", "0", "--test", test_spec, "--quiet", "--out", str(path)]
    print("training:", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def _m4_figures(obj: Path, run) -> dict:
    sec = object_sizes(obj)
    plan = plan_stack(obj.with_suffix(".ci"))  # GCC's frames on tk_predict's deepest path (build_m4 writes it)
    insns = run.ticks * instructions_per_tick()
    return {"flash_bytes": sec["text"] + sec["rodata"] + sec["data"], "sections": sec,
            "ram_bytes": sec["data"] + sec["bss"] + int(run.stack.max()), "stack_bytes": int(run.stack.max()),
            "static_ram_bytes": sec["data"] + sec["bss"], "instructions_per_inference": float(insns.mean()),
            "instructions_min": int(insns.min()), "instructions_max": int(insns.max()),
            "stack_planned_bytes": plan.bytes, "ram_planned_bytes": sec["bss"] + plan.bytes if plan.bytes else None,
            "library_symbols": undefined_symbols(obj), "m4_seconds": run.seconds}


def _macs(model) -> int:
    """MACs the kernels execute (conv padding positions included), as the per-MAC figures count them."""
    shapes = model.shape_map()
    total = 0
    for n in model.nodes:
        w = getattr(n.op, "weight", None)
        if w is not None:
            total += w.size if w.ndim == 2 else int(np.prod(shapes[n.name])) * int(np.prod(w.shape[1:]))
    return total


def ternkit_row(name: str, path: Path, test, n_m4: int, target: str = "generic", packing: str = "2bit") -> dict:
    model = load_model(path)
    calib, _, spec = calibration_data(model, None, where=str(path))
    prog = build_program(model, calib, spec, target=target, packing=packing)
    with tempfile.TemporaryDirectory(prefix="tk-bench-") as tmp:
        tmp = Path(tmp)
        write_c(prog, tmp / "c")
        t0 = time.perf_counter()
        host = run_host(build_host(tmp / "c", tmp), test.x, prog.classes, tmp)
        host_s = time.perf_counter() - t0
        em = emulate(prog, test.x)
        ref = model.predict(test.x)
        art = build_m4(tmp / "c", tmp)
        m4 = run_m4(art["elf"], test.x[:n_m4], prog.classes, tmp)
        bits = {"2bit": "2-bit", "base3": "1.6-bit base-3"}[packing]
        row = {"name": name, "model": str(path), "kind": f"ternkit int8 C, {target} kernels, {bits} weights",
               "target": target, "packing": packing, "macs": _macs(model),
               "arena_bytes": prog.arena_bytes,
               "host_identical_to_emulation": bool(np.array_equal(host.scores, em)),
               "host_mismatched_samples": int((host.scores != em).any(1).sum()),
               "agreement_with_reference": float((host.predicted == ref).mean()),
               "accuracy": float((host.predicted == test.y).mean()),
               "reference_accuracy": float((ref == test.y).mean()), "test_samples": len(test),
               "m4_samples": n_m4, "m4_identical_to_host": bool(np.array_equal(m4.scores, host.scores[:n_m4])),
               "m4_accuracy": float((m4.predicted == test.y[:n_m4]).mean()), "host_seconds": host_s,
               "timer_check": m4.calibration, **_m4_figures(art["object"], m4)}
    row["instructions_per_mac"] = row["instructions_per_inference"] / row["macs"]
    return row


EML_HEADER = """#ifndef TK_MODEL_H
#define TK_MODEL_H
#include <stdint.h>
#define TK_INPUTS 784
#define TK_CLASSES 10
void tk_quantize(const float *raw, int8_t *q);
int tk_predict(const int8_t *q, int32_t *scores);
#endif
"""
# the harness's API over emlearn's: features = raw / 255 (the sklearn model's scaling, outside the timed call)
EML_ADAPTER = """#include "model.h"
int32_t mlp_predict(const float *features, int32_t n_features);
static float features[TK_INPUTS];
void tk_quantize(const float *raw, int8_t *q) {
    (void)q;
    for (int i = 0; i < TK_INPUTS; i++) features[i] = raw[i] / 255.0f;
}
int tk_predict(const int8_t *q, int32_t *scores) {
    (void)q;
    for (int i = 0; i < TK_CLASSES; i++) scores[i] = 0;
    return (int)mlp_predict(features, TK_INPUTS);
}
"""


def emlearn_row(test, n_m4: int, hidden: int = 256, max_iter: int = 30) -> dict:
    import emlearn
    from sklearn.neural_network import MLPClassifier

    train = load_dataset("mnist-sample")
    xtr, xte = train.x.reshape(len(train), -1) / 255.0, test.x.reshape(len(test), -1) / 255.0
    t0 = time.perf_counter()
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), activation="relu", max_iter=max_iter, random_state=0)
    with np.errstate(under="ignore"):  # Adam's squared gradients underflow harmlessly
        clf.fit(xtr, train.y)
    fit_s = time.perf_counter() - t0
    sk_pred = clf.predict(xte)
    code = emlearn.convert(clf, method="loadable").save(name="mlp")
    inc = os.path.dirname(emlearn.__file__)
    gcc = require_tools("cortex-m4")["gcc"]
    with tempfile.TemporaryDirectory(prefix="eml-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "model.h").write_text(EML_HEADER)
        (tmp / "emlearn_mlp.h").write_text(code)
        (tmp / "model.c").write_text('#include "emlearn_mlp.h"\n')
        (tmp / "adapter.c").write_text(EML_ADAPTER)
        cc = require_tools("c")["cc"]
        subprocess.run([cc, *CFLAGS, "-I", str(tmp), "-I", inc, str(tmp / "model.c"), str(tmp / "adapter.c"),
                        str(MCU_DIR / "harness.c"), "-lm", "-o", str(tmp / "host")], check=True, capture_output=True)
        host = run_host(tmp / "host", test.x, 10, tmp)
        base = [gcc, *CFLAGS, *M4_CFLAGS, "-I", str(tmp), "-I", inc]
        subprocess.run([*base, "-c", str(tmp / "model.c"), "-o", str(tmp / "model.o")], check=True,
                       capture_output=True)
        subprocess.run([*base, "-DTK_FIRMWARE", str(tmp / "model.o"), str(tmp / "adapter.c"),
                        str(MCU_DIR / "harness.c"), str(MCU_DIR / "startup.c"), "-T", str(MCU_DIR / "mps2_an386.ld"),
                        *M4_LDFLAGS, "-lm", "-o", str(tmp / "firmware.elf")], check=True, capture_output=True)
        m4 = run_m4(tmp / "firmware.elf", test.x[:n_m4], 10, tmp)
        return {"name": f"emlearn MLP 784-{hidden}-10", "kind": f"emlearn {emlearn.__version__} float32 C "
                f"(sklearn MLPClassifier, {max_iter} epochs)",
                "accuracy": float((host.predicted == test.y).mean()),
                "sklearn_accuracy": float((sk_pred == test.y).mean()),
                "agreement_with_reference": float((host.predicted == sk_pred).mean()), "test_samples": len(test),
                "m4_samples": n_m4, "m4_identical_to_host": bool(np.array_equal(m4.predicted, host.predicted[:n_m4])),
                "m4_accuracy": float((m4.predicted == test.y[:n_m4]).mean()), "fit_seconds": fit_s,
                **_m4_figures(tmp / "model.o", m4)}


def _table(rows: list[dict]) -> str:
    out = ["| model | accuracy (10k) | agreement | host = emulation | M4 = host | flash | RAM (stack) | "
           "instructions / inference | per MAC |", "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        same = r.get("host_identical_to_emulation")
        out.append(f"| {r['name']} ({r['kind']}) | {100 * r['accuracy']:.2f} % | "
                   f"{100 * r['agreement_with_reference']:.2f} % | "
                   f"{'yes' if same else 'n/a' if same is None else 'NO'} | "
                   f"{'yes' if r['m4_identical_to_host'] else 'NO'} ({r['m4_samples']}) | "
                   f"{r['flash_bytes'] / 1024:.1f} KiB | {r['ram_bytes']:,} B ({r['stack_bytes']} B) | "
                   f"{r['instructions_per_inference'] / 1e6:.3f} M | "
                   f"{r['instructions_per_mac']:.2f} |" if "instructions_per_mac" in r else
                   f"{r['instructions_per_inference'] / 1e6:.3f} M | – |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist-test", default=str(DEFAULT_TEST), help="directory of the official MNIST test set")
    ap.add_argument("--m4-images", type=int, default=200, help="test images run on the Cortex-M4 (default 200)")
    ap.add_argument("--mlp", default="runs/mcu/mlp256.tern", help="MLP 784-256-10 (.tern; trained if missing)")
    ap.add_argument("--cnn", default="runs/mcu/cnn.tern", help="the CNN (.tern; trained if missing)")
    ap.add_argument("--skip-emlearn", action="store_true")
    ap.add_argument("--out", default=str(HERE / "out" / "mcu.json"))
    args = ap.parse_args()
    require_tools("c")
    require_tools("cortex-m4")
    spec = f"idx:{args.mnist_test}:t10k"
    test = load_dataset(spec)
    rows = []
    for kind, path in (("mlp", Path(args.mlp)), ("cnn", Path(args.cnn))):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _train(kind, path, spec)
        for target, packing in CONFIGS:
            rows.append(ternkit_row({"mlp": "ternkit MLP 784-256-10", "cnn": "ternkit CNN 16c5s2-32c5s2-100"}[kind],
                                    path, test, args.m4_images, target, packing))
            print(_table(rows[-1:]), flush=True)
    if not args.skip_emlearn:
        rows.append(emlearn_row(test, args.m4_images))
    print(_table(rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"test": spec, "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
