"""Redaction of what a published packet must not carry: host name, user name, local paths.

With redaction, every absolute path in a run record becomes its bare file name (the
file names and their SHA-256 stay, so the packet can still be checked against the
files), and the host and user names become ``"redacted"``.
"""

from __future__ import annotations

import getpass
import os
import platform
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

__all__ = ["REDACTED", "is_absolute_path", "redact_record", "user_name"]

REDACTED = "redacted"


def user_name() -> str:
    """Login name of this process (``"unknown"`` when the system has none)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry (containers)
        return "unknown"


def is_absolute_path(text: str) -> bool:
    """Tell whether ``text`` is an absolute POSIX or Windows path (``/home/x/a.tif``)."""
    return "\n" not in text and (
        PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()
    )


def _redact_text(text: str, names: tuple[str, ...]) -> str:
    if is_absolute_path(text):
        pure = PureWindowsPath(text) if PureWindowsPath(text).drive else PurePosixPath(text)
        return pure.name or REDACTED
    for name in names:
        text = text.replace(name, REDACTED)
    return text


def redact_record(value: Any) -> Any:
    r"""Copy a JSON-like ``value`` with absolute paths cut to file names, host name removed.

    Mapping keys are kept; every string value that is an absolute path becomes its
    last component, and the host name and home folder anywhere in a string become
    ``"redacted"``.

    Examples
    --------
    >>> redact_record({"source": "/home/ana/aoi.geojson", "n": [1, "C:\\\\x\\\\b.tif"]})
    {'source': 'aoi.geojson', 'n': [1, 'b.tif']}
    """
    names = tuple(n for n in (os.path.expanduser("~"), platform.node()) if len(n) > 2)
    return _walk(value, names)


def _walk(value: Any, names: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return _redact_text(value, names)
    if isinstance(value, Mapping):
        return {k: _walk(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v, names) for v in value]
    return value
