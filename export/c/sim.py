"""Run a C export on data and say how it did: `simulate_c` builds the C for the host (`c`) or a Cortex-M4
in qemu (`cortex-m4`), runs every sample through tk_quantize + tk_predict, checks the scores against the
numpy emulation (bit for bit) and the predictions against `TernaryModel.forward`, and returns an activity
record. The Cortex-M4 record carries what the build measured: flash and RAM of the model's object
(arm-none-eabi-size), the stack high-water mark of tk_predict, and instructions per inference.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ternkit.core.atomic import atomic_dir
from ternkit.core.model import TernaryModel

from ..activity import activations_activity, activity_record
from .build import (
    M4_CFLAGS,
    build_host,
    build_m4,
    instructions_per_tick,
    object_sizes,
    require_tools,
    run_host,
    run_m4,
    undefined_symbols,
)
from .emit import FILES, check_out_dir, render
from .packing import TRITS_PER_BYTE
from .program import CProgram, build_program, emulate
from .stack import StackPlan, plan_stack

__all__ = ["simulate_c", "run_backend", "c_summary", "RUNS", "BUILD_FILES", "MEASURED_FILE", "mcu_figures",
           "build_figures"]

RUNS = ("c", "cortex-m4")  # where the C runs: a host build, or cross-built for a Cortex-M4 in qemu
MEASURED_FILE = "mcu.json"
BUILD_FILES = (*FILES, "model.o", "model.su", "model.ci", "firmware.elf", "tk_host", "input.bin", "output.bin",
               MEASURED_FILE)


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.splitlines()[0].strip() if out else "unknown"


def mcu_figures(prog: CProgram, obj: Path, stack_bytes: int | None, instructions: np.ndarray | None,
                calibration: dict[str, Any] | None = None, plan: StackPlan | None = None) -> dict[str, Any]:
    """The measured flash / RAM of a Cortex-M4 build (what `ternkit report --target mcu` reads), and beside the
    measured RAM the planned one: the arena + the stack GCC's frames sum to on tk_predict's deepest call path."""
    sec = object_sizes(obj)
    fig: dict[str, Any] = {
        "model_fingerprint": prog.fingerprint, "flash_bytes": sec["text"] + sec["rodata"] + sec["data"],
        "ram_bytes": sec["data"] + sec["bss"] + (stack_bytes or 0),
        "static_ram_bytes": sec["data"] + sec["bss"], "stack_bytes": stack_bytes,
        "arena_bytes": prog.arena_bytes, "sections": sec, "c_target": prog.target, "weight_packing": prog.packing,
        "weight_bits_per_weight": 8 / TRITS_PER_BYTE[prog.packing],
        "caller_buffers_bytes": prog.inputs + 4 * prog.classes,
        "library_symbols": undefined_symbols(obj),
        "measured": ["flash_bytes", "static_ram_bytes"] + (["stack_bytes", "ram_bytes"] if stack_bytes is not None
                                                           else []),
        "cflags": M4_CFLAGS, "compiler": _version(["arm-none-eabi-gcc", "--version"]),
    }
    fig.update(planned_figures(prog.arena_bytes, plan))
    if instructions is not None and instructions.size:
        fig.update(instructions_per_inference=float(instructions.mean()),
                   instructions_min=int(instructions.min()), instructions_max=int(instructions.max()),
                   instruction_counter=f"qemu -icount shift=3 (8 ns of virtual time per instruction), SysTick at "
                   f"25 MHz read around tk_predict: {instructions_per_tick():g} instructions per tick",
                   emulator=_version(["qemu-system-arm", "--version"]))
        fig["measured"].append("instructions_per_inference")
    if calibration:
        fig["timer_check"] = calibration
    return fig


def planned_figures(arena_bytes: int, plan: StackPlan | None) -> dict[str, Any]:
    """The planner's RAM: the arena (TK_ARENA_BYTES) + the planned stack of tk_predict, or why none."""
    if plan is None or plan.bytes is None:
        return {"stack_planned_bytes": None, "ram_planned_bytes": None, "planned": ["arena_bytes"],
                "stack_unplanned": plan.reason if plan else "no call graph"}
    return {"stack_planned_bytes": plan.bytes, "ram_planned_bytes": arena_bytes + plan.bytes,
            "stack_path": [f"{f} {b}" for f, b in zip(plan.path, plan.frames, strict=True)],
            "planned": ["arena_bytes", "stack_planned_bytes", "ram_planned_bytes"]}


def build_figures(build_dir: str | os.PathLike) -> dict[str, Any]:
    """A kept Cortex-M4 build: flash and static RAM measured now from its model.o (arm-none-eabi-size); the
    stack high-water mark and instruction counts its run recorded in mcu.json."""
    from ternkit.core.errors import ArtifactError
    from ternkit.core.readers import read_json

    d = Path(build_dir)
    obj, rec = d / "model.o", d / MEASURED_FILE
    if not obj.is_file() or not rec.is_file():
        raise ArtifactError(f"{d} holds no Cortex-M4 build (model.o and {MEASURED_FILE}): make one with "
                            f"`ternkit simulate MODEL --backend cortex-m4 --build {d}`")
    data = read_json(rec, "measured figures JSON", ArtifactError)
    if not isinstance(data, dict):
        raise ArtifactError(f"{rec}: not a JSON object")
    sec = object_sizes(obj)
    stack = data.get("stack_bytes") if isinstance(data.get("stack_bytes"), int) else None
    arena = data.get("arena_bytes")
    planned = planned_figures(arena, plan_stack(d / "model.ci")) if isinstance(arena, int) else {}
    return {**data, **planned, "sections": sec, "flash_bytes": sec["text"] + sec["rodata"] + sec["data"],
            "static_ram_bytes": sec["data"] + sec["bss"],
            "ram_bytes": sec["data"] + sec["bss"] + (stack or 0) if stack is not None else None}


