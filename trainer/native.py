"""CoNNTrA's CPU step in one compiled pass per weight tensor (`conntra_step.c`), loaded with ctypes.

Why: on CPU the torch form of the step is about a dozen element-wise passes over every discrete weight, and on a
small MLP that is as long as the whole float training step; one pass of C costs about one Adam step. Why not a
torch extension or `torch.compile`: both need minutes of compilation on first use; this is one C file that the
system compiler (the one the C export uses) builds in well under a second, once per machine.

The library is cached under the user's cache folder (`~/.cache/ternkit/native`, keyed by the source, the flags
and the compiler binary) and written atomically. No compiler, no writable cache, or a build error: `library()`
returns None and CoNNTrA runs its torch form, which has the same rule (the two differ only in float rounding,
so the same seed gives the same weights on one machine, not across the two forms; `CoNNTrA(kernel=...)` picks).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["library", "step_tensors", "adam_tensors", "usable", "KERNELS"]

SOURCE = Path(__file__).with_name("conntra_step.c")
FLAGS = ("-O3", "-std=c99", "-shared", "-fPIC", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off")
KERNELS = ("auto", "native", "torch")  # auto: native where it builds and the tensors are on the CPU

_F, _I64 = ctypes.c_float, ctypes.c_int64
_P = ctypes.c_void_p


def _compiler() -> str | None:
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _cache_dir() -> Path:
    return Path.home() / ".cache" / "ternkit" / "native"


def _identity(cc: str) -> str:
    """The compiler's resolved path, size and modification time: a new compiler gets a new library, without
    running it at every start (a subprocess there would also be one more place for a Ctrl-C to land)."""
    real = os.path.realpath(cc)
    st = os.stat(real)
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def _build(cc: str, target: Path) -> None:
    """Compile into a temporary file beside the target, then rename: a reader never sees half a library."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([cc, *FLAGS, "-o", tmp, str(SOURCE), "-lm"], check=True, capture_output=True, timeout=120)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The compiled step, or None where it cannot be built here (CoNNTrA then uses its torch form)."""
    cc = _compiler()
    if cc is None or not SOURCE.is_file():
        return None
    try:
        key = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode() + _identity(cc).encode()).hexdigest()
        target = _cache_dir() / f"conntra_step-{key[:16]}.so"
        if not target.is_file():
            _build(cc, target)
        try:
            lib = ctypes.CDLL(str(target))
        except OSError:  # a damaged cache entry: build it again, once
            _build(cc, target)
            lib = ctypes.CDLL(str(target))
        fn = lib.tk_conntra_steps
        fn.restype = None
        fn.argtypes = [_I64] + [_P] * 12 + [_F] * 8 + [_P] * 4
        lib.tk_adam_steps.restype = None
        lib.tk_adam_steps.argtypes = [_I64] + [_P] * 7 + [_F] * 6
    except (OSError, subprocess.SubprocessError, AttributeError):  # AttributeError: a library without the symbols
        return None
    return lib


def usable(*tensors: torch.Tensor) -> bool:
    """The compiled step takes contiguous float32 CPU tensors."""
    for t in tensors:
        if not (t.is_cpu and t.dtype is torch.float32 and t.is_contiguous()):
            return False
    return True


def _ptrs(tensors: list[torch.Tensor]) -> np.ndarray:
    return np.fromiter((t.data_ptr() for t in tensors), dtype=np.int64, count=len(tensors))


def _corrections(beta1: float, beta2: float, steps: list[float], lr: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Adam's step size and bias correction per tensor (in float64, then float32): lr / (1 - beta1^t) and
    1 / sqrt(1 - beta2^t)."""
    t = np.asarray(steps, dtype=np.float64)
    return (lr / (1.0 - beta1 ** t)).astype(np.float32), (1.0 / np.sqrt(1.0 - beta2 ** t)).astype(np.float32)


def step_tensors(lib: ctypes.CDLL, parts: list[tuple[torch.Tensor, ...]], *, chunks: list[torch.Tensor],
                 chunk: list[int], j: list[int], levels: list[int], steps: list[float], beta1: float, beta2: float,
                 eps: float, bonus: float, above: float, floor: float, pbuf: torch.Tensor, sbuf: torch.Tensor
                 ) -> tuple[list[int], list[float]]:
    """Every tensor's step in one call, in place (q, M, V of each (q, M, V, g) in `parts`). Per tensor: the sorted
    chunk indices of its sample (`chunk` positions each; one chunk of the whole tensor: exact), the moves `j`
    allowed among the sample (-1: none this step), its levels and step count. Returns (moves, thresholds)."""
    count = len(parts)
    qs, ms, vs, gs = zip(*parts, strict=True)
    step_size, inv_bc2 = _corrections(beta1, beta2, steps)
    keep = [np.fromiter((t.numel() for t in qs), np.int64, count), _ptrs(list(qs)), _ptrs(list(ms)),
            _ptrs(list(vs)), _ptrs(list(gs)), _ptrs(chunks), np.fromiter((c.numel() for c in chunks), np.int64, count),
            np.asarray(chunk, np.int64), np.asarray(j, np.int64), step_size, inv_bc2, np.asarray(levels, np.float32)]
    t_out, moved = np.empty(count, np.float32), np.empty(count, np.int64)
    lib.tk_conntra_steps(count, *(a.ctypes.data for a in keep), beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps, bonus,
                         above, floor, pbuf.data_ptr(), sbuf.data_ptr(), t_out.ctypes.data, moved.ctypes.data)
    return moved.tolist(), t_out.tolist()


def adam_tensors(lib: ctypes.CDLL, ps: list[torch.Tensor], gs: list[torch.Tensor], ms: list[torch.Tensor],
                 vs: list[torch.Tensor], *, steps: list[float], beta1: float, beta2: float, lr: float, eps: float,
                 weight_decay: float) -> None:
    """Adam's step on every tensor in one call, in place (p, m, v): torch's Adam, float rounding apart."""
    count = len(ps)
    step_size, inv_bc2 = _corrections(beta1, beta2, steps, lr)
    keep = [np.fromiter((p.numel() for p in ps), np.int64, count), _ptrs(ps), _ptrs(gs), _ptrs(ms), _ptrs(vs),
            step_size, inv_bc2]
    lib.tk_adam_steps(count, *(a.ctypes.data for a in keep), beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps,
                      weight_decay)
