"""Target specs: hardware described as data (TOML), so a user can add a device without writing code.

A spec names every constant with its value, unit and source, and builds the energies the estimators use
("roles") as sums of those constants, so a derived figure such as a MAC (multiply + add) never hides where it
came from. Loading validates everything a report relies on: a missing field, an unknown kind or a negative
energy is a one-line `ArtifactError` (CLI exit 2), never a traceback or a silently wrong figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ternkit.core.errors import ArtifactError, OptionError
from ternkit.core.readers import read_toml
from ternkit.core.text import cut

__all__ = ["Constant", "Target", "load_target", "parse_target", "shipped_targets", "KINDS"]

# kind -> (required constants other than energies, required energy roles)
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "neuromorphic": (("cores", "neurons_per_core", "synaptic_memory_bits_per_core"),
                     ("synaptic_op", "neuron_update_active", "neuron_update_inactive", "message")),
    "mcu": (("weight_memory_bytes", "activation_memory_bytes", "memory_word_bits", "activation_bits",
             "dense_weight_bits"),
            ("accumulate", "multiply", "mac", "weight_access", "activation_access")),
    "cpu": (("weight_memory_bytes", "activation_memory_bytes", "memory_word_bits", "activation_bits",
             "dense_weight_bits"),
            ("accumulate", "multiply", "mac", "weight_access", "activation_access")),
}


@dataclass(frozen=True)
class Constant:
    value: float
    unit: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "source": self.source}


@dataclass
class Target:
    name: str
    description: str
    kind: str
    constants: dict[str, Constant]
    energy: dict[str, list[str]]  # role -> constants summed (all in pJ)
    skip_zero_weights: bool
    skip_zero_activations: bool
    assumptions: list[str] = field(default_factory=list)
    origin: str = ""

    def value(self, name: str) -> float:
        return self.constants[name].value

    def pj(self, role: str) -> float:
        """Energy of one `role` event in picojoules (the sum of its constants)."""
        return float(sum(self.constants[c].value for c in self.energy[role]))

    @property
    def von_neumann(self) -> bool:
        return self.kind in ("mcu", "cpu")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "kind": self.kind, "origin": self.origin,
                "skip_zero_weights": self.skip_zero_weights, "skip_zero_activations": self.skip_zero_activations,
                "constants": {k: c.as_dict() for k, c in self.constants.items()},
                "energy_pj": {r: {"sum_of": cs, "value": self.pj(r)} for r, cs in self.energy.items()},
                "assumptions": list(self.assumptions)}


def _specs_dir() -> Path:
    return Path(str(resources.files("ternkit.targets") / "specs"))


def shipped_targets() -> list[str]:
    """Names of the targets that ship with ternkit (the files in targets/specs/)."""
    return sorted(p.stem for p in _specs_dir().glob("*.toml"))


def load_target(name_or_path: str) -> Target:
    """A shipped target by name (`loihi2`) or a user's TOML file (`path/to/mine.toml`)."""
    if name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path:
        path = Path(name_or_path)
        origin = str(path)
    else:
        path = _specs_dir() / f"{name_or_path}.toml"
        origin = f"shipped:{name_or_path}"
        if not path.is_file():
            raise OptionError(f"unknown target {cut(name_or_path)}; shipped targets: {', '.join(shipped_targets())} "
                              "(or pass a .toml file)")
    try:
        data = read_toml(path, "target TOML", ArtifactError)  # bounded, regular files only, no deep nesting
    except ArtifactError as e:
        raise ArtifactError(f"target file {e}") from None
    return parse_target(data, origin)


def _need(data: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ArtifactError(f"{where}: missing field {cut(key)}")
    value = data[key]
    if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise ArtifactError(f"{where}: field {cut(key)} must be {names}, got {cut(value)}")
    return value


def _constant(name: str, raw: Any, where: str) -> Constant:
    w = f"{where}: constant {cut(name)}"
    if not isinstance(raw, dict):
        raise ArtifactError(f"{w} must be a table with value, unit and source")
    value = _need(raw, "value", (int, float), w)
    unit = _need(raw, "unit", str, w)
    source = _need(raw, "source", str, w)
    if not math.isfinite(value):
        raise ArtifactError(f"{w}: value must be finite, got {value!r}")
    if value < 0:
        raise ArtifactError(f"{w}: value must not be negative, got {value!r}")
    if not source.strip():
        raise ArtifactError(f"{w}: source must not be empty (every constant needs a citation or 'Assumption: ...')")
    return Constant(float(value), unit, source.strip())


def parse_target(data: dict[str, Any], origin: str = "<memory>") -> Target:
    """Validate a decoded TOML document and build the Target."""
    where = f"target {origin}"
    name = _need(data, "name", str, where)
    where = f"target {cut(name)} ({origin})"
    description = _need(data, "description", str, where)
    kind = _need(data, "kind", str, where)
    if kind not in KINDS:
        raise ArtifactError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    skip_w = _need(data, "skip_zero_weights", bool, where)
    skip_a = _need(data, "skip_zero_activations", bool, where)
    assumptions = data.get("assumptions", [])
    if not isinstance(assumptions, list) or not all(isinstance(a, str) for a in assumptions):
        raise ArtifactError(f"{where}: assumptions must be a list of strings")
    raw_constants = _need(data, "constants", dict, where)
    constants = {k: _constant(k, v, where) for k, v in raw_constants.items()}
    raw_energy = _need(data, "energy", dict, where)
    required_constants, required_roles = KINDS[kind]
    for c in required_constants:
        if c not in constants:
            raise ArtifactError(f"{where}: missing field 'constants.{c}' (needed by kind {kind!r})")
        if constants[c].value <= 0:
            raise ArtifactError(f"{where}: constants.{c} must be positive, got {constants[c].value!r}")
    energy: dict[str, list[str]] = {}
    for role, parts in raw_energy.items():
        if isinstance(parts, str):
            parts = [parts]
        if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
            raise ArtifactError(f"{where}: energy.{role} must be a non-empty list of constant names")
        for p in parts:
            if p not in constants:
                raise ArtifactError(f"{where}: energy.{role} names constant {p!r}, which is not defined")
            if constants[p].unit != "pJ":
                raise ArtifactError(f"{where}: energy.{role} sums {p!r} whose unit is "
                                    f"{constants[p].unit!r}, not 'pJ'")
        energy[role] = list(parts)
    for role in required_roles:
        if role not in energy:
            raise ArtifactError(f"{where}: missing field 'energy.{role}' (needed by kind {kind!r})")
    return Target(name, description, kind, constants, energy, skip_w, skip_a, list(assumptions), origin)
