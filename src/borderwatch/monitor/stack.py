"""The dates of a stack: ``STACK.csv`` or ``--date`` files, one :class:`StackEntry` each.

``STACK.csv`` has the columns ``date,path`` and optionally ``credit,scene_id,mask``:

- ``date``: the acquisition date, ``YYYY-MM-DD``;
- ``path``: what ``borderwatch detect`` takes for one date: a raster, several band files
  separated by ``;``, a folder, a STAC Item or an http(s) URL; a relative path is
  relative to the CSV's folder;
- ``credit``, ``scene_id``: put over what the files say (:mod:`borderwatch.imagery`);
- ``mask``: a cloud mask raster of the date (nonzero = not clear, or the
  :mod:`borderwatch.masks` codes 1 cloud, 2 shadow, 3 snow).

Every error names the CSV and its line: ``STACK.csv:3: ...``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from borderwatch.errors import InputError
from borderwatch.imagery import parse_date
from borderwatch.remote import is_url

__all__ = ["REQUIRED_COLUMNS", "StackEntry", "entries_from_dates", "read_stack_csv"]

#: Columns a stack CSV must have; ``credit``, ``scene_id`` and ``mask`` are optional.
REQUIRED_COLUMNS = ("date", "path")
_OPTIONAL = ("credit", "scene_id", "mask")


@dataclass(frozen=True)
class StackEntry:
    """One date of a stack.

    Attributes
    ----------
    date : str
        Acquisition date, ISO ``YYYY-MM-DD``.
    paths : tuple of str
        The date's files, band files, folder, STAC Item or URL, as ``detect`` takes them.
    credit, scene_id : str or None
        Credit line and provider scene id given by the user (None: the files').
    mask : str or None
        A cloud mask raster of the date.
    line : int or None
        Line of the stack CSV it came from (for messages).
    """

    date: str
    paths: tuple[str, ...]
    credit: str | None = None
    scene_id: str | None = None
    mask: str | None = None
    line: int | None = None

    def where(self, csv_path: str | None = None) -> str:
        """``STACK.csv:N`` when the entry came from a CSV, else its first path."""
        if csv_path is not None and self.line is not None:
            return f"{csv_path}:{self.line}"
        return self.paths[0] if self.paths else self.date


def _local(value: str, folder: Path) -> str:
    if is_url(value):
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else folder / p)


def read_stack_csv(path: str | os.PathLike[str]) -> list[StackEntry]:
    """Read a stack CSV into entries sorted by date (then scene id).

    Parameters
    ----------
    path : path
        The CSV (UTF-8, header row, comma separated).

    Returns
    -------
    list of StackEntry

    Raises
    ------
    InputError
        The file cannot be read, a required column is missing, a date does not parse,
        a file (or mask) does not exist, the same date and scene id or the same files
        appear twice, or the stack has no row. The message is one line ``STACK.csv:N: ...``.
    """
    csv_path = Path(path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{csv_path}: cannot read the stack ({exc.__class__.__name__})") from exc
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise InputError(
            f"{csv_path}:1: empty stack; write a header 'date,path' and one row per date"
        )
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(
            f"{csv_path}:1: missing column {', '.join(missing)}; the header must hold "
            f"date,path (optional {','.join(_OPTIONAL)})"
        )
    folder = csv_path.parent
    entries: list[StackEntry] = []
    seen: dict[tuple[str, str], int] = {}
    files: dict[tuple[str, ...], int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = dict(zip(header, (c.strip() for c in row), strict=False))
        where = f"{csv_path}:{n}"
        date = parse_date(cells.get("date", ""), where=f"{where}: date")
        raw = [p.strip() for p in cells.get("path", "").split(";") if p.strip()]
        if not raw:
            raise InputError(f"{where}: empty path; give the date's raster, band files or folder")
        paths = tuple(_local(p, folder) for p in raw)
        for p in paths:
            if not is_url(p) and not Path(p).exists():
                raise InputError(f"{where}: file not found: {p}")
        mask = cells.get("mask") or None
        if mask is not None:
            mask = _local(mask, folder)
            if not is_url(mask) and not Path(mask).exists():
                raise InputError(f"{where}: mask file not found: {mask}")
        scene = cells.get("scene_id") or None
        key = (date, scene or "")
        if key in seen:
            raise InputError(
                f"{where}: date {date}{f' scene {scene}' if scene else ''} is already on line "
                f"{seen[key]}; give each date (and scene) once"
            )
        seen[key] = n
        same = tuple(sorted(os.path.normpath(p) for p in paths))
        if same in files:
            raise InputError(f"{where}: the same files as line {files[same]}; give each image once")
        files[same] = n
        entries.append(StackEntry(date, paths, cells.get("credit") or None, scene, mask, n))
    if not entries:
        raise InputError(f"{csv_path}:2: the stack has no date; add one row per date")
    return sorted(entries, key=lambda e: (e.date, e.scene_id or ""))


def entries_from_dates(
    dates: Sequence[str | os.PathLike[str]], *, masks: Sequence[str | None] = ()
) -> list[StackEntry]:
    """Entries of ``--date`` paths, dated from the files' metadata (:mod:`borderwatch.imagery`).

    Raises
    ------
    InputError
        A date's files carry no acquisition date, or two paths have the same date and
        scene id.
    """
    from borderwatch.io import open_date

    entries = []
    for i, item in enumerate(dates):
        source = open_date(str(item))
        if source.date is None:
            raise InputError(
                f"{item}: no acquisition date in the file's metadata or name; "
                "list the dates in a --stack CSV with a date column"
            )
        mask = masks[i] if i < len(masks) else None
        entries.append(StackEntry(source.date, (str(item),), None, source.imagery.scene_id, mask))
    entries.sort(key=lambda e: (e.date, e.scene_id or ""))
    for a, b in zip(entries, entries[1:], strict=False):
        if (a.date, a.scene_id) == (b.date, b.scene_id):
            raise InputError(
                f"{b.paths[0]}: same date {b.date} as {a.paths[0]}; give each date once"
            )
    return entries
