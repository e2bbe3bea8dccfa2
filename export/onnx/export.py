"""Export a `TernaryModel` to an ONNX file: build, full `onnx.checker` pass, prove the installed
onnxruntime runs it and agrees with the numpy reference, then write atomically.

The runtime check matters because INT2 needs a recent runtime (IR 11 / opset 25) and because
onnxruntime's graph rewrites can change results; checking before the rename means a file that
exists is a file this machine's runtime can run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ternkit.core.atomic import write_bytes
from ternkit.core.errors import ArtifactError, TernkitError
from ternkit.core.model import TernaryModel

from .graph import FORMATS, NBITS_BLOCK, NBITS_MIN_WEIGHTS, build_graph, resolve_format, weight_format
from .infer import make_session

__all__ = ["OnnxExport", "export_onnx", "onnx_bytes", "check_runtime", "readable", "FORMATS"]

# Tolerances for the export-time check, relative to the largest reference logit (at least 1).
# `exact` sessions differ from numpy only by float32 summation order; `stock` sessions may apply
# onnxruntime's own quantised fusions (~1e-3), so they get a looser bound that still catches wrong kernels.
_TOL = {"exact": 1e-4, "stock": 2e-2}
# MatMulNBits at accuracy_level 4 quantises activations to int8 per block: logits move by up to ~2e-2 of the
# largest logit (measured on every example model); 5e-2 still catches a wrong kernel (the INT2 DQ->MatMul
# mis-fusion moves them by 35x that). Logits closer than _NBITS_EXACT mean the int8 kernel did not run.
_NBITS_TOL = 5e-2
_NBITS_EXACT = 1e-5
_NBITS_PROBE = 256
AGREEMENT_BAR = 0.999  # argmax agreement the export promises (nbits: over the probe's non-tied samples)

@dataclass
class OnnxExport:
    path: Path | None
    format: str           # weights written: int2, int2-cast (int4* for k > 1), int8, float, int2-nbits
    size: int             # bytes of the serialised model
    max_abs_diff: float | None  # onnxruntime (exact session) vs reference on the probe batch; None if unchecked
    runtime: str | None   # onnxruntime version that ran the check


def readable(path: str | os.PathLike, executable: bool = False) -> None:
    """Give an atomically written file (mkstemp makes it 0600) the usual umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if executable else 0o666) & ~umask)


def onnx_bytes(model: TernaryModel, fmt: str = "int2", nbits_block: int = NBITS_BLOCK,
               conv_form: str = "conv", nbits_min_weights: int = NBITS_MIN_WEIGHTS) -> tuple[bytes, str]:
    """Serialised, fully checked ONNX model and the weight format actually used."""
    m = build_graph(model, fmt, nbits_block=nbits_block, conv_form=conv_form, nbits_min_weights=nbits_min_weights)
    try:
        onnx.checker.check_model(m, full_check=True)
    except onnx.checker.ValidationError as e:  # a bug in the builder, but say it in one line
        raise ArtifactError(f"the exported graph fails onnx.checker: {str(e).splitlines()[0][:200]}") from None
    return m.SerializeToString(), weight_format(model, fmt)


