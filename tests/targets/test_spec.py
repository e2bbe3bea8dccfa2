"""Target specs: the shipped ones load and cite every constant; a broken user spec is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ternkit.core import ArtifactError, OptionError
from ternkit.targets import load_target, shipped_targets

SPECS = Path(__file__).resolve().parents[2] / "targets" / "specs"


def test_shipped_targets():
    assert {"loihi", "loihi2", "mcu", "cpu-fp32"} <= set(shipped_targets())
    for name in shipped_targets():
        t = load_target(name)
        assert t.name == name and t.assumptions and t.description
        assert all(c.source for c in t.constants.values())


def test_published_constants():
    loihi, loihi2, mcu, cpu = (load_target(n) for n in ("loihi", "loihi2", "mcu", "cpu-fp32"))
    assert loihi.pj("synaptic_op") == 23.6 and loihi.pj("neuron_update_active") == 81
    assert loihi.pj("neuron_update_inactive") == 52 and loihi.value("within_tile_spike") == 1.7
    assert 3.0 <= loihi.value("tile_hop") <= 4.0
    assert loihi.value("cores") * loihi.value("neurons_per_core") == 131072
    assert loihi2.value("cores") * loihi2.value("neurons_per_core") == pytest.approx(1_048_576)
    assert loihi2.pj("synaptic_op") == loihi.pj("synaptic_op")
    assert (mcu.value("int8_add"), mcu.value("int8_mult"), mcu.value("int32_add")) == (0.03, 0.2, 0.1)
    assert cpu.pj("mac") == pytest.approx(3.7 + 0.9) and cpu.pj("weight_access") == 640


def _write(tmp_path: Path, mutate) -> Path:
    data = tomllib.loads((SPECS / "mcu.toml").read_text())
    mutate(data)
    path = tmp_path / "mine.toml"
    path.write_text(_dumps(data))
    return path


def _dumps(data: dict) -> str:
    """Minimal TOML writer for the spec's shape (tomllib reads only)."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)
    lines = [f"{k} = {val(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            for kk, vv in v.items():
                if isinstance(vv, dict):
                    lines.append(f"{kk} = {{ " + ", ".join(f"{a} = {val(b)}" for a, b in vv.items()) + " }")
                else:
                    lines.append(f"{kk} = {val(vv)}")
    return "\n".join(lines) + "\n"


def test_custom_target_file(tmp_path):
    path = _write(tmp_path, lambda d: d.update(name="my-mcu"))
    t = load_target(str(path))
    assert t.name == "my-mcu" and t.origin == str(path) and t.pj("mac") == pytest.approx(0.3)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("kind"), "missing field 'kind'"),
    (lambda d: d["constants"].pop("flash_32bit"), "not defined"),
    (lambda d: d["constants"].pop("activation_bits"), "missing field 'constants.activation_bits'"),
    (lambda d: d["energy"].pop("mac"), "missing field 'energy.mac'"),
    (lambda d: d["constants"]["int32_add"].update(value=-0.1), "must not be negative"),
    (lambda d: d["constants"]["int32_add"].update(source=" "), "source must not be empty"),
    (lambda d: d["constants"]["int32_add"].pop("unit"), "missing field 'unit'"),
    (lambda d: d["constants"]["int32_add"].update(value="cheap"), "must be int or float"),
    (lambda d: d["constants"]["sram_32bit"].update(unit="nJ"), "not 'pJ'"),
    (lambda d: d.update(kind="gpu"), "kind must be one of"),
    (lambda d: d["constants"]["weight_memory_bytes"].update(value=0), "must be positive"),
    (lambda d: d.update(skip_zero_weights="yes"), "must be bool"),
])
def test_bad_spec_is_one_clear_error(tmp_path, mutate, message):
    path = _write(tmp_path, mutate)
    with pytest.raises(ArtifactError, match=message) as e:
        load_target(str(path))
    assert "\n" not in str(e.value)


def test_unknown_name_and_bad_files(tmp_path):
    with pytest.raises(OptionError, match="unknown target 'tpu'.*loihi2"):
        load_target("tpu")
    with pytest.raises(ArtifactError, match="no such file"):
        load_target(str(tmp_path / "absent.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed\n")
    with pytest.raises(ArtifactError, match="not valid TOML"):
        load_target(str(bad))
