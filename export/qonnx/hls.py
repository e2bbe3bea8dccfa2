"""Drive hls4ml on a ternkit model: QONNX -> hls4ml model (io_parallel) -> its C++ emulation compiled with g++
-> predictions. No Vivado/Vitis is needed for this; they are needed only to synthesise the firmware, for which
`HlsRun.write_project` leaves the hls4ml configuration (YAML), the prepared QONNX graph and the generated HLS
sources.

Conversion runs twice: the first pass tells which layers hls4ml made (it fuses the weight `Quant` into
Dense/Conv and each `Mul`+`Add` into an ApplyAlpha), the second gives each of them the precisions
`precision.choose_precisions` derived from the tensor ranges that qonnx's executor measured on calibration
samples. Only the second is compiled.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ternkit.core.errors import OptionError, TernkitError
from ternkit.core.model import TernaryModel

from .execute import INSTALL, qonnx_version, tensor_ranges
from .export import qonnx_model
from .graph import ActQuant
from .precision import DEFAULT_WIDTH, choose_precisions
from .prepare import prepare_for_hls4ml

__all__ = ["HlsRun", "require_hls4ml", "hls4ml_model", "weight_storage", "HLS_BACKEND", "IO_TYPE", "PROJECT"]

HLS_BACKEND = "Vitis"
IO_TYPE = "io_parallel"
PROJECT = "ternkit_model"
CALIBRATION = 64  # samples whose tensor ranges set the precisions
PROJECT_FILES = ("hls4ml_config.yml", "model.hls4ml.onnx", "project")  # what --build DIR holds (replaceable)


def require_hls4ml() -> None:
    """One line saying how to install hls4ml/qonnx (an optional extra) and that g++ is needed."""
    try:
        import hls4ml  # noqa: F401
        import qonnx  # noqa: F401
    except ImportError:
        raise TernkitError(f"the hls4ml backend needs qonnx and hls4ml: {INSTALL}") from None
    if shutil.which("g++") is None:
        raise TernkitError("the hls4ml backend compiles its C++ emulation with g++, which is not on PATH "
                           "(Debian: apt-get install g++)")


@dataclass
class HlsRun:
    """A converted and compiled hls4ml model (its project lives in `workdir` until `close`)."""

    hls_model: Any
    prepared: Any            # the qonnx ModelWrapper hls4ml read
    config: dict[str, Any]   # the HLSConfig given to hls4ml
    workdir: Path
    width: int
    act: ActQuant | None     # the activation quantisation in the graph (None: float activations)
    compile_seconds: float
    versions: dict[str, str] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits of raw samples `x` (N, *input shape) from the compiled C++ emulation."""
        x = np.asarray(x, np.float32)  # NCHW as the reference: the graph transposes to channels-last inside
        y = self.hls_model.predict(np.ascontiguousarray(x.reshape(len(x), -1)))
        return np.asarray(y, np.float32).reshape(len(x), -1)

    def write_project(self, out: str | Path) -> list[Path]:
        """DIR/hls4ml_config.yml (`hls4ml convert -c` reads it), DIR/model.hls4ml.onnx (the graph it names),
        DIR/project/ (the HLS sources hls4ml generated; `hls4ml build` or Vitis HLS synthesises them). The
        directory is written whole or not at all; an earlier one of these is replaced."""
        import yaml

        from ternkit.core.atomic import atomic_dir

        cfg = {"OnnxModel": "model.hls4ml.onnx", "OutputDir": "project", "ProjectName": PROJECT,
               "Backend": HLS_BACKEND, "IOType": IO_TYPE, "ClockPeriod": 5, "HLSConfig": self.config}
        with atomic_dir(out, PROJECT_FILES) as tmp:
            (tmp / "model.hls4ml.onnx").write_bytes(self.prepared.model.SerializeToString())
            (tmp / "hls4ml_config.yml").write_text(
                "# hls4ml configuration written by ternkit: precisions chosen from the model's ranges (docs/fpga.md)\n"
                "# synthesis: hls4ml convert -c hls4ml_config.yml, then hls4ml build -p project (Vivado/Vitis HLS)\n"
                + yaml.safe_dump(cfg, sort_keys=False))
            shutil.copytree(self.workdir, tmp / "project", ignore=shutil.ignore_patterns("*.so", "*.o"))
        out = Path(out)
        return [out / "hls4ml_config.yml", out / "model.hls4ml.onnx", out / "project"]

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _quiet(fn, *args, **kwargs):
    """hls4ml prints its progress (and g++ its warnings) on stdout; keep the CLI's output ours."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _convert(prepared: Any, config: dict[str, Any], workdir: Path) -> Any:
    import hls4ml

    return _quiet(hls4ml.converters.convert_from_onnx_model, prepared, output_dir=str(workdir),
                  project_name=PROJECT, io_type=IO_TYPE, backend=HLS_BACKEND, hls_config=config)


def _pin_weighted(config: dict[str, Any], precision: str) -> None:
    for name, entry in config["LayerName"].items():
        if name.split("_")[0] in ("MatMul", "Conv", "Gemm"):
            prec = entry.setdefault("Precision", {})
            for key in ("result", "accum"):
                prec[key] = precision


def hls4ml_model(model: TernaryModel, calibrate: np.ndarray, *, width: int = DEFAULT_WIDTH,
                 act_bits: int | None = None, uniform: str | None = None) -> HlsRun:
    """Convert `model` (its QONNX graph) with hls4ml, precisions chosen from the ranges on `calibrate` (raw
    samples), and compile the C++ emulation. `uniform` (e.g. "fixed<16,6>"): hls4ml's own default instead --
    that one type for the whole model, `granularity="model"` -- the baseline the chosen precisions are measured
    against. The caller closes the run."""
    import warnings

    import hls4ml

    require_hls4ml()
    if not 6 <= width <= 64:
        raise OptionError(f"--width {width}: choose 6..64 bits")
    calibrate = np.asarray(calibrate, np.float32)[:CALIBRATION]
    graph, act = qonnx_model(model, act_bits, calibrate, for_hls4ml=True)
    tmp = tempfile.TemporaryDirectory(prefix="ternkit-hls4ml-")
    workdir = Path(tmp.name) / "project"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # hls4ml warns per layer about what it infers; the report says it
            prepared = prepare_for_hls4ml(graph)
            if uniform is not None:
                config = _quiet(hls4ml.utils.config.config_from_onnx_model, prepared, granularity="model",
                                backend=HLS_BACKEND, default_precision=uniform)
                return _compiled(prepared, config, workdir, width, act, tmp)
            ranges = tensor_ranges(prepared, calibrate)
            base = _quiet(hls4ml.utils.config.config_from_onnx_model, prepared, granularity="name",
                          backend=HLS_BACKEND, default_precision=f"fixed<{width},{width // 2}>")
            # an 'auto' dense/conv output lets hls4ml fuse the following scale into the weights (float weights):
            # pass 1 pins them to the default, pass 2 to the chosen types
            _pin_weighted(base, f"fixed<{width},{width // 2}>")
            first = _convert(prepared, base, Path(tmp.name) / "probe")
            chosen = choose_precisions(list(first.get_layers()), ranges, width)
            config = json.loads(json.dumps(base))
            for name, prec in chosen.items():
                # hls4ml renames what it makes from an ONNX node (MatMul_0 -> Dense_MatMul_0, Add_0 -> bn_Add_0)
                # and reads the config under either name along the way
                stem = name.split("_", 1)[1] if "_" in name else name
                for key in {name, *([stem] if stem in base["LayerName"] else [])}:
                    config["LayerName"].setdefault(key, {}).setdefault("Precision", {}).update(prec)
            return _compiled(prepared, config, workdir, width, act, tmp)
    except TernkitError:
        tmp.cleanup()
        raise
    except Exception as e:  # hls4ml's own refusal or a compile failure: one line
        tmp.cleanup()
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise TernkitError(f"hls4ml {hls4ml.__version__} could not convert or compile the model: {first_line}") \
            from None


def _compiled(prepared: Any, config: dict[str, Any], workdir: Path, width: int,
              act: ActQuant | None, tmp: tempfile.TemporaryDirectory) -> HlsRun:
    import hls4ml

    hls_model = _convert(prepared, config, workdir)
    t0 = time.perf_counter()
    _quiet(hls_model.compile)
    seconds = time.perf_counter() - t0
    return HlsRun(hls_model, prepared, config, workdir, width, act, seconds,
                  {"hls4ml": hls4ml.__version__, "qonnx": qonnx_version()}, tmp)


def _bits(precision: Any) -> int:
    return int(getattr(precision, "width", 0) or 0)


def weight_storage(run: HlsRun) -> list[dict[str, Any]]:
    """Per hls4ml layer: each parameter array's type (as hls4ml writes it), its bit width, element count and
    total bits -- what the firmware stores -- and the layer's result/accumulator types."""
    rows = []
    for layer in run.hls_model.get_layers():
        params = []
        for key, var in layer.weights.items():
            p = var.type.precision
            n = int(np.asarray(var.data).size)
            params.append({"name": key, "type": str(p), "bits": _bits(p), "count": n, "total_bits": n * _bits(p)})
        out = layer.get_output_variable().type.precision
        row = {"layer": layer.name, "class": layer.class_name, "result": str(out), "params": params}
        accum = layer.get_attr("accum_t")
        if accum is not None and hasattr(accum, "precision"):
            row["accum"] = str(accum.precision)
        rows.append(row)
    return rows
