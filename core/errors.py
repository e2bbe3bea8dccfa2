"""Errors a user can cause. The CLI maps every `TernkitError` to one line on stderr and exit code 2;
anything else is a bug (exit 1)."""

__all__ = ["TernkitError", "DataError", "ArtifactError", "OptionError", "UnsupportedError"]


class TernkitError(Exception):
    """Bad input or usage: the message is shown to the user as is, so make it one clear line."""


class DataError(TernkitError):
    """A dataset spec or file that cannot be read or is unusable (missing, malformed, NaNs, one class)."""


class ArtifactError(TernkitError):
    """A model file (or other artifact) that is missing, corrupt, hostile or inconsistent."""


class OptionError(TernkitError):
    """An option value that is out of range or contradicts another option."""


class UnsupportedError(TernkitError):
    """An operation (or option) that a backend or the tracer cannot express; the message names it."""
