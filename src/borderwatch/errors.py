"""Exception hierarchy for borderwatch.

Every error raised on purpose by borderwatch derives from :class:`BorderwatchError`.
Subclasses also inherit the builtin exception that callers would expect, so
``except OSError`` still catches an unreadable raster. Messages name the file, the
offending value and, where possible, the fix; the CLI prints them as one line.
"""

from __future__ import annotations

__all__ = [
    "AOIError",
    "BorderwatchError",
    "CacheIOError",
    "InputError",
    "InternalError",
    "MissingDependencyError",
    "NoOverlapError",
    "OutputExistsError",
    "OutputWriteError",
    "PairRefusedError",
    "RasterReadError",
    "SigningKeyError",
]


class BorderwatchError(Exception):
    """Root of all borderwatch errors."""


class InputError(BorderwatchError, ValueError):
    """An input file or parameter has content that borderwatch cannot use."""


class RasterReadError(BorderwatchError, OSError):
    """A raster file is missing, unreadable, truncated or not a raster at all."""


class NoOverlapError(InputError):
    """Inputs do not overlap each other or the area of interest."""


class PairRefusedError(InputError):
    """A before/after pair refused: swapped dates or identical inputs.

    ``kind`` is ``"reversed"`` (swapped dates) or ``"identical"`` (the same imagery).

    ``problem`` is the message without its fix, so a caller that names the override
    differently (a job file's ``allow_reversed`` column) can give its own fix.
    """

    def __init__(self, problem: str, *, kind: str, fix: str) -> None:
        self.problem, self.kind = problem, kind
        super().__init__(f"{problem}; {fix}")


class AOIError(InputError):
    """An area-of-interest file or catalogue entry is malformed or unknown."""


class OutputExistsError(BorderwatchError, FileExistsError):
    """An output file exists and ``overwrite`` was not requested."""


class OutputWriteError(BorderwatchError, OSError):
    """An output could not be written: read-only folder, full disk, GDAL write error."""


class SigningKeyError(InputError):
    """A signing or verification key file is missing, unreadable or not an Ed25519 key."""


class CacheIOError(BorderwatchError, OSError):
    """Reading or writing a scratch cache file on disk stopped short (disk full, I/O error)."""


class MissingDependencyError(BorderwatchError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class InternalError(BorderwatchError, RuntimeError):
    """An internal consistency check failed: a bug in borderwatch, not in the inputs."""
