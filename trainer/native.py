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

import torch

__all__ = ["library", "step_tensor", "adam_tensor", "usable", "KERNELS"]

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
    except (OSError, subprocess.SubprocessError):
        return None
    fn = lib.tk_conntra_step
    fn.restype = _I64
    fn.argtypes = [_I64, _P, _P, _P, _P, _P, _I64, _I64, _I64, _F, _F, _F, _F, _F, _F, _F, _F, _F, _F, _F, _P, _P, _P]
    lib.tk_adam_step.restype = None
    lib.tk_adam_step.argtypes = [_I64, _P, _P, _P, _P, _F, _F, _F, _F, _F, _F, _F, _F]
    return lib


def usable(*tensors: torch.Tensor) -> bool:
    """The compiled step takes contiguous float32 CPU tensors."""
    for t in tensors:
        if not (t.is_cpu and t.dtype is torch.float32 and t.is_contiguous()):
            return False
    return True


def step_tensor(lib: ctypes.CDLL, q: torch.Tensor, m: torch.Tensor, v: torch.Tensor, g: torch.Tensor, *,
                chunks: torch.Tensor, chunk: int, j: int, beta1: float, beta2: float, step: float, eps: float,
                levels: int, bonus: float, above: float, floor: float, pbuf: torch.Tensor, sbuf: torch.Tensor,
                t_out: torch.Tensor) -> int:
    """One tensor's step in place (q, m, v); returns the number of weights moved. `chunks`: sorted int64 chunk
    indices of the sample (one chunk of the whole tensor: exact); `j`: the moves allowed among the sample."""
    bc1, bc2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
    return int(lib.tk_conntra_step(
        q.numel(), q.data_ptr(), m.data_ptr(), v.data_ptr(), g.data_ptr(),
        chunks.data_ptr(), chunks.numel(), chunk, j,
        beta1, 1.0 - beta1, beta2, 1.0 - beta2, 1.0 / bc1, 1.0 / bc2 ** 0.5, eps, float(levels), bonus, above, floor,
        pbuf.data_ptr(), sbuf.data_ptr(), t_out.data_ptr()))


def adam_tensor(lib: ctypes.CDLL, p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, *,
                beta1: float, beta2: float, lr: float, step: float, eps: float, weight_decay: float) -> None:
    """Adam's step on one continuous tensor in place (p, m, v): torch's Adam, float rounding apart."""
    bc1, bc2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
    lib.tk_adam_step(p.numel(), p.data_ptr(), g.data_ptr(), m.data_ptr(), v.data_ptr(), beta1, 1.0 - beta1, beta2,
                     1.0 - beta2, lr / bc1, 1.0 / bc2 ** 0.5, eps, weight_decay)
