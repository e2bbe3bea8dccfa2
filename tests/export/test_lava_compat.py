"""The Python 3.11 run-time fix for lava-nc: real imports, a real Lava run, loud refusals."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from ternkit.export.lava import compat as lava_compat
from ternkit.export.lava.compat import LavaUnavailable, import_lava


@pytest.mark.lava
def test_fix_applies_in_memory_only():
    import_lava()
    from lava.magma.compiler import var_model

    assert dataclasses.fields(var_model.CoreEncoder)[0].default == var_model.ByteEncoder()
    assert var_model.ByteEncoder.__hash__ is not None
    # site-packages is untouched: the file on disk still has the plain @dataclass
    origin = importlib.util.find_spec("lava").submodule_search_locations[0] + "/magma/compiler/var_model.py"
    with open(origin, encoding="utf-8") as f:
        assert lava_compat._PATTERN in f.read()


@pytest.mark.lava
def test_real_lava_network_runs():
    """Stock Lava processes (RingBuffer -> Dense -> LIF -> RingBuffer sink) on Loihi2SimCfg, checked by hand."""
    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF

    spikes = np.zeros((2, 8), dtype=int)
    spikes[0, ::2] = 1  # input 0 fires every other step, input 1 never
    src = Source(data=spikes)
    dense = Dense(weights=np.array([[10, 0]]))
    lif = LIF(shape=(1,), du=4095, dv=0, vth=25, bias_mant=0)
    sink = Sink(shape=(1,), buffer=8)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    try:
        src.run(condition=RunSteps(num_steps=8), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        out = sink.data.get()
    finally:
        src.stop()
    # 4 input spikes reach the LIF (Dense delays one step); v grows by 10 per spike (fixed-point LIF shifts input
    # and threshold alike), crosses 25 at the third one and resets: exactly one output spike
    assert int(out.sum()) == 1


def test_refuses_when_pattern_is_gone(tmp_path):
    loader = lava_compat._PatchedLoader(lava_compat.TARGET_MODULE, str(tmp_path / "var_model.py"))
    with pytest.raises(LavaUnavailable, match="ByteEncoder definition"):
        loader.source_to_code(b"from dataclasses import dataclass\nclass Other: pass\n", "var_model.py")


def test_refuses_other_lava_version(monkeypatch):
    monkeypatch.setattr(lava_compat, "lava_version", lambda: "0.9.0")
    with pytest.raises(LavaUnavailable, match="supports lava-nc 0.10.0"):
        import_lava()
    monkeypatch.setattr(lava_compat, "lava_version", lambda: None)
    with pytest.raises(LavaUnavailable, match="not installed"):
        import_lava()


@pytest.mark.lava
def test_refuses_a_foreign_start_method():
    code = ("import multiprocessing as mp; mp.set_start_method('spawn')\n"
            "from ternkit.export.lava.compat import import_lava, LavaUnavailable\n"
            "try:\n    import_lava()\nexcept LavaUnavailable as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "refused: lava needs the 'fork'" in out.stdout
