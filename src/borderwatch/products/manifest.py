"""Chain-of-custody manifest of an evidence packet, and its verification.

``manifest.json`` records the SHA-256 of every input and output file, the input
scenes (identifiers and acquisition dates where their metadata has them), every
parameter, the versions of the tool and of the libraries that shaped the result,
the host and UTC times. :func:`verify_packet` recomputes the hashes later, so anyone
holding the packet can show that no file changed since it was written (the
authenticity and chain-of-custody criteria of the Berkeley Protocol on Digital Open
Source Investigations, OHCHR/HRC Berkeley 2022, ISBN 978-92-1-154249-4).

Output files inside the packet folder are recorded by relative path; inputs and
outputs elsewhere by absolute path, or with redaction by file name. The manifest also
declares the packet's custody log entry (:mod:`borderwatch.products.custody`); an
Ed25519 signature over its bytes (:mod:`borderwatch.products.signing`) then covers
every file, field and custody entry of the packet.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata as _md
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from borderwatch.errors import InputError
from borderwatch.products.custody import CUSTODY_NAME, check_custody
from borderwatch.products.export import atomic_write, sha256_file
from borderwatch.products.redact import REDACTED
from borderwatch.products.signing import SIGNATURE_SUFFIX, check_signature
from borderwatch.products.timestamp import TSQ_SUFFIX, TSR_SUFFIX, timestamp_request
from borderwatch.remote import WINDOW_SHA256_OF, head_info, is_url, url_name

__all__ = [
    "MANIFEST_NAME",
    "VerifyResult",
    "file_entry",
    "host_info",
    "read_manifest",
    "tool_versions",
    "unlisted_files",
    "verify_packet",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
_FORMAT = "borderwatch-manifest/2"
#: A packet's own files beside those its manifest lists: the manifest, its signature,
#: RFC 3161 time-stamp request and token, and the custody log.
PACKET_FILES = (
    MANIFEST_NAME,
    MANIFEST_NAME + SIGNATURE_SUFFIX,
    MANIFEST_NAME + TSQ_SUFFIX,
    MANIFEST_NAME + TSR_SUFFIX,
    CUSTODY_NAME,
)
#: Formats :func:`verify_packet` reads: 1 (before signatures and the custody log) and 2.
_FORMATS = ("borderwatch-manifest/1", _FORMAT)


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_packet`.

    Attributes
    ----------
    checked : int
        Files listed in the manifest and checked.
    changed : tuple of str
        Listed files whose SHA-256 differs.
    missing : tuple of str
        Listed files that no longer exist.
    extra : tuple of str
        Files in the packet folder that the manifest does not list.
    problems : tuple of str
        Other failures, one line each: symbolic links, custody log, signature.
    notes : tuple of str
        What was not checked, and an unsigned packet's warning.
    signed_by : str or None
        Fingerprint of the key whose signature was checked; None when unsigned.
    """

    checked: int
    changed: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    signed_by: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing changed, went missing, was added or failed another check."""
        return not (self.changed or self.missing or self.extra or self.problems)


def tool_versions() -> dict[str, str]:
    """Versions of borderwatch, Python and the libraries that shape results (and GDAL)."""
    import rasterio

    out = {"python": platform.python_version(), "gdal": rasterio.__gdal_version__}
    for dist in (
        "borderwatch",
        "rasterio",
        "numpy",
        "scikit-image",
        "scipy",
        "shapely",
        "pyproj",
        "geopandas",
        "pyogrio",
        "pillow",
    ):
        try:
            out[dist] = _md.version(dist)
        except _md.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def host_info(*, redact: bool = False) -> dict[str, str]:
    """Host name, operating system and machine of this process (name hidden by ``redact``)."""
    name = REDACTED if redact else platform.node()
    return {"name": name, "platform": platform.platform(), "machine": platform.machine()}


def file_entry(
    path: str | os.PathLike[str],
    *,
    root: Path,
    role: str,
    sha256: str | None = None,
    redact: bool = False,
) -> dict[str, Any]:
    """Manifest entry of one file: path, whether it is in the packet, size, SHA-256.

    The path is relative to ``root`` for a file inside it; otherwise absolute, or with
    ``redact`` the bare file name. ``sha256`` is the file's hash when the caller
    already has it (inputs hashed once per run); otherwise it is computed here. A
    remote input (URL) is never downloaded: its ``sha256`` must be given (the pixels
    of the window the run read, :func:`borderwatch.remote.window_record`) and its
    size is the server's ``Content-Length``.
    """
    if is_url(path):
        if not sha256:
            raise InputError(f"{path}: a remote input needs the hash of the window read")
        return {
            "path": url_name(str(path)) if redact else str(path),
            "in_packet": False,
            "role": role,
            "bytes": head_info(str(path))["bytes"],
            "sha256": sha256,
            "sha256_of": WINDOW_SHA256_OF,
        }
    p = Path(path).resolve()
    try:
        name, inside = p.relative_to(root.resolve()).as_posix(), True
    except ValueError:
        name, inside = (p.name if redact else str(p)), False
    digest = sha256 or sha256_file(p)
    return {
        "path": name,
        "in_packet": inside,
        "role": role,
        "bytes": p.stat().st_size,
        "sha256": digest,
    }


def write_manifest(
    packet_dir: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str]] | Mapping[str, str],
    outputs: Iterable[str | os.PathLike[str]],
    record: Mapping[str, Any],
    started_utc: str,
    overwrite: bool = False,
    redact: bool = False,
    custody: Mapping[str, Any] | None = None,
) -> Path:
    """Hash every input and output file and write ``manifest.json`` into ``packet_dir``.

    Parameters
    ----------
    packet_dir : path
        The evidence packet folder.
    inputs : iterable of paths, or mapping of path to known SHA-256
        Input files; a mapping supplies hashes already computed for the run.
    outputs : iterable of paths
        Files to hash; outputs inside ``packet_dir`` are listed relative to it.
    record : mapping
        JSON-serialisable run description (parameters, scenes, AOI, summary).
    started_utc : str
        ISO 8601 UTC start time of the run.
    overwrite : bool
        Replace an existing manifest.
    redact : bool
        List files outside the packet by name only and hide the host name (``record``
        is stored as given: redact it first, see :mod:`borderwatch.products.redact`).
    custody : mapping, optional
        The custody declaration (:func:`borderwatch.products.custody.custody_declaration`).

    Returns
    -------
    pathlib.Path
        The manifest path.
    """
    root = Path(packet_dir)
    known = dict(inputs) if isinstance(inputs, Mapping) else dict.fromkeys(inputs)
    files = [
        file_entry(p, root=root, role="input", sha256=h, redact=redact) for p, h in known.items()
    ]
    files += [file_entry(p, root=root, role="output", redact=redact) for p in outputs]
    doc = {
        "format": _FORMAT,
        **dict(record),
        "files": files,
        "versions": tool_versions(),
        "host": host_info(redact=redact),
        "redacted": redact,
        "started_utc": started_utc,
        "finished_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if custody is not None:
        doc["custody"] = dict(custody)
    path = root / MANIFEST_NAME
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str), "utf-8")
    return path


def _malformed(path: Path, what: str) -> InputError:
    return InputError(f"{path}: malformed manifest: {what}")


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check the structure of a ``manifest.json``.

    Raises
    ------
    InputError
        Unreadable, not JSON, not a borderwatch manifest, or a key missing or of the
        wrong type (the message names the first one).
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: cannot read the manifest ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") not in _FORMATS:
        raise InputError(f"{p}: not a borderwatch manifest (format {_FORMAT} expected)")
    files = doc.get("files")
    if not isinstance(files, list):
        raise _malformed(p, "'files' must be a list")
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise _malformed(p, f"files[{i}] must be an object")
        for key, kind in (("path", str), ("role", str), ("sha256", str), ("in_packet", bool)):
            if key == "in_packet" and doc["format"] == _FORMATS[0] and key not in entry:
                continue  # format 1 had no in_packet: relative paths were in the packet
            if not isinstance(entry.get(key), kind):
                raise _malformed(p, f"files[{i}].{key} missing or not a {kind.__name__}")
    if doc["format"] == _FORMAT:
        custody = doc.get("custody")
        if not (
            isinstance(custody, dict)
            and isinstance(custody.get("prev_sha256"), str)
            and isinstance(custody.get("entry"), dict)
        ):
            raise _malformed(p, "'custody' missing or without prev_sha256 and entry")
    return doc


def _in_packet(entry: Mapping[str, Any]) -> bool:
    return bool(entry.get("in_packet", not Path(entry["path"]).is_absolute()))


def _links_and_files(root: Path) -> tuple[dict[str, str], set[str]]:
    """Symbolic links (relative name to target) and other files under ``root``, relative."""
    links: dict[str, str] = {}
    files: set[str] = set()
    for top, dirs, names in os.walk(root, followlinks=False):
        here = Path(top)
        for name in (*dirs, *names):
            q = here / name
            rel = q.relative_to(root).as_posix()
            if q.is_symlink():
                links[rel] = os.readlink(q)
            elif name in names:
                files.add(rel)
    return links, files


def unlisted_files(packet_dir: str | os.PathLike[str]) -> list[str]:
    """Files under ``packet_dir`` that are not part of the borderwatch packet there.

    What replacing the folder as a packet (``--overwrite``) would lose: every file and
    symbolic link that its ``manifest.json`` does not list, other than the packet's own
    :data:`PACKET_FILES`; all of them when the folder holds no readable borderwatch
    manifest (or the manifest is a symbolic link).

    Returns
    -------
    list of str
        Paths relative to ``packet_dir``, sorted; empty for an empty folder.
    """
    root = Path(packet_dir)
    links, files = _links_and_files(root)
    present = files | set(links)
    path = root / MANIFEST_NAME
    try:
        doc = None if path.is_symlink() else read_manifest(path)
    except InputError:
        doc = None
    if doc is None:
        return sorted(present)
    listed = {e["path"] for e in doc["files"] if _in_packet(e)}
    return sorted(present - listed - set(PACKET_FILES))


def _check_listed(
    root: Path, entries: list[dict[str, Any]], *, inputs: bool, links: Mapping[str, str]
) -> tuple[list[str], list[str], list[str], int, list[str]]:
    """Hash the listed files: changed, missing, problems, how many checked, unchecked."""
    changed, missing, problems, unchecked = [], [], [], []
    checked = 0
    for entry in entries:
        name = entry["path"]
        inside = _in_packet(entry)
        if inside:
            parts = Path(name).parts
            if Path(name).is_absolute() or ".." in parts or not parts:
                problems.append(f"unsafe path in the manifest: {name}")
                continue
            if any("/".join(parts[: i + 1]) in links for i in range(len(parts))):
                continue  # reported as a symlink, never followed
            p = root / name
        elif not inputs:
            continue
        elif not Path(name).is_absolute():
            unchecked.append(name)
            continue
        else:
            p = Path(name)
        checked += 1
        if not p.is_file():
            missing.append(name)
        elif sha256_file(p) != entry["sha256"]:
            changed.append(name)
    return changed, missing, problems, checked, unchecked


def _check_timestamp(manifest: Path, digest: str, own: set[str], notes: list[str]) -> list[str]:
    """Check the time-stamp request; note a token (its TSA signature needs ``openssl ts``)."""
    tsq = manifest.with_name(manifest.name + TSQ_SUFFIX)
    tsr = manifest.with_name(manifest.name + TSR_SUFFIX)
    problems = []
    if tsq.is_file() and not tsq.is_symlink():
        own.add(tsq.name)
        if tsq.read_bytes() != timestamp_request(digest):
            problems.append(f"timestamp: {tsq.name} is not the request for this manifest")
    if tsr.is_file() and not tsr.is_symlink():
        own.add(tsr.name)
        notes.append(
            f"timestamp token {tsr.name} not checked here: openssl ts -verify -in {tsr.name} "
            f"-queryfile {tsq.name} -CAfile TSA.pem"
        )
    return problems


def verify_packet(
    packet_dir: str | os.PathLike[str],
    *,
    inputs: bool = True,
    key: Ed25519PublicKey | None = None,
) -> VerifyResult:
    """Check a packet: file hashes, no symbolic links, custody log, signature.

    Parameters
    ----------
    packet_dir : path
        Folder holding ``manifest.json``.
    inputs : bool
        Also check the files outside the packet (inputs, and layers written
        elsewhere) at the absolute paths of the machine that ran. False checks the
        packet alone, e.g. one copied to another machine.
    key : Ed25519PublicKey, optional
        Trusted public key: the packet must carry a signature by it.

    Returns
    -------
    VerifyResult

    Raises
    ------
    InputError
        No readable, well-formed borderwatch manifest in ``packet_dir``.
    """
    root = Path(packet_dir)
    path = root / MANIFEST_NAME
    if path.is_symlink():
        raise InputError(f"{path}: the manifest is a symbolic link; refusing to follow it")
    doc = read_manifest(path)
    links, present = _links_and_files(root)
    entries = doc["files"]
    changed, missing, problems, checked, unchecked = _check_listed(
        root, entries, inputs=inputs, links=links
    )
    problems = [f"symlink: {name} -> {links[name]}" for name in sorted(links)] + problems
    notes = []
    remote = [name for name in unchecked if is_url(name)]
    if remote:  # never downloaded: their sha256 is of the window the run read
        notes.append(
            f"not checked: {len(remote)} remote inputs (their sha256 is of the pixels of "
            "the window read, see borderwatch.remote.window_record)"
        )
    if len(unchecked) > len(remote):
        notes.append(
            f"not checked: {len(unchecked) - len(remote)} files outside the packet (paths redacted)"
        )
    own = {MANIFEST_NAME}
    manifest_sha = sha256_file(path)
    if "custody" in doc:
        own.add(CUSTODY_NAME)
        problems += check_custody(root, doc["custody"], manifest_sha256=manifest_sha)
    sig = path.with_name(MANIFEST_NAME + SIGNATURE_SUFFIX)
    signed_by = None
    if sig.is_file() and not sig.is_symlink():
        own.add(sig.name)
        signed_by, bad = check_signature(path, key=key)
        problems += bad
    elif key is not None:
        problems.append("not signed: the packet has no signature, and --key was given")
    else:
        notes.append("not signed: anyone could have rewritten the manifest")
    problems += _check_timestamp(path, manifest_sha, own, notes)
    listed = {e["path"] for e in entries if _in_packet(e)}
    extra = sorted(present - listed - own)
    return VerifyResult(
        checked,
        tuple(changed),
        tuple(missing),
        tuple(extra),
        problems=tuple(problems),
        notes=tuple(notes),
        signed_by=signed_by,
    )
