"""Edge bundle: a folder with `model.onnx`, `labels.json` and `predict.py` (numpy + onnxruntime only).

The folder is assembled in a temporary sibling and renamed into place, so a failed export never leaves
a half-filled bundle; an existing bundle folder is replaced only when the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ternkit.core.atomic import write_bytes, write_text
from ternkit.core.errors import ArtifactError
from ternkit.core.model import TernaryModel

from .export import OnnxExport, export_onnx, readable

__all__ = ["write_bundle", "BUNDLE_FILES"]

BUNDLE_FILES = ("model.onnx", "labels.json", "predict.py")
_TEMPLATE = Path(__file__).with_name("bundle_predict.py")


def predict_script(runtime: str | None) -> bytes:
    """predict.py, stating the onnxruntime it needs: the version that checked the export (else the installed
    one, which the export was built for)."""
    import onnxruntime as ort

    src = _TEMPLATE.read_text()
    line = 'NEEDS_ONNXRUNTIME = "1.0"'
    if line not in src:  # the template and this writer belong together
        raise ArtifactError("bundle template lacks its NEEDS_ONNXRUNTIME line")
    return src.replace(line, f'NEEDS_ONNXRUNTIME = "{runtime or ort.__version__}"', 1).encode()


def write_bundle(model: TernaryModel, directory: str | os.PathLike, fmt: str = "int2",
                 check: bool = True) -> OnnxExport:
    """Export `model` into `directory` (created or replaced) as a self-contained predictor."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ArtifactError(f"{directory}: exists and is not a directory")
    if directory.is_dir() and any(p.name not in BUNDLE_FILES for p in directory.iterdir()):
        raise ArtifactError(f"{directory}: not empty and not a ternkit bundle; refusing to replace it")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    except OSError as e:
        raise ArtifactError(f"{directory}: cannot create the bundle ({e.strerror or e})") from None
    try:
        result = export_onnx(model, tmp / "model.onnx", fmt, check=check)
        write_text(tmp / "labels.json", json.dumps([str(x) for x in model.labels], indent=1) + "\n")
        write_bytes(tmp / "predict.py", predict_script(result.runtime))
        readable(tmp / "labels.json")
        readable(tmp / "predict.py", executable=True)
        readable(tmp, executable=True)
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            tmp.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(directory)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArtifactError(f"{directory}: cannot write the bundle ({e.strerror or e})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.path = directory / "model.onnx"
    return result
