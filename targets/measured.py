"""Measured figures of a real microcontroller build, and how they stand beside an `mcu` target's estimates.

The C export cross-built for a Cortex-M4 (`ternkit simulate --backend cortex-m4`) measures flash (text +
rodata + data of the model's object, arm-none-eabi-size), RAM (data + bss + the stack high-water mark of
tk_predict) and instructions per inference (qemu). They arrive here as data -- a build directory's mcu.json
(read by the CLI together with the object's sizes) or the `mcu` section of an activity record -- and are
checked to belong to the model; targets never build anything. Energy stays an estimate.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ternkit.core.errors import ArtifactError
from ternkit.core.readers import read_json
from ternkit.core.text import md_code

from .spec import Target

__all__ = ["parse_measured", "measured_from_record", "measured_fit", "measured_lines"]

_SIZES = ("flash_bytes", "static_ram_bytes")
_OPTIONAL = ("stack_bytes", "ram_bytes", "instructions_per_inference", "arena_bytes", "stack_planned_bytes",
             "ram_planned_bytes")


def _count(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0 \
            or value > 1 << 40:
        raise ArtifactError(f"measured figures {where}: {what} must be a non-negative number, got {value!r:.40}")
    return value


def parse_measured(data: Any, where: str, fingerprint: str | None = None, model_path: str = "the model"
                   ) -> dict[str, Any]:
    """Validated measured figures (sizes in bytes, instructions per inference), refused for another model."""
    if not isinstance(data, dict):
        raise ArtifactError(f"measured figures {where}: not a JSON object")
    theirs = data.get("model_fingerprint")
    if fingerprint is not None and theirs != fingerprint:
        raise ArtifactError(f"measured figures {where}: " + (
            "do not name the model they were measured on" if not isinstance(theirs, str) else
            f"were measured on another model than {model_path}"))
    out: dict[str, Any] = {"source": where}
    for key in _SIZES:
        if key not in data:
            raise ArtifactError(f"measured figures {where}: {key} missing")
        out[key] = _count(data[key], key, where)
    for key in _OPTIONAL:
        if data.get(key) is not None:
            out[key] = _count(data[key], key, where)
    if "ram_bytes" not in out:
        out["ram_bytes"] = out["static_ram_bytes"]  # without a run: data + bss only
    measured = data.get("measured")
    out["measured"] = [m for m in measured if isinstance(m, str)][:20] if isinstance(measured, list) else list(_SIZES)
    return out


def measured_from_record(path: str | os.PathLike, fingerprint: str, model_path: str = "the model"
                         ) -> dict[str, Any] | None:
    """The `mcu` section of an activity record written by a Cortex-M4 run, or None for other backends."""
    data = read_json(path, "activity JSON", ArtifactError)
    if not isinstance(data, dict) or not isinstance(data.get("mcu"), dict):
        return None
    section = dict(data["mcu"])
    section.setdefault("model_fingerprint", data.get("model_fingerprint"))
    return parse_measured(section, str(path), fingerprint, model_path)


def measured_fit(target: Target, fit: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """The measured flash and RAM against the target's capacities, beside the estimated fit."""
    wcap, acap = target.value("weight_memory_bytes"), target.value("activation_memory_bytes")
    flash, ram = measured["flash_bytes"], measured["ram_bytes"]
    stack_measured = "stack_bytes" in measured
    return {
        "source": measured["source"], "fits": flash <= wcap and ram <= acap,
        "flash_bytes": flash, "flash_used": flash / wcap,
        "ram_bytes": ram, "ram_used": ram / acap, "stack_bytes": measured.get("stack_bytes"),
        "static_ram_bytes": measured["static_ram_bytes"], "arena_bytes": measured.get("arena_bytes"),
        "stack_planned_bytes": measured.get("stack_planned_bytes"),
        "ram_planned_bytes": measured.get("ram_planned_bytes"),
        "instructions_per_inference": measured.get("instructions_per_inference"),
        "measured": ["flash_bytes", "static_ram_bytes"] + (["stack_bytes", "ram_bytes"] if stack_measured else [])
        + (["instructions_per_inference"] if "instructions_per_inference" in measured else []),
        "estimated": ["energy"] + ([] if stack_measured else ["stack_bytes"]),
        "estimated_parameter_bytes": fit.get("parameter_bytes"),
        "estimated_activation_bytes": fit.get("peak_activation_bytes"),
    }


def measured_lines(row: dict[str, Any]) -> list[str]:
    """Markdown for a target row that carries measured figures (none otherwise)."""
    m = row.get("measured")
    if not m:
        return []
    ram = (f"RAM **{m['ram_bytes']:,.0f} B** (data + bss {m['static_ram_bytes']:,.0f} B + stack high-water "
           f"{m['stack_bytes']:,.0f} B)" if m.get("stack_bytes") is not None else
           f"RAM {m['static_ram_bytes']:,.0f} B (data + bss; stack not measured)")
    if m.get("ram_planned_bytes") is not None:
        ram += (f"; planned RAM {m['ram_planned_bytes']:,.0f} B (arena {m['arena_bytes']:,.0f} B + planned stack "
                f"{m['stack_planned_bytes']:,.0f} B)")
    insns = (f"; **{m['instructions_per_inference']:,.0f} instructions per inference**"
             if m.get("instructions_per_inference") is not None else "")
    return ["", f"Measured on a build ({md_code(m['source'])}): model flash **{m['flash_bytes']:,.0f} B** "
            f"({100 * m['flash_used']:.1f} % of weight memory), {ram} ({100 * m['ram_used']:.1f} % of activation "
            f"memory){insns}. Measured: {', '.join(m['measured'])}; estimated: {', '.join(m['estimated'])} "
            f"(the estimate above counted {m['estimated_parameter_bytes']:,} B of parameters and "
            f"{m['estimated_activation_bytes']:,} B of activations)."]
