"""Redaction of what a published packet must not carry: host name, user name, local paths.

With redaction, every path in a run record (absolute, or relative with a folder part)
becomes its bare file name (the file names and their SHA-256 stay, so the packet can
still be checked against the files), and the host name, user name and home folder,
wherever they stand as a whole token in other text, become ``"redacted"``. Credit
lines (keys ``credit`` and ``*_credit``) are published text and are kept as given: a
host named ``data`` must not turn "Copernicus Sentinel data 2016" into "... redacted 2016".
"""

from __future__ import annotations

import getpass
import os
import platform
import re
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

__all__ = ["REDACTED", "is_absolute_path", "is_path", "redact_record", "user_name"]

REDACTED = "redacted"
#: What :func:`user_name` returns when the system names no user (never redacted as a word).
_NO_USER = "unknown"
#: A name is a whole token when neither side touches a letter, digit, ``-``, ``_`` or ``.``.
_TOKEN = r"(?<![\w.-]){}(?![\w.-])"


def user_name() -> str:
    """Login name of this process (``"unknown"`` when the system has none)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry (containers)
        return _NO_USER


def is_absolute_path(text: str) -> bool:
    """Tell whether ``text`` is an absolute POSIX or Windows path (``/home/x/a.tif``)."""
    return "\n" not in text and (
        PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()
    )


def is_path(text: str) -> bool:
    r"""Tell whether ``text`` reads as a file path: absolute, or relative with a folder part.

    A relative path has a ``/`` or ``\`` and either no white space, a leading ``./``,
    ``../`` or ``~``, or a last part with a file suffix (``My data/aoi.geojson``), so
    prose such as ``"Airbus DS/Spot Image"`` is not one.

    Examples
    --------
    >>> [is_path(t) for t in ("../case/aoi.geojson", "a\\b.tif", "Airbus DS/Spot Image")]
    [True, True, False]
    """
    if is_absolute_path(text):
        return True
    if "\n" in text or not ("/" in text or "\\" in text):
        return False
    pure = PureWindowsPath(text)
    return (
        not any(c.isspace() for c in text)
        or text.startswith(("./", "../", ".\\", "..\\", "~"))
        or bool(pure.suffix)
    )


def _file_name(text: str) -> str:
    pure = PurePosixPath(text) if "\\" not in text else PureWindowsPath(text)
    name = pure.name
    return name if name not in ("", ".", "..", "~") else REDACTED


def _redact_text(text: str, names: re.Pattern[str] | None) -> str:
    if is_path(text):
        return _file_name(text)
    return names.sub(REDACTED, text) if names is not None else text


def _names_pattern() -> re.Pattern[str] | None:
    """Whole-token pattern of this host's name, the user's name and the home folder."""
    home = os.path.expanduser("~")
    user = user_name()
    names = {platform.node(), "" if user == _NO_USER else user, "" if home in ("/", "~") else home}
    names.discard("")
    if not names:
        return None
    # Longest first, so a home folder "/home/ana" goes before the user name "ana".
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(_TOKEN.format(f"(?:{alternatives})"))


def redact_record(value: Any) -> Any:
    r"""Copy a JSON-like ``value`` with paths cut to file names and host and user removed.

    Mapping keys are kept; every string value that is a path (:func:`is_path`) becomes
    its last component, and the host name, user name and home folder, where they stand
    as a whole token (not inside ``metadata``, ``data-2016`` or ``vm_1.tif``), become
    ``"redacted"``. Values under credit keys are kept as given.

    Examples
    --------
    >>> redact_record({"source": "/home/ana/aoi.geojson", "n": [1, "C:\\\\x\\\\b.tif"]})
    {'source': 'aoi.geojson', 'n': [1, 'b.tif']}
    """
    return _walk(value, _names_pattern())


def _is_credit(key: object) -> bool:
    return isinstance(key, str) and (key == "credit" or key.endswith("_credit"))


def _walk(value: Any, names: re.Pattern[str] | None) -> Any:
    if isinstance(value, str):
        return _redact_text(value, names)
    if isinstance(value, Mapping):
        return {k: v if _is_credit(k) else _walk(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v, names) for v in value]
    return value
