"""Chain-of-custody manifest of an evidence packet, and its verification.

``manifest.json`` records the SHA-256 of every input and output file, the input
scenes (identifiers and acquisition dates where their metadata has them), every
parameter, the versions of the tool and of the libraries that shaped the result,
the host and UTC times. :func:`verify_packet` recomputes the hashes later, so anyone
holding the packet can show that no file changed since it was written (the
authenticity and chain-of-custody criteria of the Berkeley Protocol on Digital Open
Source Investigations, OHCHR/HRC Berkeley 2022, ISBN 978-92-1-154249-4).

Output files inside the packet folder are recorded by relative path; inputs and
outputs elsewhere by absolute path.
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

from borderwatch.errors import InputError
from borderwatch.products.export import atomic_write, sha256_file

__all__ = [
    "MANIFEST_NAME",
    "VerifyResult",
    "file_entry",
    "host_info",
    "tool_versions",
    "verify_packet",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
_FORMAT = "borderwatch-manifest/1"


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_packet`.

    Attributes
    ----------
    checked : int
        Files listed in the manifest.
    changed : tuple of str
        Listed files whose SHA-256 differs.
    missing : tuple of str
        Listed files that no longer exist.
    extra : tuple of str
        Files in the packet folder that the manifest does not list.
    """

    checked: int
    changed: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing changed, went missing or was added."""
        return not (self.changed or self.missing or self.extra)


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


def host_info() -> dict[str, str]:
    """Host name, operating system and machine of this process."""
    return {"name": platform.node(), "platform": platform.platform(), "machine": platform.machine()}


def file_entry(
    path: str | os.PathLike[str], *, root: Path, role: str, sha256: str | None = None
) -> dict[str, Any]:
    """Manifest entry of one file: path (relative to ``root`` when inside), size, SHA-256.

    ``sha256`` is the file's hash when the caller already has it (inputs hashed once
    per run); otherwise it is computed here.
    """
    p = Path(path).resolve()
    try:
        name = p.relative_to(root.resolve()).as_posix()
    except ValueError:
        name = str(p)
    digest = sha256 or sha256_file(p)
    return {"path": name, "role": role, "bytes": p.stat().st_size, "sha256": digest}


def write_manifest(
    packet_dir: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str]] | Mapping[str, str],
    outputs: Iterable[str | os.PathLike[str]],
    record: Mapping[str, Any],
    started_utc: str,
    overwrite: bool = False,
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

    Returns
    -------
    pathlib.Path
        The manifest path.
    """
    root = Path(packet_dir)
    known = dict(inputs) if isinstance(inputs, Mapping) else dict.fromkeys(inputs)
    files = [file_entry(p, root=root, role="input", sha256=h) for p, h in known.items()]
    files += [file_entry(p, root=root, role="output") for p in outputs]
    doc = {
        "format": _FORMAT,
        **dict(record),
        "files": files,
        "versions": tool_versions(),
        "host": host_info(),
        "started_utc": started_utc,
        "finished_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    path = root / MANIFEST_NAME
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str), "utf-8")
    return path


def verify_packet(packet_dir: str | os.PathLike[str], *, inputs: bool = True) -> VerifyResult:
    """Recompute the SHA-256 of every file a packet's manifest lists.

    Parameters
    ----------
    packet_dir : path
        Folder holding ``manifest.json``.
    inputs : bool
        Also check the input files (absolute paths on the machine that ran).

    Returns
    -------
    VerifyResult

    Raises
    ------
    InputError
        No readable borderwatch manifest in ``packet_dir``.
    """
    root = Path(packet_dir)
    path = root / MANIFEST_NAME
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise InputError(f"{path}: not a borderwatch manifest (format {_FORMAT} expected)")
    changed, missing, listed = [], [], set()
    entries = [e for e in doc.get("files", []) if inputs or e.get("role") != "input"]
    for entry in entries:
        name = entry["path"]
        p = Path(name) if Path(name).is_absolute() else root / name
        listed.add(p.resolve())
        if not p.is_file():
            missing.append(name)
        elif sha256_file(p) != entry["sha256"]:
            changed.append(name)
    extra = sorted(
        q.relative_to(root).as_posix()
        for q in root.rglob("*")
        if q.is_file() and q.name != MANIFEST_NAME and q.resolve() not in listed
    )
    return VerifyResult(len(entries), tuple(changed), tuple(missing), tuple(extra))
