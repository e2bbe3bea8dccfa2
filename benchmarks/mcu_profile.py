"""Where the instructions of a Cortex-M4 build go: instructions per step of tk_predict (and per stage of a
streamed conv chain), measured in qemu (mps2-an386, -icount) by reading SysTick around every kernel call.

The generated model.c is patched for this run only (a tick counter around each call of tk_predict and around
each row call inside tk_chain); the model object that `mlperf_tiny.py` measures is untouched. The counter costs a
few instructions per call, which lands in the step it wraps.

    python benchmarks/mcu_profile.py --model ds-cnn [--packing 2bit] [--steps 30] [--cache DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from ternkit.core.io import load_model, save_model  # noqa: E402
from ternkit.export.c.build import (  # noqa: E402
    CFLAGS,
    M4_CFLAGS,
    M4_LDFLAGS,
    MCU_DIR,
    instructions_per_tick,
    require_tools,
)
from ternkit.export.c.emit import write_c  # noqa: E402
from ternkit.export.c.program import build_program  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mlperf_tiny  # noqa: E402

sys.path.pop(0)

SLOTS = 256  # tk_prof[k]: ticks of step k (top-level call or chain stage)
COUNTER = (f"\nvolatile uint32_t tk_prof[{SLOTS}];\n"
           "#define TK_NOW() (*(volatile uint32_t *)0xE000E018u)\n"
           "#define TK_TIMED(k, ...) do { uint32_t t0_ = TK_NOW(); __VA_ARGS__; "
           "tk_prof[k] += (t0_ - TK_NOW()) & 0xFFFFFFu; } while (0)\n")

HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include "model.h"
extern volatile uint32_t tk_prof[];
void SysTick_Handler(void) {}
static float raw[TK_INPUTS];
static int8_t q[TK_INPUTS];
static int32_t scores[TK_CLASSES];
int main(void) {
    FILE *in = fopen("input.bin", "rb"), *out = fopen("prof.bin", "wb");
    if (!in || !out || fread(raw, sizeof(float), TK_INPUTS, in) != TK_INPUTS) return 3;
    *(volatile uint32_t *)0xE000E014u = 0xFFFFFFu;
    *(volatile uint32_t *)0xE000E018u = 0u;
    *(volatile uint32_t *)0xE000E010u = 5u; /* enable, processor clock, no interrupt (wraps are masked) */
    tk_quantize(raw, q);
    tk_predict(q, scores);
    fwrite((const void *)tk_prof, 4, SLOTS_, out);
    fclose(out);
    return 0;
}
""".replace("SLOTS_", str(SLOTS))


def _patch(src: str, prog) -> str:
    """model.c with a tick counter around each call of tk_predict (slot = its step) and around each stage call
    of tk_chain (slot SLOTS/2 + the stage's step, through a table of the chain's steps set before the call)."""
    head, _, body = src.partition("int tk_predict(")
    callers = iter([k for k, st in enumerate(prog.steps) if not st.ring])
    chains = _chains(prog)
    out = []
    for line in body.split("\n"):
        if line.startswith(("    tk_", "    { const", "    { static const")):
            k = next(callers)
            tab = ", ".join(str(s) for s in chains.get(k, [k]))
            line = (f"    {{ static const int32_t tk_slots[] = {{{tab}}}; tk_slot = tk_slots; "
                    f"TK_TIMED({k}, {line.strip()}); }}")
        out.append(line)
    stage = ("tk_conv_simd(s[j].p, s[j].x, col, j == n - 1 ? y8 : s[j].y, j == n - 1 ? y32 : 0, done[j], "
             "done[j] + 1);", "tk_conv_simd(s[j].p, s[j].x, col, s[j].y, 0, done[j], done[j] + 1);")
    assert any(c in head for c in stage) or not chains, "tk_chain's stage call changed: update the profiler"
    for call in stage:  # tk_chain's, and tk_chain_pool's / tk_chain_dense's (a chain streamed into a sink)
        head = head.replace(call, f"TK_TIMED({SLOTS // 2} + tk_slot[j], {call[:-1]});")
    decl = COUNTER + "static const int32_t *tk_slot;\n"
    head = head.replace('#include "model.h"\n', '#include "model.h"\n' + decl, 1)
    return head + "int tk_predict(" + "\n".join(out)


