"""The installed ternkit version, recorded in every artifact's provenance and shown by `ternkit --version`."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["ternkit_version"]


def ternkit_version() -> str:
    try:
        return version("ternkit")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"
