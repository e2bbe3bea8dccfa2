"""Import lava-nc 0.10.0 on Python 3.11 without touching site-packages; every lava import goes through here.

lava-nc 0.10.0 declares Python < 3.11 and one dataclass (`ByteEncoder` in `lava.magma.compiler.var_model`) is
used as a field default, which 3.11 rejects ("mutable default"). `import_lava()` installs a `sys.meta_path`
finder for exactly that module whose loader compiles the *source* (not pip's cached .pyc of the unpatched
file) with `ByteEncoder` declared `@dataclass(unsafe_hash=True)`. If the pattern is gone (another lava
version), it refuses with one clear line instead of guessing. Lava forks its workers, so they inherit the fix.

Lava also calls `multiprocessing.set_start_method('fork')` on import, which raises if something chose another
start method first; `import_lava()` checks that before importing and says so.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import multiprocessing
import sys
import types
from typing import Any

from ternkit.core.errors import TernkitError

__all__ = ["LavaUnavailable", "import_lava", "require_lava", "lava_version", "TARGET_MODULE", "SUPPORTED_VERSIONS",
           "INSTALL_HINT"]

TARGET_MODULE = "lava.magma.compiler.var_model"
SUPPORTED_VERSIONS = ("0.10.0",)
INSTALL_HINT = ("run `ternkit install-lava` (or: pip install 'ternkit[lava]' && pip install --no-deps "
                "--ignore-requires-python lava-nc==0.10.0)")
_PATTERN = "@dataclass\nclass ByteEncoder:"
_REPLACEMENT = "@dataclass(unsafe_hash=True)\nclass ByteEncoder:"
_MP_MODULE = "lava.magma.runtime.message_infrastructure.multiprocessing"


class LavaUnavailable(TernkitError):
    """lava-nc is missing or not the version this run-time fix was written for."""


class _PatchedLoader(importlib.abc.SourceLoader):
    """Compile var_model.py from source with ByteEncoder made hashable (never from the cached .pyc)."""

    def __init__(self, fullname: str, path: str) -> None:
        self.fullname, self.path = fullname, path

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def path_stats(self, path: str) -> dict[str, Any]:  # no stats -> no bytecode cache is read or written
        raise OSError("bytecode cache disabled for the patched module")

    def source_to_code(self, data: bytes, path: str, *, _optimize: int = -1) -> types.CodeType:  # type: ignore[override]
        text = data.decode("utf-8").replace("\r\n", "\n")
        if text.count(_PATTERN) != 1:
            raise LavaUnavailable(f"{path}: the ByteEncoder definition this Python 3.11 fix expects is not there; "
                                  f"ternkit supports lava-nc {', '.join(SUPPORTED_VERSIONS)}")
        return compile(text.replace(_PATTERN, _REPLACEMENT), path, "exec", dont_inherit=True)

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:  # never write a .pyc
        return None


class _VarModelFinder(importlib.abc.MetaPathFinder):
    """Finds only `lava.magma.compiler.var_model`; every other module is left to the normal finders."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return None
        return importlib.util.spec_from_file_location(fullname, spec.origin,
                                                      loader=_PatchedLoader(fullname, spec.origin))


_FINDER = _VarModelFinder()


def lava_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lava-nc")
    except PackageNotFoundError:
        return None


def require_lava() -> str:
    """The installed lava-nc version, without importing it; LavaUnavailable (one line: how to install) if it is
    missing or another version. Commands that need Lava call this first, before any slow work."""
    ver = lava_version()
    if ver is None:
        raise LavaUnavailable(f"lava-nc is not installed (it is optional): {INSTALL_HINT}")
    if ver not in SUPPORTED_VERSIONS:
        raise LavaUnavailable(f"lava-nc {ver} is installed; ternkit supports lava-nc {', '.join(SUPPORTED_VERSIONS)}: "
                              f"{INSTALL_HINT}")
    return ver


def import_lava() -> types.ModuleType:
    """Install the fix (once) and import `lava`; raise LavaUnavailable with one line if that cannot work."""
    ver = require_lava()
    if "lava" in sys.modules and TARGET_MODULE in sys.modules and _FINDER in sys.meta_path:
        return sys.modules["lava"]
    method = multiprocessing.get_start_method(allow_none=True)
    if method not in (None, "fork"):
        raise LavaUnavailable(f"lava needs the 'fork' multiprocessing start method, but {method!r} was set first")
    if method == "fork":  # lava's own set_start_method('fork') would raise "context has already been set"
        multiprocessing.context._default_context._actual_context = None  # type: ignore[attr-defined]
    if TARGET_MODULE in sys.modules:  # imported before the fix, i.e. it loaded unpatched and failed or was patched
        raise LavaUnavailable(f"{TARGET_MODULE} was imported before ternkit's Python 3.11 fix was installed")
    if sys.version_info >= (3, 11) and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    try:
        lava = importlib.import_module("lava")
        importlib.import_module(TARGET_MODULE)
        importlib.import_module(_MP_MODULE)  # sets the start method now, while we know it is free
    except LavaUnavailable:
        raise
    except ImportError as e:
        raise LavaUnavailable(f"lava-nc {ver} cannot be imported: {e}") from None
    except RuntimeError as e:  # "context has already been set": someone chose a start method meanwhile
        raise LavaUnavailable(f"lava-nc {ver} cannot set the 'fork' start method: {e}") from None
    except ValueError as e:  # the 3.11 dataclass error when the fix did not apply
        raise LavaUnavailable(f"lava-nc {ver} does not import on this Python: {e}") from None
    return lava
