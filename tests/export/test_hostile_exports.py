"""Text from a stranger's file through every registered exporter: labels and the provenance's dataset name hold
the C-injection attack and every character. Node names are held to the grammar at load (tests/core/
test_hostile_text.py); what is left is free text, which an exporter may keep as data (ONNX metadata, NIR
attributes, JSON) but never as code: no generated source file holds the attack outside a comment, and every file
reads back in its own consumer. hls4ml's HLS project (C++ that hls4ml generates from the QONNX file and then
compiles) is checked the same way, with the emulation compiled and run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import random_mlp

from ternkit.core import TernkitError, load_model, save_model
from ternkit.core.text import is_name
from ternkit.export import backends, export_model

BYTES = "".join(chr(b) for b in range(256)) + "é€𝄞\u2028\u202e\U0001f600"
PAYLOAD = ('x */\n#include <stdlib.h>\n__attribute__((constructor)) static void tk_pwn(void) { system("touch {m}"); }'
           '\n/* ??/\n// \\\n"\'$\\nosuchcmd$')
CODE = {".c", ".h", ".cpp", ".hpp", ".cc", ".tcl", ".py", ".sh", ".mk"}
EXPORTERS = sorted(n for n, b in backends().items() if b.export is not None)


def _hostile(tmp_path: Path):
    marker = tmp_path / "PWNED"
    payload = PAYLOAD.replace("{m}", str(marker))
    model = random_mlp((4, 8, 3))
    model.labels = [payload + BYTES[:90], BYTES[90:180] + payload, BYTES[180:]]
    model.provenance["dataset"] = payload + BYTES
    path = tmp_path / "m.tern"
    save_model(model, path)
    return load_model(path), marker  # as a stranger's file arrives: through the loader


def _code_outside_comments(root: Path) -> str:
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    text = "".join(p.read_text(errors="replace") for p in files if p.suffix in CODE)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"(//|#(?!\s*(include|define|if|endif|else|pragma|ifndef))).*", " ", text)


def _backend(name: str, stage: str):
    """The registered backend, or the test skipped with the reason its dependency check gives."""
    b = backends()[name]
    try:
        b.check_require(stage)
    except TernkitError as e:
        pytest.skip(f"{name}: {e}")
    return b


def _no_attack(code: str) -> bool:
    return "tk_pwn" not in code and "system(" not in code and "nosuchcmd" not in code


@pytest.mark.parametrize("name", EXPORTERS)
def test_hostile_text_is_data_in_every_export(tmp_path, name):
    b = _backend(name, "export")
    model, marker = _hostile(tmp_path)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    declared = {o.dest for o in b.export_options}
    written = export_model(name, model, tmp_path / b.default_out, **({"calibrate": x} if "calibrate" in declared
                                                                      else {}))
    for p in written.paths:
        assert _no_attack(_code_outside_comments(p)), (name, p)
    assert not marker.exists()
    out = written.paths[0]
    if name in ("onnx", "qonnx"):  # a valid model whose node names are names; the labels are metadata
        import onnx

        proto = onnx.load(str(out))
        onnx.checker.check_model(proto)
        assert all(is_name(n.name.split("/")[0]) or not n.name for n in proto.graph.node), name
    if name == "nir":  # the file reads back in nir, labels as data
        import nir

        assert nir.read(str(out)) is not None


@pytest.mark.slow
def test_hostile_text_through_the_hls4ml_project(tmp_path):
    """`simulate --backend hls4ml --build`: hls4ml writes and compiles C++ from the QONNX file; the attack in
    labels and dataset name reaches none of it, and the compiled emulation runs without it."""
    from ternkit.export import simulate

    _backend("hls4ml", "simulate")
    model, marker = _hostile(tmp_path)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    rec = simulate(model, (x, model.predict(x)), "hls4ml", build=str(tmp_path / "hls"), calibrate=x)
    assert rec["samples"] == 32
    code = _code_outside_comments(tmp_path / "hls")
    assert "#include" in code  # the project's C++ was written and read
    assert _no_attack(code)
    assert not marker.exists()
