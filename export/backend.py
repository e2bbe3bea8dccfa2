"""A deployment backend is one unit, described by one `Backend` value, and there is one registry of them.

Everything that needs to know the backends reads this registry and nothing else: the CLI (`ternkit export
NAME` subcommands and their flags, `ternkit simulate --backend NAME` choices and flags), the Python API
(`ternkit.export.export_model`, `ternkit.simulate`), the pipeline and the conformance tests. A backend is a
value, not a subclass: one frozen dataclass of data and plain functions, so a reader sees every part of it in
one place and nothing is inherited.

How a backend registers
-----------------------
Write a module (ternkit's own backends: `export/NAME/backend.py`) that builds one `Backend` and passes it to
`register` when it is imported. Keep that module light -- it is imported to build the CLI's parser -- and
import the heavy parts (onnx, lava, compilers) inside the functions:

    from ternkit.export.backend import Backend, Option, Written, register

    def _export(model, out, *, where, fast=False):      # -> Written (the files and the line the CLI prints)
        ...
    def _simulate(model, data, *, where, fast=False):   # -> an activity record (ternkit.core.activity_schema)
        ...

    register(Backend(
        name="toy",                                     # lower case, digits, '-': BACKEND_NAME
        summary="one line for `ternkit export --help`",
        handlers=lambda: HANDLERS,                      # operation kind -> handler, loaded on first use
        refusals={"maxpool2d": "why, and what to use instead"},   # kinds it refuses, each with a hint
        limits={"conv2d": "only depthwise groups"},     # kinds it takes only in some forms: words of the refusal
        export=_export,                                 # None for a simulate-only backend (cortex-m4)
        simulate=_simulate,                             # None for an export-only backend
        require=_require,                               # (stage) -> None; TernkitError if a dependency is missing
        out_name="model.toy",                           # the output's name when nobody gives one
        export_options=(Option("--fast", "trade accuracy for speed", switch=True),),
        simulate_options=(Option("--fast", "trade accuracy for speed", switch=True),),
    ))

Then make it load, in ONE of two ways:
- ternkit's own backends: one line in `export/__init__.py`, `from .toy import backend as _toy`;
- anyone else, without editing ternkit: a Python entry point in the group `ternkit.backends` of their
  distribution naming that module (pyproject.toml: `[project.entry-points."ternkit.backends"]`
  `toy = "toy_pkg.backend"`) -- or a `Backend` object (`"toy_pkg.backend:BACKEND"`). `backends()` loads the
  group once, on first use; a plug-in that fails to load (or to register) is skipped with one line on stderr.

The contract of the functions:
- `export(model, out, *, where, **options) -> Written`; `simulate(model, data, *, where, **options) -> dict`.
  `where` names the model in messages (its path, or "the model"); `options` holds only the options the caller
  gave (keyword = `Option.dest`), so each function's own keyword defaults apply to the rest. Anything the
  backend cannot do is a `TernkitError` with one line.
- `handlers()` maps each operation kind it runs to its handler; a kind it cannot express is in `refusals` with
  a hint (what to do instead), and `Backend.handler(op)` refuses it in one line. The conformance suite
  (tests/export/test_backend_conformance.py) reads these declarations, no exclusion list of its own: a model
  whose kinds are all handled must export, and simulate with a valid activity record agreeing with the
  reference on at least `agreement` of the samples; a refused kind must be refused with its hint; any other
  kind (an operation registered after the backend was written) must be refused in one line naming it. A kind
  handled only in some forms (hls4ml: max pooling without ceil_mode) is in `limits`, kind -> words its
  UnsupportedError for the other forms contains; the suite accepts exactly that refusal for it.
- `require(stage)` (stage "export" or "simulate": an export may need less than a simulation) runs before any
  slow work (calibration, building) and raises a TernkitError whose one line says how to install what is
  missing; the tests skip a backend whose `require` fails, with that line as the reason.

Options are data (`Option`): the CLI turns them into argparse options, passes what the user gave through as
keyword options, and refuses in one line an option that the chosen backend does not declare. `ternkit simulate`
holds every backend's simulate options, so two backends may declare the same simulate flag (`--calibrate`) only
with the same dest, type and const (their choices and help may differ); export options are per backend.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ternkit.core.activity_schema import BACKEND_NAME
from ternkit.core.errors import OptionError
from ternkit.core.ops import handler as _lookup

__all__ = ["Option", "Backend", "Written", "ENTRY_POINT_GROUP", "REGISTRY", "register", "unregister", "backends", "get",
           "given_options"]

ENTRY_POINT_GROUP = "ternkit.backends"
# keywords and argparse dests the commands and `export_model` / `simulate` use themselves
RESERVED = frozenset({"model", "out", "where", "data", "backend", "dataset", "limit", "json", "run", "command",
                      "format", "model_path"})


@dataclass(frozen=True)
class Option:
    """One command-line option a backend adds to `ternkit export NAME` or `ternkit simulate`.

    `dest` is the keyword the backend's function receives (default: the flag without dashes, '-' -> '_').
    A value option converts its text with `type` (and may restrict it to `choices`); a switch (`switch=True`)
    stores `const` (default True) when given. Options sharing a `group` are mutually exclusive. `default` is
    what the backend does when the option is absent -- shown in --help, never passed."""

    flag: str
    help: str
    dest: str = ""
    type: Callable[[str], Any] = str
    choices: tuple[Any, ...] | None = None
    default: Any = None
    switch: bool = False
    const: Any = True
    metavar: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"--[a-z][a-z0-9-]*", self.flag):
            raise ValueError(f"option flag {self.flag!r} must look like --name")
        if not self.dest:
            object.__setattr__(self, "dest", self.flag[2:].replace("-", "_"))


@dataclass(frozen=True)
class Written:
    """What an export wrote: the paths, the one line the CLI prints, and the backend's own result object
    (`OnnxExport`, the Lava graph, the C program) for callers that want the details."""

    paths: tuple[Path, ...]
    summary: str
    result: Any = None


@dataclass(frozen=True)
class Backend:
    """One backend (see the module docstring for how to write and register one)."""

    name: str
    summary: str
    handlers: Callable[[], Mapping[str, Any]]
    refusals: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)  # handled kind -> words of its refusal of some forms
    export: Callable[..., Written] | None = None
    simulate: Callable[..., dict[str, Any]] | None = None
    require: Callable[[str], Any] | None = None  # (stage: "export" | "simulate")
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # simulate options -> options with the files
                                # they name read and checked: bad input is answered before missing dependencies
    export_options: tuple[Option, ...] = ()
    simulate_options: tuple[Option, ...] = ()
    title: str = ""             # the name in messages ("ONNX", "Lava", "C"); default: the name
    description: str = ""       # the long help of `ternkit export NAME`; default: the summary
    out_help: str = "the file to write"
    out_name: str = ""          # what to call the output when nobody says (model.onnx; a directory: c); default
                                # "model.NAME" -- the pipeline and the conformance suite use it
    out_required: bool = True   # False: the backend's export checks `out` itself (onnx: -o or --bundle)
    notes: Callable[[dict[str, Any]], str] | None = None  # extra lines `ternkit simulate` prints for a record
    agreement: float = 0.9      # the least argmax agreement with the reference that `simulate` promises on the
                                # conformance suite's example models (rate-coded spiking backends promise less)

    def __post_init__(self) -> None:
        if len(self.name) > 40 or not BACKEND_NAME.fullmatch(self.name):
            raise ValueError(f"backend name {self.name!r} must match {BACKEND_NAME.pattern}")
        if self.export is None and self.simulate is None:
            raise ValueError(f"backend {self.name}: give export, simulate or both")
        for opts in (self.export_options, self.simulate_options):
            dests = [o.dest for o in opts]
            if set(dests) & RESERVED:
                raise ValueError(f"backend {self.name}: option names {sorted(set(dests) & RESERVED)} are taken by "
                                 "the commands and the API")
            if len(set(dests)) != len(dests) and not all(o.group for o in opts if dests.count(o.dest) > 1):
                raise ValueError(f"backend {self.name}: two options write {dests}")

    @property
    def label(self) -> str:
        return self.title or self.name

    @property
    def default_out(self) -> str:
        return self.out_name or f"model.{self.name}"

    def handler(self, op: object, where: str = "") -> Any:
        """The handler of `op`, or UnsupportedError (one line, naming the operation and the refusal's hint)."""
        return _lookup(self.handlers(), op, self.label, where=where, hint=dict(self.refusals))

    def check_require(self, stage: str) -> None:
        """Raise the backend's one-line TernkitError if what `stage` needs is not installed."""
        if self.require is not None:
            self.require(stage)


_REGISTRY: dict[str, Backend] = {}
REGISTRY: Mapping[str, Backend] = MappingProxyType(_REGISTRY)  # a live, read-only view (entry points: `backends()`)
_entry_points_loaded = False


def _compatible(a: Option, b: Option) -> bool:
    return (a.dest, a.type, a.switch, a.const) == (b.dest, b.type, b.switch, b.const)


def register(backend: Backend) -> Backend:
    """Add `backend` to the registry (registering the same value twice is harmless); returns it. A different
    backend under a taken name, or a flag that another backend declares differently, is refused."""
    old = _REGISTRY.get(backend.name)
    if old is not None and old != backend:
        raise ValueError(f"a different backend named {backend.name!r} is already registered")
    for other in _REGISTRY.values():
        if other.name == backend.name:
            continue
        for o in backend.simulate_options:  # `ternkit simulate` holds every backend's; each export has its own
            for t in other.simulate_options:
                if o.flag == t.flag and not _compatible(o, t):
                    raise ValueError(f"backend {backend.name}: simulate option {o.flag} differs from backend "
                                     f"{other.name}'s (dest, type and switch must match)")
    _REGISTRY[backend.name] = backend
    return backend


def unregister(name: str) -> None:
    """Remove a backend (tests that register a toy one clean up with this)."""
    _REGISTRY.pop(name, None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    importlib.import_module("ternkit.export")  # ternkit's own backends first: they keep their order
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
            if isinstance(loaded, Backend):
                register(loaded)
        except Exception as e:  # someone else's broken plug-in must not take ternkit's own backends down
            msg = " ".join(f"{type(e).__name__}: {e}".split())
            print(f"ternkit: skipped backend plug-in {ep.name} = {ep.value} ({msg})"[:300], file=sys.stderr)


def backends() -> dict[str, Backend]:
    """Every registered backend by name, in registration order (ternkit's own, then entry points)."""
    _load_entry_points()
    return dict(_REGISTRY)


def get(name: str) -> Backend:
    """The backend `name`, or OptionError naming the registered ones."""
    found = backends().get(name)
    if found is None:
        raise OptionError(f"unknown backend {name!r:.40}; choose one of {', '.join(_REGISTRY)}")
    return found


def given_options(backend: Backend, stage: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options a caller gave for `stage` ("export" or "simulate"), checked against what `backend`
    declares: None values are dropped (not given), an undeclared keyword or a value outside an option's
    choices is refused in one line. (An undeclared keyword set to False counts as not given, as None does.)"""
    declared = {o.dest: o for o in (backend.export_options if stage == "export" else backend.simulate_options)}
    given = {k: v for k, v in options.items() if v is not None and not (v is False and k not in declared)}
    extra = sorted(set(given) - set(declared))
    if extra:
        raise OptionError(f"{', '.join(extra)} do not apply to backend {backend.name}"
                          f"{'' if stage == 'simulate' else ' export'}")
    for k, v in given.items():
        o = declared[k]
        if o.choices is not None and v not in o.choices:
            raise OptionError(f"{o.flag} {v!r:.40}: backend {backend.name} takes "
                              f"{' or '.join(map(str, o.choices))}")
    return given
