"""Atomic file writes: readers (and a crashed run) never see a half-written output.

Every failure to write -- a read-only directory, a full disk, an output path that is a directory or whose
parent is a file -- becomes one `OutputError` line naming the path (CLI exit 2), and leaves nothing behind:
the temporary file is removed and an existing file at the path is unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import TernkitError

__all__ = ["atomic_path", "atomic_dir", "write_bytes", "write_text", "check_writable", "OutputError"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)


class OutputError(TernkitError):
    """An output that cannot be written (the message says which path and why; nothing was written there)."""


def _why(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "no space left on the device"
    if e.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return (e.strerror or type(e).__name__).lower()


def _ancestor(path: Path, directory: bool = False) -> Path:
    """The nearest existing directory above `path`; OutputError if `path` is a directory (for a file output)
    or that ancestor is a file."""
    if not directory and os.path.isdir(path):
        raise OutputError(f"cannot write {path}: it is a directory (give a file name)")
    probe = path.parent if str(path.parent) else Path(".")
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not os.path.isdir(probe):
        raise OutputError(f"cannot write {path}: {probe} is not a directory")
    return probe


def _parent(path: Path, directory: bool = False) -> Path:
    """The existing directory an output goes into, created if missing; OutputError if that is impossible."""
    parent = path.parent if str(path.parent) else Path(".")
    _ancestor(path, directory)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the directory {parent} for {path} ({_why(e)})") from None
    return parent


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on error removed.
    An OSError while writing or renaming becomes an OutputError (the old file at `path`, if any, stays)."""
    path = Path(path)
    parent = _parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=parent)
    except OSError as e:
        raise OutputError(f"cannot write {path} ({_why(e)})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the permissions a plain open() would
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(e, IsADirectoryError) or os.path.isdir(path):
            raise OutputError(f"cannot write {path}: it is a directory (give a file name)") from None
        raise OutputError(f"cannot write {path} ({_why(e)}); nothing was written there") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def check_output_dir(path: str | os.PathLike, replaceable: tuple[str, ...] = ()) -> None:
    """Refuse an output directory that is a file, or that holds anything but `replaceable` names (an older
    output of the same kind): a user's files are never mixed with or deleted by an output."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(f"cannot write {path}: it exists and is not a directory")
    if os.path.isdir(path):
        others = sorted(set(os.listdir(path)) - set(replaceable))
        if others:
            raise OutputError(f"cannot write {path}: the directory holds other files ({', '.join(others[:3])}"
                              f"{', ...' if len(others) > 3 else ''}); give a new or empty directory")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, replaceable: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; on success it replaces `path` whole, on error it is removed.

    A directory already at `path` is replaced only if it holds nothing but `replaceable` names (an older
    output of the same kind); anything else is refused before work starts, so a user's files are never mixed
    with or deleted by an output. Readers see the old directory or the new one, never a mix."""
    path = Path(path)
    check_output_dir(path, replaceable)
    parent = _parent(path, directory=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    except OSError as e:
        raise OutputError(f"cannot write {path} ({_why(e)})") from None
    old = None
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        yield tmp
        if os.path.isdir(path):
            old = parent / f".{path.name}.{tmp.name[-12:]}.old"
            os.replace(path, old)
        os.replace(tmp, path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not os.path.exists(path):
            with contextlib.suppress(OSError):
                os.replace(old, path)  # put the older output back
        raise OutputError(f"cannot write {path} ({_why(e)}); nothing was written there") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, with one line, if a file cannot be created at `path` (before hours of work go into it)."""
    path = Path(path)
    parent = _ancestor(path)  # probed where the file's directory would be created: nothing is left behind
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe.tmp", dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"cannot write {path} ({_why(e)})") from None


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
