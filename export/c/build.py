"""Build and run a C export: for the host with the system `cc`, and for a Cortex-M4 with arm-none-eabi-gcc,
run in qemu's mps2-an386 with semihosting. The start-up code, linker script and harness ship in
`export/mcu/`. Sizes come from `arm-none-eabi-size` of the model's own object; instructions per inference
from qemu's `-icount` (a fixed virtual time per instruction) read through SysTick around `tk_predict`.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ternkit.core.errors import TernkitError, UnsupportedError

from .stack import STACK_FLAGS

__all__ = ["MissingTool", "BuildError", "require_tools", "build_host", "build_m4", "run_host", "run_m4",
           "object_sizes", "undefined_symbols", "MCU_DIR", "INSTALL_HINT", "Run", "M4_CFLAGS",
           "ICOUNT_SHIFT", "SYSCLK_HZ"]

MCU_DIR = Path(__file__).resolve().parent / "mcu"
INSTALL_HINT = ("install them with `make mcu-tools` (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                "qemu-system-arm)")
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-ffp-contract=off"]
M4_CFLAGS = ["-mcpu=cortex-m4", "-mthumb", "-ffunction-sections", "-fdata-sections"]
M4_LDFLAGS = ["-nostartfiles", "--specs=rdimon.specs", "-Wl,--gc-sections"]
ICOUNT_SHIFT = 3  # qemu -icount: every instruction advances the virtual clock by 2^3 ns
SYSCLK_HZ = 25_000_000  # mps2-an386's processor clock, which SysTick counts
QEMU_TIMEOUT = 600.0


class MissingTool(UnsupportedError):
    """A compiler or emulator that is not installed (the message says how to install it)."""


class BuildError(TernkitError):
    """The generated C did not compile or the program failed (a bug of ternkit, reported in one line)."""


def _tool(name: str, what: str) -> str:
    path = shutil.which(name)
    if path is None:
        hint = INSTALL_HINT if name != os.environ.get("CC", "cc") else "install a C compiler (e.g. apt-get install gcc)"
        raise MissingTool(f"{name} ({what}) not found: {hint}")
    return path


def require_tools(backend: str) -> dict[str, str]:
    """The tools `backend` needs ('c' or 'cortex-m4'), or MissingTool before any work starts."""
    if backend == "c":
        return {"cc": _tool(os.environ.get("CC", "cc"), "the host C compiler")}
    tools = {"gcc": _tool("arm-none-eabi-gcc", "the Arm cross-compiler"),
             "size": _tool("arm-none-eabi-size", "binutils for Arm"),
             "nm": _tool("arm-none-eabi-nm", "binutils for Arm"),
             "qemu": _tool("qemu-system-arm", "the Arm emulator")}
    specs = subprocess.run([tools["gcc"], "-print-file-name=rdimon.specs"], capture_output=True, text=True)
    if not os.path.isfile(specs.stdout.strip()):
        raise MissingTool(f"newlib's rdimon.specs (semihosting C library) not found: {INSTALL_HINT}")
    return tools


def _run(cmd: list[str], what: str, cwd: Path | None = None, timeout: float = 300.0) -> str:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what} did not finish within {timeout:.0f} s") from None
    if r.returncode != 0:
        detail = " ".join((r.stderr or r.stdout).split())[:300]
        raise BuildError(f"{what} failed (exit {r.returncode}): {detail}")
    return r.stdout


def _made(path: Path, what: str) -> Path:
    """`path`, which a tool that exited 0 should have written: a compiler or emulator that "succeeds" without
    output (CC=true, a broken toolchain) is one clear line, not a FileNotFoundError later."""
    if not path.is_file():
        raise BuildError(f"{what} exited 0 but wrote no {path.name}: check the compiler (CC) and toolchain")
    return path


def build_host(c_dir: Path, build: Path) -> Path:
    """model.c + the harness -> an executable for this machine. Paths are made absolute: the program later
    runs with the build directory as its working directory."""
    cc = require_tools("c")["cc"]
    c_dir, build = Path(c_dir).resolve(), Path(build).resolve()
    exe = build / "tk_host"
    _run([cc, *CFLAGS, "-I", str(c_dir), str(c_dir / "model.c"), str(MCU_DIR / "harness.c"), "-o", str(exe)],
         "compiling the C export for the host")
    return _made(exe, "compiling the C export for the host")


def build_m4(c_dir: Path, build: Path) -> dict[str, Path]:
    """model.o (measured alone), firmware.elf (model + harness + start-up) for the Cortex-M4, and model.ci:
    GCC's call graph of model.o with every function's frame bytes, from the same compile (`stack.plan_stack`
    reads it; the flags change no byte of the object)."""
    gcc = require_tools("cortex-m4")["gcc"]
    c_dir, build = Path(c_dir).resolve(), Path(build).resolve()
    obj, elf = build / "model.o", build / "firmware.elf"
    base = [gcc, *CFLAGS, *M4_CFLAGS]
    _run([*base, *_stack_flags(gcc), "-c", str(c_dir / "model.c"), "-o", str(obj)],
         "cross-compiling model.c for the Cortex-M4")
    _made(obj, "cross-compiling model.c for the Cortex-M4")
    _run([*base, "-DTK_FIRMWARE", "-I", str(c_dir), str(obj), str(MCU_DIR / "harness.c"),
          str(MCU_DIR / "startup.c"), "-T", str(MCU_DIR / "mps2_an386.ld"), *M4_LDFLAGS, "-o", str(elf)],
         "linking the Cortex-M4 firmware")
    return {"object": obj, "elf": _made(elf, "linking the Cortex-M4 firmware"), "callgraph": build / "model.ci"}


@functools.cache
def _stack_flags(gcc: str) -> list[str]:
    """GCC's stack-usage and call-graph flags where this compiler has them (GCC 10 or newer), else none: the
    stack is then left unplanned, the build the same."""
    r = subprocess.run([gcc, *STACK_FLAGS, "-E", "-x", "c", os.devnull, "-o", os.devnull], capture_output=True)
    return list(STACK_FLAGS) if r.returncode == 0 else []


def object_sizes(obj: Path) -> dict[str, int]:
    """Bytes of the object's sections by kind (arm-none-eabi-size -A): code, rodata, data, bss."""
    out = _run([require_tools("cortex-m4")["size"], "-A", str(obj)], "arm-none-eabi-size")
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        name, n = parts[0], int(parts[1])
        for kind in sizes:
            if name == f".{kind}" or name.startswith(f".{kind}."):
                sizes[kind] += n
    return sizes