def _probe(model: TernaryModel, n: int = 32) -> np.ndarray:
    """Deterministic raw inputs spread like the training data (mean +- a few std)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, *model.input.shape)).astype(np.float32) * 1.5
    return (z * model.input.std + model.input.mean).astype(np.float32)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def check_runtime(model: TernaryModel, data: bytes, fmt: str) -> float:
    """Run `data` in the installed onnxruntime (our `exact` session and the stock defaults) and compare with
    the reference on a probe batch; returns the exact session's max |logit difference|.

    Refuses (TernkitError, one line) when the runtime cannot load or run the file, when its logits leave the
    format's tolerance, when the argmax disagrees outside near ties, or (nbits) when the results are too exact
    to have come from the int8 2-bit kernel (this onnxruntime fell back to its slow float path)."""
    import onnxruntime as ort

    # the int8-activation tolerance and the slow-path test apply where a MatMulNBits kernel runs; an nbits
    # file whose dense layers are all below NBITS_MIN_WEIGHTS is float at load and must be exact
    nbits = fmt.endswith("-nbits") and any(n.op_type == "MatMulNBits" for n in
                                           onnx.load_from_string(data).graph.node)
    x = _probe(model, _NBITS_PROBE if nbits else 32)
    ref = model.forward(x)
    scale = max(1.0, float(np.abs(ref).max()))
    top2 = np.sort(ref, axis=1)[:, -2:]
    diffs = {}
    for mode, tol in _TOL.items():
        tol = _NBITS_TOL if nbits else tol
        try:
            sess = make_session(data, mode)
            out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        except Exception as e:
            hint = ("; export with --int8 for older runtimes" if fmt in ("int2", "int4") else
                    "; MatMulNBits is an onnxruntime contrib operator: use the default INT2 export elsewhere"
                    if fmt.endswith("-nbits") else "")
            raise TernkitError(f"the installed onnxruntime {ort.__version__} cannot run the {fmt} export "
                               f"({_first_line(e)}){hint}") from None
        diffs[mode] = float(np.abs(out - ref).max())
        if not diffs[mode] <= tol * scale:
            raise TernkitError(f"onnxruntime {ort.__version__} ({mode} session) disagrees with the reference on the "
                               f"{fmt} export: max |logit difference| {diffs[mode]:.3g}; nothing was written")
        # a flipped argmax is allowed only where the reference's top two are within the tolerance (a tie)
        if model.task != "classify":  # values, not class scores: the difference above is the whole check
            continue
        decided = (top2[:, 1] - top2[:, 0]) > 2 * tol * scale
        agree = out.argmax(1) == ref.argmax(1)
        if decided.any() and agree[decided].mean() < AGREEMENT_BAR:
            raise TernkitError(f"onnxruntime {ort.__version__} ({mode} session) predicts other classes than the "
                               f"reference on the {fmt} export ({100 * agree.mean():.1f} % agreement); nothing "
                               "was written")
        if nbits and diffs[mode] < _NBITS_EXACT * scale:
            raise TernkitError(f"the installed onnxruntime {ort.__version__} has no int8 kernel for 2-bit "
                               "MatMulNBits (it fell back to its slow float path); use the default INT2 export")
    return diffs["exact"]


def export_onnx(model: TernaryModel, path: str | os.PathLike | None, fmt: str = "int2",
                check: bool = True, nbits_block: int = NBITS_BLOCK,
                nbits_min_weights: int = NBITS_MIN_WEIGHTS) -> OnnxExport:
    """Write `model` as ONNX to `path` (atomically; nothing is written if any step fails).

    `fmt` is one of FORMATS; a float artifact always exports as float. With `check`, the installed
    onnxruntime must load and run the file and agree with `TernaryModel.forward` first (for `nbits`: within
    the int8-activation tolerance, and the int8 2-bit kernel must be the one that ran; dense layers with fewer
    than `nbits_min_weights` weights are written in the `int2-cast` form, see onnx_graph.NBITS_MIN_WEIGHTS).
    `path=None` runs every step but writes nothing (used by the bundle and benchmarks)."""
    import onnxruntime as ort

    if fmt not in FORMATS:
        raise ArtifactError(f"unknown ONNX weight format {fmt!r}; use one of {', '.join(FORMATS)}")
    resolve_format(model, fmt)
    data, written = onnx_bytes(model, fmt, nbits_block, nbits_min_weights=nbits_min_weights)
    diff = check_runtime(model, data, written) if check else None
    if path is not None:
        if Path(path).is_dir():
            raise ArtifactError(f"{path}: is a directory; give a file name ending in .onnx")
        try:
            write_bytes(path, data)
            readable(path)
        except OSError as e:
            raise ArtifactError(f"{path}: cannot write ({e.strerror or e})") from None
    return OnnxExport(Path(path) if path is not None else None, written, len(data), diff,
                      ort.__version__ if check else None)
