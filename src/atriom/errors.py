"""Typed errors. Every :class:`AtriomError` is a *user* error: the CLI prints its message
without a traceback and exits with :attr:`AtriomError.exit_code` (2). Anything else is a
bug and keeps its traceback."""

from __future__ import annotations


class AtriomError(Exception):
    """Base class of the errors a user can fix; the message says what to do."""

    exit_code = 2


class ConfigError(AtriomError):
    """A config file, key or override is wrong (unknown key, bad type, missing value)."""


class ProjectError(AtriomError):
    """The working directory is not an ATRIOM project, or a required project file is missing."""


class DataError(AtriomError):
    """Input data is missing, unreadable or inconsistent."""


class VideoError(DataError):
    """A video cannot be opened or decoded, or a requested frame does not exist.

    ``reason`` is the short cause (``"empty file (0 bytes)"``) for reports such as the
    Reservoir's quarantine list; the message adds the path and what to do.
    """

    def __init__(self, message: str, *, path: object = None, reason: str | None = None):
        super().__init__(message)
        self.path = path
        self.reason = reason or message


class ModelError(AtriomError):
    """A model cannot be found, resolved offline or loaded."""


class UpstreamError(AtriomError):
    """An upstream stage's outputs are missing or malformed: run that stage first."""
