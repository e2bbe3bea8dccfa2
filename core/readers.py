"""Bounded readers: every file a user names is read through here.

Why: a file from a stranger may be a symlink to /dev/zero, a FIFO, a directory or many GB. Reading it
whole (or waiting on it) would hang or exhaust memory, so each reader checks that the path is a regular
file of a bounded size *before* it opens it for reading, and reads at most `limit + 1` bytes (the size
can grow between the check and the read).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from .errors import TernkitError

__all__ = ["read_bytes", "read_text", "check_regular", "read_json", "parse_json", "read_toml", "read_gzip", "MIB",
           "LIMITS", "MAX_DEPTH", "MAX_INT", "MAX_TIMESTEPS"]

MIB = 1 << 20


def _size(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB else f"{n} byte"


def check_regular(path: str | os.PathLike, limit: int, what: str, error: type[TernkitError] = TernkitError) -> Path:
    """Path of a regular file no larger than `limit` bytes, or `error` with one line saying why not."""
    path = Path(path)
    try:
        st = os.stat(path)  # follows symlinks: a link to a device is judged by the device
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except NotADirectoryError:
        raise error(f"{path}: a parent of this path is not a directory") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a directory, expected a {what} file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: not a regular file (a device, FIFO or socket), expected a {what} file")
    if st.st_size > limit:
        raise error(f"{path}: {st.st_size} bytes is larger than the {_size(limit)} limit for {what} files")
    return path


def read_bytes(path: str | os.PathLike, limit: int, what: str, error: type[TernkitError] = TernkitError) -> bytes:
    """The whole file, refusing non-regular files and files larger than `limit` bytes."""
    path = check_regular(path, limit, what, error)
    try:  # read(limit + 1) would reserve `limit` bytes up front (a MemoryError under `ulimit -v`): read the
        # file's own size (+1 to see growth); a file that grew since is read on in bounded chunks
        with open(path, "rb") as f:
            want = min(os.fstat(f.fileno()).st_size, limit) + 1
            chunks = [f.read(want)]
            size = len(chunks[0])
            while size == want and size <= limit and (chunk := f.read(min(16 * MIB, limit + 1 - size))):
                chunks.append(chunk)
                size = want = size + len(chunk)
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None
    if size > limit:
        raise error(f"{path}: larger than the {_size(limit)} limit for {what} files")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_text(path: str | os.PathLike, limit: int, what: str, error: type[TernkitError] = TernkitError) -> str:
    """UTF-8 text (a leading BOM is dropped) of a bounded regular file."""
    data = read_bytes(path, limit, what, error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start})") from None


# -- limits -----------------------------------------------------------------------------------------------------
# Generous for real use (MNIST's 60,000 training images are 47 MB raw), small enough that a hostile file
# is refused before it costs memory. Sizes are bytes as read (IDX: decompressed).
LIMITS = {
    "json": 256 * MIB,  # activity records, Lava graphs (a 784-800-800-10 graph is ~30 MB)
    "toml": 1 * MIB,  # target specs, pipeline files
    "csv": 256 * MIB,
    "idx": 256 * MIB,  # one decompressed IDX file (1 GiB once converted to float32)
    "npz": 256 * MIB,  # an .npz file, and the sum of its members' unpacked sizes
    "folder": 256 * MIB,  # decoded pixels of all images of a folder: dataset (uint8; 1 GiB as float32)
    "image_file": 64 * MIB,  # one PNG/JPEG file of a folder: dataset
}
MAX_DEPTH = 64  # nesting of JSON/TOML arrays and tables: real files need fewer than 10
MAX_TIMESTEPS = 100_000  # per sample, in a Lava graph (rate coding uses tens to hundreds)
MAX_INT = 2**63 - 1  # integers beyond int64 cannot be meant, and overflow numpy and float conversion


def _bounded(value: object, path: Path, error: type[TernkitError]) -> None:
    """Refuse nesting deeper than MAX_DEPTH and integers beyond int64 (iteratively: no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict | list):
            if depth > MAX_DEPTH:
                raise error(f"{path}: nested deeper than {MAX_DEPTH} levels")
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
            raise error(f"{path}: integer {str(v)[:20]}... is too large (more than 64 bits)")


def _json_int(s: str) -> int:
    if len(s.lstrip("-")) > 19:  # also keeps Python's int() of a 10^6-digit string (quadratic time) away
        raise ValueError(f"integer {s[:20]}... is too large (more than 64 bits)")
    return int(s)


def _json_constant(s: str) -> float:
    raise ValueError(f"{s} is not a JSON number")


def parse_json(text: str | bytes, path: str | os.PathLike, error: type[TernkitError] = TernkitError) -> object:
    """Strict JSON: no NaN/Infinity, integers within int64, nesting at most MAX_DEPTH; one-line `error`."""
    import json

    path = Path(path)
    try:
        value = json.loads(text, parse_int=_json_int, parse_constant=_json_constant)
    except json.JSONDecodeError as e:
        raise error(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    except RecursionError:
        raise error(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    _bounded(value, path, error)
    return value


def read_json(path: str | os.PathLike, what: str, error: type[TernkitError] = TernkitError,
              limit: int | None = None) -> object:
    """A bounded regular JSON file, parsed strictly (see `parse_json`)."""
    return parse_json(read_text(path, LIMITS["json"] if limit is None else limit, what, error), path, error)


def read_toml(path: str | os.PathLike, what: str, error: type[TernkitError] = TernkitError) -> dict:
    """A bounded regular TOML file: nesting at most MAX_DEPTH, integers within int64; one-line `error`."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
        import tomli as tomllib

    text = read_text(path, LIMITS["toml"], what, error)
    path = Path(path)
    try:
        value = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{path}: not valid TOML ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise error(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # int() of a huge literal
        raise error(f"{path}: not valid TOML ({str(e).splitlines()[0][:80]})") from None
    _bounded(value, path, error)
    return value


def read_gzip(path: str | os.PathLike, limit: int, what: str, error: type[TernkitError] = TernkitError,
              expected: Callable[[bytes], int] | None = None, header: int = 0) -> bytes:
    """Decompress a bounded regular .gz file without ever holding more than `limit` bytes of output.

    With `expected`, the first `header` decompressed bytes are read first and `expected(head)` gives the
    total decompressed size they declare (refused above `limit`); the rest is read only up to that size + 1,
    so a small file that expands to GBs is refused after reading what its header promised."""
    import gzip
    import zlib

    path = check_regular(path, limit, what, error)  # the compressed file itself is at most `limit` too
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(header) if header else b""
            total = limit
            if expected is not None:
                total = expected(head)
                if total > limit:
                    raise error(f"{path}: declares {total} bytes, more than the {_size(limit)} limit for {what} "
                                "files")
            rest = f.read(max(0, total - len(head)) + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise error(f"{path}: cannot decompress ({e})") from None
    data = head + rest
    if len(data) > total:
        if expected is not None:
            raise error(f"{path}: holds more data than its header declares ({total} bytes)")
        raise error(f"{path}: decompresses to more than the {_size(limit)} limit for {what} files")
    return data
