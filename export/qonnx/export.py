"""Export a `TernaryModel` as a QONNX file: build the graph, `onnx.checker` it, run it in qonnx's executor and
compare with the reference (`TernaryModel.forward`, or its activation-quantised twin), then write atomically.
A file that exists is one that qonnx runs and that agrees with the reference."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ternkit.core.atomic import write_bytes
from ternkit.core.errors import ArtifactError, OptionError, TernkitError
from ternkit.core.model import TernaryModel

from .execute import qonnx_version, require_qonnx, run_qonnx, wrap
from .graph import ActQuant, activation_quant, build_qonnx, quantised_forward, weight_bits

__all__ = ["QonnxExport", "export_qonnx", "qonnx_model", "probe", "TOLERANCE"]

TOLERANCE = 1e-5  # max |logit difference| allowed, relative to the largest reference logit (at least 1)
PROBE = 32


@dataclass
class QonnxExport:
    path: Path | None
    model: onnx.ModelProto = None  # type: ignore[assignment]
    size: int = 0
    weight_bits: int = 2
    activation_bits: int | None = None
    max_abs_diff: float | None = None  # qonnx executor vs reference on the probe
    samples: int = 0
    qonnx_version: str = ""


def probe(model: TernaryModel, n: int = PROBE) -> np.ndarray:
    """Deterministic raw inputs spread like the training data: mean + std * N(0, 1.5^2)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, *model.input.shape)).astype(np.float32) * 1.5
    return (z * model.input.std + model.input.mean).astype(np.float32)


def qonnx_model(model: TernaryModel, act_bits: int | None = None, calibrate: np.ndarray | None = None,
                for_hls4ml: bool = False) -> tuple[onnx.ModelProto, ActQuant | None]:
    """The QONNX model (and the activation quantisation it holds; `calibrate`: raw samples that set the
    activation scales, default the probe; `for_hls4ml`: see `build_qonnx`)."""
    act = None
    if act_bits is not None:
        act = activation_quant(model, probe(model) if calibrate is None else calibrate, act_bits)
    m = build_qonnx(model, act, for_hls4ml=for_hls4ml)
    try:
        onnx.checker.check_model(m)
    except onnx.checker.ValidationError as e:
        raise ArtifactError(f"the QONNX graph fails onnx.checker: {str(e).splitlines()[0][:200]}") from None
    return m, act


def check(model: TernaryModel, m: onnx.ModelProto, act: ActQuant | None, x: np.ndarray) -> float:
    """qonnx's executor against the reference on `x`: max |logit difference|; TernkitError past TOLERANCE."""
    ref = quantised_forward(model, x, act)
    try:
        out = run_qonnx(wrap(m), x)
    except Exception as e:  # qonnx's own failure on our graph: say it in one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise TernkitError(f"qonnx {qonnx_version()} cannot run the QONNX graph ({first})") from None
    diff = float(np.abs(out - ref).max())
    if not diff <= TOLERANCE * max(1.0, float(np.abs(ref).max())):
        raise TernkitError(f"qonnx's executor disagrees with the reference: max |logit difference| {diff:.3g}; "
                           "nothing was written")
    return diff


def export_qonnx(model: TernaryModel, path: str | os.PathLike | None, act_bits: int | None = None,
                 calibrate: np.ndarray | None = None, check_samples: np.ndarray | None = None) -> QonnxExport:
    """Write `model` as QONNX to `path` (atomically, after the qonnx executor agreed with the reference on
    `check_samples`, default a probe of 32 samples). `act_bits`: an unsigned Quant of that width after every
    ReLU, scaled on `calibrate`. `path=None` checks and writes nothing."""
    require_qonnx()
    if path is not None:
        if not str(path).endswith(".onnx"):
            raise OptionError(f"-o {path}: the output file name must end in .onnx (e.g. model.qonnx.onnx)")
        if Path(path).is_dir():
            raise ArtifactError(f"{path}: is a directory; give a file name ending in .qonnx.onnx")
    m, act = qonnx_model(model, act_bits, calibrate)
    x = probe(model) if check_samples is None else check_samples
    diff = check(model, m, act, x)
    data = m.SerializeToString()
    if path is not None:
        try:
            write_bytes(path, data)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(path, 0o666 & ~umask)  # the usual mode (the atomic write's temporary file is 0600)
        except OSError as e:
            raise ArtifactError(f"{path}: cannot write ({e.strerror or e})") from None
    return QonnxExport(Path(path) if path is not None else None, m, len(data), weight_bits(model.levels),
                       act.bits if act else None, diff, len(x), qonnx_version())