def _chains(prog) -> dict[int, list[int]]:
    """last step of each streamed chain -> the chain's conv steps in order (a pooling or dense layer the chain
    streams into is not a stage: its own work is its call's ticks less its stages')."""
    out = {}
    for k, st in enumerate(prog.steps):
        if st.streams_from >= 0 and not st.ring:
            out[k] = list(range(st.streams_from, k + (st.kind == "conv2d")))
    return out


def _describe(st) -> str:
    if st.kind != "conv2d":
        return f"{st.kind} {list(st.out_shape)}"
    op = st.op
    dw = op.groups > 1 and op.weight.shape[1] == 1
    return (f"{'dw' if dw else 'conv'} {op.kernel[0]}x{op.kernel[1]}/{op.stride[0]} {list(st.in_shapes[0])}"
            f"->{list(st.out_shape)}")


def profile(prog, x: np.ndarray) -> list[tuple[int, str, float, int]]:
    """[(step, description, instructions, MACs)] of one inference of `x` (one sample)."""
    tools = require_tools("cortex-m4")
    chains = _chains(prog)
    with tempfile.TemporaryDirectory(prefix="tk-prof-") as tmp:
        tmp = Path(tmp)
        write_c(prog, tmp / "c")
        src = (tmp / "c" / "model.c").read_text()
        (tmp / "c" / "model.c").write_text(_patch(src, prog))
        (tmp / "h.c").write_text(HARNESS)
        elf = tmp / "fw.elf"
        subprocess.run([tools["gcc"], *CFLAGS, *M4_CFLAGS, "-DTK_FIRMWARE", "-I", str(tmp / "c"),
                        str(tmp / "c" / "model.c"), str(tmp / "h.c"), str(MCU_DIR / "startup.c"), "-T",
                        str(MCU_DIR / "mps2_an386.ld"), *M4_LDFLAGS, "-o", str(elf)], check=True)
        np.ascontiguousarray(x[:1], np.float32).tofile(tmp / "input.bin")
        subprocess.run([tools["qemu"], "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
                        "-semihosting-config", "enable=on,target=native", "-icount", "shift=3", "-kernel",
                        str(elf)], cwd=tmp, check=True, capture_output=True, timeout=600)
        ticks = np.fromfile(tmp / "prof.bin", np.uint32).astype(np.int64)
    per = instructions_per_tick()
    rows = []
    in_chain = {s for ks in chains.values() for s in ks}
    for k, st in enumerate(prog.steps):
        t = ticks[SLOTS // 2 + k] if k in in_chain else ticks[k]
        if k in chains and k not in in_chain:  # a sink: its call less the conv rows made inside it
            t = ticks[k] - sum(ticks[SLOTS // 2 + j] for j in chains[k])
        macs = int(np.prod(st.out_shape)) * int(np.prod(st.op.weight.shape[1:])) if st.kind == "conv2d" else (
            int(st.op.weight.size) if st.kind == "dense" else 0)
        rows.append((k, _describe(st), float(t) * per, macs))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=tuple(mlperf_tiny.MODELS), default="ds-cnn")
    ap.add_argument("--packing", choices=("2bit", "base3"), default="2bit")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--cache", default=str(HERE / "out" / "profile"), help="trained models are kept here")
    args = ap.parse_args()
    path = Path(args.cache) / f"{args.model}-{args.steps}.tern"
    if path.is_file():
        model = load_model(path)
    else:
        model = mlperf_tiny.train(args.model, args.steps)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(model, path)
    _, shape, classes = mlperf_tiny.MODELS[args.model]
    calib, _ = mlperf_tiny.stand_in(shape, classes, 256, 1)
    prog = build_program(model, calib, "stand-in", target="cortex-m4", packing=args.packing)
    rows = profile(prog, calib)
    total = sum(r[2] for r in rows)
    print(f"{args.model} {args.packing}: {total / 1e6:.2f} M instructions, "
          f"{total / max(1, sum(r[3] for r in rows)):.2f} per MAC")
    print("| step | layer | instructions | share | MACs | per MAC |")
    for k, desc, ins, macs in rows:
        print(f"| {k} | {desc} | {ins:,.0f} | {100 * ins / total:.1f} % | {macs:,} | "
              f"{ins / macs if macs else float('nan'):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