def undefined_symbols(obj: Path) -> list[str]:
    """Symbols the object needs from elsewhere (a library call would show here)."""
    out = _run([require_tools("cortex-m4")["nm"], "-u", str(obj)], "arm-none-eabi-nm")
    return sorted(line.split()[-1] for line in out.splitlines() if line.strip())


@dataclass
class Run:
    scores: np.ndarray  # (N, classes) int32 as tk_predict wrote them
    predicted: np.ndarray  # tk_predict's return values
    seconds: float
    ticks: np.ndarray | None = None  # SysTick ticks per tk_predict call (firmware)
    stack: np.ndarray | None = None  # stack bytes per call (firmware)
    calibration: dict[str, Any] = field(default_factory=dict)


def _records(path: Path, classes: int, n: int, extra: int = 0) -> np.ndarray:
    _made(path, "the C program")
    data = np.fromfile(path, np.int32)
    need = extra + n * (classes + 3)
    if data.size != need:
        raise BuildError(f"the C program wrote {data.size} numbers, {need} expected")
    return data


def _write_input(x: np.ndarray, build: Path) -> None:
    np.ascontiguousarray(x, np.float32).tofile(build / "input.bin")


def run_host(exe: Path, x: np.ndarray, classes: int, build: Path) -> Run:
    import time

    exe, build = Path(exe).resolve(), Path(build).resolve()
    _write_input(x, build)
    t0 = time.perf_counter()
    _run([str(exe)], "running the host build", cwd=build)
    dt = time.perf_counter() - t0
    rec = _records(build / "output.bin", classes, len(x)).reshape(len(x), classes + 3)
    return Run(rec[:, :classes].copy(), rec[:, classes].copy(), dt)


def run_m4(elf: Path, x: np.ndarray, classes: int, build: Path, timeout: float = QEMU_TIMEOUT) -> Run:
    """Run the firmware in qemu (mps2-an386, semihosting, -icount). The first record holds the timer
    check: ticks of two back-to-back reads and of a loop of a known number of instructions."""
    import time

    qemu = require_tools("cortex-m4")["qemu"]
    elf, build = Path(elf).resolve(), Path(build).resolve()  # qemu runs in `build`: a relative path would miss
    _write_input(x, build)
    cmd = [qemu, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-icount", f"shift={ICOUNT_SHIFT}",
           "-kernel", str(elf)]
    t0 = time.perf_counter()
    _run(cmd, "running the firmware in qemu", cwd=build, timeout=timeout)
    dt = time.perf_counter() - t0
    data = _records(build / "output.bin", classes, len(x), extra=4)
    empty, loop_ticks, loop_insns = (int(v) for v in data[:3])
    rec = data[4:].reshape(len(x), classes + 3)
    return Run(rec[:, :classes].copy(), rec[:, classes].copy(), dt, rec[:, classes + 1].astype(np.int64),
               rec[:, classes + 2].astype(np.int64),
               {"empty_ticks": empty, "known_loop_ticks": loop_ticks, "known_loop_instructions": loop_insns})


def instructions_per_tick() -> float:
    """SysTick counts the 25 MHz processor clock of virtual time; -icount makes each instruction 2^shift ns."""
    return (1e9 / SYSCLK_HZ) / (1 << ICOUNT_SHIFT)