def simulate_c(model: TernaryModel, x: np.ndarray, y: np.ndarray | None, backend: str, calib_x: np.ndarray, *,
               source: str | None = None, model_path: str = "", dataset: str = "",
               build_dir: str | os.PathLike | None = None, target: str | None = None,
               packing: str = "2bit") -> dict[str, Any]:
    """Export, build, run and check; `build_dir` keeps the build (sources, objects, measured figures).
    `target`: the kernels (default: "cortex-m4" SIMD kernels for that backend, portable C99 for the host)."""
    if backend not in RUNS:
        raise ValueError(backend)
    require_tools(backend)  # before any work: says how to install what is missing
    if build_dir is not None:
        check_out_dir(build_dir, BUILD_FILES)
    x = np.asarray(x, np.float32)
    target = target or ("cortex-m4" if backend == "cortex-m4" else "generic")
    prog = build_program(model, calib_x, source, target=target, packing=packing)
    header, c_source = render(prog)
    keep = build_dir is not None
    ctx = atomic_dir(build_dir, replaceable=BUILD_FILES) if keep else tempfile.TemporaryDirectory(prefix="ternkit-c-")
    with ctx as where:
        work = Path(where)
        (work / "model.h").write_text(header)
        (work / "model.c").write_text(c_source)
        record = _build_and_run(prog, model, x, y, backend, work, model_path, dataset)
        if keep:
            (work / MEASURED_FILE).write_text(json.dumps(record.get("mcu", {}), indent=1) + "\n")
    return record


def _build_and_run(prog: CProgram, model: TernaryModel, x: np.ndarray, y: np.ndarray | None, backend: str,
                   work: Path, model_path: str, dataset: str) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if backend == "c":
        run = build_host(work, work)
        run = run_host(run, x, prog.classes, work)
    else:
        art = build_m4(work, work)
        run = run_m4(art["elf"], x, prog.classes, work)
        insns = run.ticks * instructions_per_tick()
        extra["mcu"] = mcu_figures(prog, art["object"], int(run.stack.max()), insns, run.calibration,
                                   plan_stack(art["callgraph"]))
    em = emulate(prog, x)
    same = np.all(run.scores.astype(np.int64) == em, axis=1)
    ref = model.predict(x)
    layers, macs = activations_activity(model, x)
    return activity_record(
        backend=backend, neuron=None, timesteps=1, samples=len(x),
        accuracy=float((run.predicted == y).mean()) if y is not None else None,
        agreement=float((run.predicted == ref).mean()), samples_per_second=len(x) / max(run.seconds, 1e-9),
        layers=layers, dense_macs=macs, model=str(model_path), model_fingerprint=model.fingerprint(),
        dataset=dataset, calibration=prog.source, calibration_samples=prog.calibration_samples,
        emulation_identical=bool(same.all()), emulation_mismatches=int((~same).sum()),
        predicted_equals_argmax=bool(np.array_equal(run.predicted, run.scores.argmax(1))),
        reference_accuracy=float((ref == y).mean()) if y is not None else None,
        arena_bytes=prog.arena_bytes, c_target=prog.target, weight_packing=prog.packing, **extra)


def run_backend(backend: str, model: TernaryModel, data: Any, *, calibrate: str | None = None,
                build: str | os.PathLike | None = None, where: str = "the model", packing: str = "2bit"
                ) -> dict[str, Any]:
    """What the `c` and `cortex-m4` backends' simulate runs (export/c/backend.py): calibrate as `ternkit export c`
    does (the model's own training data unless `calibrate` names a dataset), then `simulate_c`."""
    from ..calibration import calibration_data

    if build is not None:
        check_out_dir(build, BUILD_FILES)  # before calibration
    x, _, spec = calibration_data(model, calibrate, where=where)
    return simulate_c(model, data.x, data.y, backend, x, source=spec, model_path=where, build_dir=build,
                      packing=packing)


def c_summary(r: dict[str, Any]) -> str:
    """The lines `ternkit simulate --backend c|cortex-m4` adds to the activity table."""
    same = ("bit-identical to the numpy emulation on every sample" if r["emulation_identical"] else
            f"DIFFERS from the numpy emulation on {r['emulation_mismatches']} samples")
    lines = [f"C scores {same}; activation arena {r['arena_bytes']} bytes"]
    m = r.get("mcu")
    if m:
        lines.append(f"Cortex-M4 (qemu mps2-an386): {m['instructions_per_inference']:,.0f} instructions per inference "
                     f"(measured, {m['instructions_min']:,}..{m['instructions_max']:,}); model flash "
                     f"{m['flash_bytes']:,} B (text {m['sections']['text']:,} + rodata {m['sections']['rodata']:,} + "
                     f"data {m['sections']['data']:,}); RAM {m['ram_bytes']:,} B (data + bss {m['static_ram_bytes']:,} "
                     f"+ stack high-water {m['stack_bytes']:,}), measured with arm-none-eabi-size and a painted stack")
        lines.append(planned_line(m))
    return "\n".join(lines)


def planned_line(m: dict[str, Any]) -> str:
    """The planner's RAM beside the measured one (or why the stack has no plan)."""
    if m.get("ram_planned_bytes") is None:
        return f"Planned RAM: arena {m['arena_bytes']:,} B; stack not planned ({m.get('stack_unplanned', '?')})"
    return (f"Planned RAM {m['ram_planned_bytes']:,} B (arena {m['arena_bytes']:,} + stack "
            f"{m['stack_planned_bytes']:,}: GCC's frames on tk_predict's deepest call path, "
            f"{' > '.join(m.get('stack_path', []))})")
