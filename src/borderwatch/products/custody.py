"""Append-only custody log of an evidence packet (``custody.jsonl``).

One JSON object per line: who (``user``, ``"redacted"`` with redaction), when
(``utc``, ISO 8601), what (``action``, ``command``, ``version``, and the SHA-256 of the
``manifest.json`` written), numbered by ``seq`` from 1. Each entry carries in
``prev_sha256`` the SHA-256 of the previous line's bytes (64 zeros for the first), so
an entry edited or deleted anywhere but at the end breaks the chain.

The end is tied to the manifest: before the manifest is written its ``custody`` field
declares the entry that will follow it (every field but ``manifest_sha256``) and the
hash of the line before it; the entry appended after the manifest must match that
declaration, name the manifest's actual SHA-256, and be the last. A packet written
with ``--overwrite`` over an earlier one carries the earlier log forward (when it is
intact), so the log of a destination only grows. So the whole log is covered by
the manifest, and through it by the packet's signature, without the manifest having
to hash a file that names the manifest's own hash.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from borderwatch import __version__
from borderwatch.products.export import atomic_write, sha256_file
from borderwatch.products.redact import REDACTED, user_name

__all__ = [
    "CUSTODY_NAME",
    "GENESIS",
    "append_entry",
    "check_custody",
    "custody_declaration",
    "prior_entries",
]

log = logging.getLogger(__name__)

CUSTODY_NAME = "custody.jsonl"
GENESIS = "0" * 64
_REQUIRED = ("seq", "utc", "user", "action", "command", "version", "prev_sha256")


def _line(entry: Mapping[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def custody_declaration(
    *, command: str, redact: bool, prior: Sequence[bytes] = ()
) -> dict[str, Any]:
    """Build the manifest's ``custody`` field: this run's entry and the hash before it.

    Parameters
    ----------
    command : str
        What ran, e.g. ``"borderwatch detect"``.
    redact : bool
        Record the user as ``"redacted"``.
    prior : sequence of bytes
        Lines already in the log (none for a new packet).
    """
    return {
        "file": CUSTODY_NAME,
        "prev_sha256": hashlib.sha256(prior[-1]).hexdigest() if prior else GENESIS,
        "entry": {
            "seq": len(prior) + 1,
            "utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "user": REDACTED if redact else user_name(),
            "action": "wrote packet",
            "command": command,
            "version": __version__,
        },
    }


def append_entry(
    packet_dir: str | os.PathLike[str],
    declaration: Mapping[str, Any],
    *,
    manifest_sha256: str,
    prior: Sequence[bytes] = (),
) -> Path:
    """Write the log: the ``prior`` lines, then the entry ``declaration`` announced."""
    path = Path(packet_dir) / CUSTODY_NAME
    old = b"".join(line + b"\n" for line in prior)
    entry = {
        **declaration["entry"],
        "manifest_sha256": manifest_sha256,
        "prev_sha256": declaration["prev_sha256"],
    }
    with atomic_write(path, overwrite=False) as tmp:
        tmp.write_bytes(old + _line(entry) + b"\n")
    return path


def check_custody(
    packet_dir: str | os.PathLike[str], declaration: Mapping[str, Any], *, manifest_sha256: str
) -> list[str]:
    """Problems of a packet's custody log, one line each (empty when intact).

    Checks that every line is an entry, numbered 1, 2, ...; that each chains to the
    line before it; that the entry the manifest declared is there, unchanged, after
    the line whose hash the manifest recorded; and that it names this manifest.
    """
    path = Path(packet_dir) / CUSTODY_NAME
    if path.is_symlink() or not path.is_file():
        return [f"custody: {CUSTODY_NAME} is missing"]
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    problems: list[str] = []
    prev = GENESIS
    entries: list[dict[str, Any]] = []
    for n, raw in enumerate(lines, start=1):
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not all(k in entry for k in _REQUIRED):
            problems.append(f"custody: line {n} is not a custody entry")
            entry = {}
        elif entry["seq"] != n:
            got = entry["seq"]
            problems.append(f"custody: line {n} holds entry {got} (entry deleted or moved)")
        if entry and entry["prev_sha256"] != prev:
            problems.append(f"custody: entry {n} does not chain to the line before it (edited)")
        entries.append(entry)
        prev = hashlib.sha256(raw).hexdigest()
    want = declaration["entry"]
    seq = want.get("seq")
    mine = entries[seq - 1] if isinstance(seq, int) and 0 < seq <= len(entries) else None
    if not mine:
        problems.append(f"custody: entry {seq} of this manifest is missing (deleted)")
        return problems
    if mine["prev_sha256"] != declaration["prev_sha256"]:
        problems.append(f"custody: entries before {seq} differ from the manifest's record")
    if {k: v for k, v in mine.items() if k not in ("manifest_sha256", "prev_sha256")} != want:
        problems.append(f"custody: entry {seq} differs from the manifest's record (edited)")
    if mine.get("manifest_sha256") != manifest_sha256:
        problems.append(f"custody: entry {seq} names another manifest (manifest.json changed)")
    if len(entries) > seq:
        problems.append(f"custody: entries after {seq} are not covered by the manifest (added)")
    return problems


def prior_entries(packet_dir: str | os.PathLike[str], *, redact: bool) -> list[bytes]:
    """Lines of an existing packet's custody log, to carry into the packet replacing it.

    Only an intact log is carried (a warning says why another is not), and with
    ``redact`` only one whose entries are all redacted.
    """
    root = Path(packet_dir)
    manifest = root / "manifest.json"
    try:
        declaration = json.loads(manifest.read_text("utf-8"))["custody"]
        lines = (root / CUSTODY_NAME).read_bytes().splitlines()
        problems = check_custody(root, declaration, manifest_sha256=sha256_file(manifest))
        named = any(json.loads(line)["user"] != REDACTED for line in lines)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []  # no earlier packet with a custody log there
    if problems:
        log.warning("%s: custody log not carried over: %s", root, problems[0])
        return []
    if redact and named:
        log.warning("%s: custody log not carried over: its entries name users (--redact)", root)
        return []
    return lines
