"""Batch jobs: job files, a distinct output name per job, and runs where a failure stays one job's.

A batch job is one area of interest (or the whole overlap) with one before and one after
date (:class:`BatchJob`). ``borderwatch batch`` makes them from ``--aoi`` x ``--pair``
(:func:`pair_jobs`) and from CSV job files (:func:`read_jobs`). Each job remembers where
it came from (``jobs.csv:3``, ``--pair 2``), so every message about it can say so
(:attr:`JobRef.label`).

Names
-----
:func:`job_names` gives each job a short, file-system-safe name made of what tells the
jobs apart, ``<place>__<where>__<before>__<after>``:

- *place*: the AOI id, or the AOI file's stem (plus the ``#id`` of ``file#id``), with the
  folders common to all AOI files dropped; ``overlap`` without an AOI.
- *before*, *after*: each date's file stem (the folder's name for a folder or for several
  band files), preceded by the folders in which the job's before and after paths differ.
- *where*: the folders the job's before and after paths share, below the folders common
  to every input of every job and without the trailing folders every job shares; left
  out when empty.

Two OSCD cities ``.../beihai/imgs_1 -> .../beihai/imgs_2`` and ``.../bercy/imgs_1 ->
.../bercy/imgs_2`` are ``overlap__beihai__imgs_1__imgs_2`` and
``overlap__bercy__imgs_1__imgs_2``; pairs in one folder keep the plain
``<aoi>__<before>__<after>``. A name depends on the batch it is in: a city alone is
``overlap__imgs_1__imgs_2``. Characters other than letters, digits, ``.``, ``-`` and
``_`` become ``_`` and folders within a part are joined by ``-``; a name longer than
:data:`MAX_NAME_BYTES` is cut and ends in a hash of the whole name. Jobs that differ but
whose names still agree (ignoring case, as some file systems do) get ``-2``, ``-3``, ...
in job order; identical jobs are refused (:func:`refuse_duplicates`).

Running
-------
:func:`run_batch` first prepares every job (opening its inputs, so a missing file is
reported before any long work), then runs the prepared jobs, several at a time when
asked, and writes each one's outputs as soon as it is done. It returns one
:class:`JobResult` per job with status ``ok``, ``no-overlap`` (the AOI is outside the
pair) or ``error`` and the one-line message; a failing job never stops the others.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from rasterio.errors import RasterioError

from borderwatch.errors import BorderwatchError, InputError, InternalError, NoOverlapError
from borderwatch.imagery import ImageryOptions, parse_date

__all__ = [
    "JOB_ERRORS",
    "MAX_NAME_BYTES",
    "OVERLAP",
    "STATUSES",
    "BatchJob",
    "JobRef",
    "JobResult",
    "job_names",
    "one_line",
    "pair_jobs",
    "read_jobs",
    "refuse_duplicates",
    "run_batch",
]

log = logging.getLogger(__name__)

#: Job statuses in ``batch.json``.
STATUSES = ("ok", "no-overlap", "error")
#: Place part of the name of a job without AOI (the whole overlap of the pair).
OVERLAP = "overlap"
#: Longest job name, bytes of UTF-8 (file systems allow 255 per name; the report's
#: ``.geojson`` suffix and the temporary name it is written under need the rest).
MAX_NAME_BYTES = 180
#: Errors that fail one job and not the batch: borderwatch's own (missing or unreadable
#: raster, no overlap, bad input), and I/O errors from the file system or GDAL.
JOB_ERRORS: tuple[type[BaseException], ...] = (BorderwatchError, OSError, RasterioError)

_VECTOR_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".zip", ".fgb", ".kml", ".gml"}
_UNSAFE = re.compile(r"[^\w.-]+")
_YES = frozenset({"yes", "true", "1", "y"})
_NO = frozenset({"no", "false", "0", "n"})
_UNDERSCORES = re.compile(r"_{2,}")

P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True)
class BatchJob:
    """One AOI (or the whole overlap) with one before and one after date.

    Attributes
    ----------
    aoi : str or None
        AOI catalogue id/name or file (``file#id`` for one feature); ``None``: the
        whole overlap of the pair.
    before, after : tuple of str
        One multi-band raster, a folder, or several band files per date.
    origin : str
        Where the job was given: ``"jobs.csv:3"`` (file and line) or ``"--pair 2"``.
    imagery : mapping
        ``{"before": ImageryOptions, "after": ImageryOptions}`` given in the job file
        (dates, credits, scene ids); empty: read from the files.
    allow_reversed : bool
        Run even with swapped dates or identical inputs.
    """

    aoi: str | None
    before: tuple[str, ...]
    after: tuple[str, ...]
    origin: str
    imagery: Mapping[str, ImageryOptions] = field(default_factory=dict, hash=False)
    allow_reversed: bool = False


def pair_jobs(
    pairs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    aois: Sequence[str] = (),
) -> list[BatchJob]:
    """Jobs for every ``--pair`` with every ``--aoi`` (the whole overlap without AOIs).

    Parameters
    ----------
    pairs : iterable of (path, path)
        Before and after raster of each pair, in command-line order.
    aois : sequence of str
        AOI ids/names/files; empty: one job per pair over the whole overlap.

    Returns
    -------
    list of BatchJob
        Pair-major: every AOI of the first pair, then of the second, ...
    """
    jobs = []
    for n, (b, a) in enumerate(pairs, start=1):
        for aoi in aois or (None,):
            origin = f"--pair {n}" if aoi is None else f"--pair {n} --aoi {aoi}"
            jobs.append(BatchJob(aoi, (os.fspath(b),), (os.fspath(a),), origin))
    return jobs


def read_jobs(path: str | os.PathLike[str]) -> list[BatchJob]:
    """Jobs from a CSV file with header ``aoi,before,after``.

    ``aoi`` may be empty (the whole overlap); ``before`` and ``after`` may list several
    files separated by ``;``. Optional columns, empty cells meaning "from the files"
    as for ``detect``'s options: ``before_date``, ``after_date`` (YYYY-MM-DD),
    ``credit`` (both dates), ``before_credit``, ``after_credit`` (over ``credit``),
    ``before_scene_id``, ``after_scene_id``, and ``allow_reversed`` (``yes``/``no``,
    ``true``/``false``, ``1``/``0``). Other columns and blank lines are ignored. Each job's
    :attr:`~BatchJob.origin` is ``<file>:<line>`` (the line where its row ends, for a
    quoted cell over several lines).

    Parameters
    ----------
    path : path
        The CSV file (UTF-8, a byte-order mark is allowed).

    Returns
    -------
    list of BatchJob

    Raises
    ------
    InputError
        The file is missing or unreadable, lacks a column, or a row has an empty
        ``before`` or ``after`` (the message names the file and line).
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return _parse_jobs(fh, os.fspath(path))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"{os.fspath(path)}: cannot read job file ({reason})") from exc
    except csv.Error as exc:
        raise InputError(f"{os.fspath(path)}: not a CSV job file ({exc})") from exc


def _parse_jobs(fh: Iterable[str], name: str) -> list[BatchJob]:
    reader = csv.DictReader(fh)
    fields = {(f or "").strip() for f in reader.fieldnames or ()}
    missing = {"aoi", "before", "after"} - fields
    if missing:
        raise InputError(
            f"{name}:1: job file lacks column(s) {', '.join(sorted(missing))}; "
            "the header must be aoi,before,after"
        )
    jobs = []
    for row in reader:
        row = {(k or "").strip(): v for k, v in row.items()}
        where = f"{name}:{reader.line_num}"
        b = _split(row.get("before"))
        a = _split(row.get("after"))
        if not b or not a:
            raise InputError(f"{where}: before and after must both be given")
        aoi = (row.get("aoi") or "").strip() or None
        jobs.append(BatchJob(aoi, b, a, where, _row_imagery(row, where), _row_flag(row, where)))
    return jobs


def _cell(row: Mapping[str, str | None], name: str) -> str | None:
    value = row.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _row_imagery(row: Mapping[str, str | None], where: str) -> dict[str, ImageryOptions]:
    out = {}
    for role in ("before", "after"):
        date = _cell(row, f"{role}_date")
        out[role] = ImageryOptions(
            date=parse_date(date, where=f"{where}: {role}_date") if date else None,
            credit=_cell(row, f"{role}_credit") or _cell(row, "credit"),
            scene_id=_cell(row, f"{role}_scene_id"),
            source="job file",
        )
    return out


def _row_flag(row: Mapping[str, str | None], where: str) -> bool:
    text = (_cell(row, "allow_reversed") or "no").lower()
    if text not in _YES | _NO:
        raise InputError(f"{where}: allow_reversed {text!r} is neither yes nor no")
    return text in _YES


def _split(cell: str | list[str] | None) -> tuple[str, ...]:
    text = cell if isinstance(cell, str) else ""
    return tuple(p.strip() for p in text.split(";") if p.strip())


# --------------------------------------------------------------------------- names
def _key(job: BatchJob) -> tuple[object, ...]:
    """Return what makes two jobs the same work: the AOI and the absolute input paths."""
    aoi: str | None = job.aoi
    if aoi is not None and _looks_like_path(aoi):
        base, hash_, fid = aoi.partition("#")
        aoi = os.path.abspath(os.path.expanduser(base)) + hash_ + fid
    return (
        aoi,
        tuple(os.path.abspath(os.path.expanduser(p)) for p in job.before),
        tuple(os.path.abspath(os.path.expanduser(p)) for p in job.after),
    )


def refuse_duplicates(jobs: Sequence[BatchJob]) -> None:
    """Refuse a batch that holds the same job twice (same AOI, before and after files).

    Raises
    ------
    InputError
        Naming where the repeat and the first occurrence were given.
    """
    seen: dict[tuple[object, ...], BatchJob] = {}
    for job in jobs:
        first = seen.setdefault(_key(job), job)
        if first is not job:
            raise InputError(
                f"{job.origin}: repeats the job of {first.origin} (same AOI, before and "
                "after); remove one of them"
            )


def _looks_like_path(ref: str) -> bool:
    base = ref.split("#", 1)[0]
    return (
        "#" in ref or "/" in base or os.sep in base or Path(base).suffix.lower() in _VECTOR_SUFFIXES
    )


def _path_parts(path: str) -> list[str]:
    """Components of the absolute path, the last one without its suffix (files only)."""
    p = Path(os.path.abspath(os.path.expanduser(path)))
    parts = list(p.parts[1:] if p.anchor else p.parts) or [p.anchor]
    if p.suffix and not p.is_dir():
        parts[-1] = p.stem
    return parts


def _date_parts(paths: Sequence[str]) -> list[str]:
    """One date's path: the file (or folder) itself, or the folder of several band files."""
    if len(paths) == 1:
        return _path_parts(paths[0])
    folders = [os.path.dirname(os.path.abspath(os.path.expanduser(p))) for p in paths]
    try:
        common = os.path.commonpath(folders)
    except ValueError:  # different drives
        common = folders[0]
    return _path_parts(common) if Path(common).anchor != common else _path_parts(folders[0])


def _place_parts(aoi: str | None) -> list[str]:
    if aoi is None:
        return [OVERLAP]
    if not _looks_like_path(aoi):
        return [aoi]
    base, _, fid = aoi.partition("#")
    return [*_path_parts(base), *([fid] if fid else [])]


def _common_lead(seqs: Sequence[Sequence[str]], *, keep: int) -> int:
    """How many leading components all ``seqs`` share, leaving ``keep`` in each."""
    if not seqs:
        return 0
    limit = min(len(s) for s in seqs) - keep
    n = 0
    while n < limit and all(s[n] == seqs[0][n] for s in seqs):
        n += 1
    return n


def _safe(part: str) -> str:
    text = _UNDERSCORES.sub("_", _UNSAFE.sub("_", part)).strip("._- ")
    return text or "_"


def _cut(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    head = name.encode("utf-8")[: MAX_NAME_BYTES - 9].decode("utf-8", "ignore").rstrip("._-")
    return f"{head}-{digest}"


def job_names(jobs: Sequence[BatchJob]) -> list[str]:
    """Short, distinct, file-system-safe names for the jobs of one batch.

    See the module docstring for the rules: ``<place>__<where>__<before>__<after>``
    from the parts of the paths that tell the jobs apart.

    Parameters
    ----------
    jobs : sequence of BatchJob
        All jobs of the batch (names depend on each other).

    Returns
    -------
    list of str
        One name per job, in order, without suffix; distinct even on a file system
        that ignores case.

    Examples
    --------
    >>> city = "/data/oscd/{}/imgs_{}"
    >>> job_names([
    ...     BatchJob(None, (city.format("beihai", 1),), (city.format("beihai", 2),), "a"),
    ...     BatchJob(None, (city.format("bercy", 1),), (city.format("bercy", 2),), "b"),
    ... ])
    ['overlap__beihai__imgs_1__imgs_2', 'overlap__bercy__imgs_1__imgs_2']
    >>> job_names([BatchJob("helong", ("/x/before.tif",), ("/x/after.tif",), "c")])
    ['helong__before__after']
    """
    places = [_place_parts(j.aoi) for j in jobs]
    drop = _common_lead([p for p in places if len(p) > 1], keep=1)
    places = [p[drop:] if len(p) > 1 else p for p in places]

    befores = [_date_parts(j.before) for j in jobs]
    afters = [_date_parts(j.after) for j in jobs]
    root = _common_lead(befores + afters, keep=1)
    befores = [b[root:] for b in befores]
    afters = [a[root:] for a in afters]
    shared = []
    for i, (b, a) in enumerate(zip(befores, afters, strict=True)):
        n = _common_lead([b, a], keep=1)
        shared.append(b[:n])
        befores[i], afters[i] = b[n:], a[n:]
    tail = _common_lead([s[::-1] for s in shared], keep=0) if len(jobs) > 1 else 0
    shared = [s[: len(s) - tail] for s in shared]

    names = []
    for parts in zip(places, shared, befores, afters, strict=True):
        slots = ["-".join(_safe(c) for c in slot) for slot in parts if slot]
        names.append(_cut("__".join(slots)))
    return _distinct(names)


def _distinct(names: Sequence[str]) -> list[str]:
    """Add ``-2``, ``-3``, ... to names that repeat (ignoring case), in order."""
    taken = {n.casefold() for n in names}
    seen: set[str] = set()
    out = []
    for name in names:
        new = name
        if name.casefold() in seen:
            k = 2
            while (new := _cut(f"{name}-{k}")).casefold() in taken:
                k += 1
            taken.add(new.casefold())
        seen.add(new.casefold())
        out.append(new)
    return out


# --------------------------------------------------------------------------- running
def one_line(exc: BaseException) -> str:
    r"""Return an exception as one line: its message, ``Type: message`` if not borderwatch's.

    A library error that points to its cause (rasterio's "Read failed. See previous
    exception") is followed by the cause, which names the file: ``RasterioIOError:
    Read failed. ... (after.tif, band 1: IReadBlock failed ...)``.

    Examples
    --------
    >>> one_line(OSError("disk\n full"))
    'OSError: disk full'
    """
    text = " ".join(str(exc).split())
    if isinstance(exc, BorderwatchError):
        return text or type(exc).__name__
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause).strip() and str(cause).strip() not in text:
        line += f" ({' '.join(str(cause).split())})"
    return line


@dataclass(frozen=True)
class JobRef:
    """One job in its batch: position, name, and the label every message about it uses.

    Attributes
    ----------
    index : int
        Position in the batch, from 1.
    total : int
        Number of jobs in the batch.
    job : BatchJob
        The job.
    name : str
        Its name (:func:`job_names`); the report is ``<name>.geojson``.
    """

    index: int
    total: int
    job: BatchJob
    name: str

    @property
    def label(self) -> str:
        """``job 2/5 overlap__bercy__imgs_1__imgs_2 (jobs.csv:3)``."""
        return f"job {self.index}/{self.total} {self.name} ({self.job.origin})"


@dataclass(frozen=True)
class JobResult:
    """What happened to one job of a batch.

    Attributes
    ----------
    ref : JobRef
        The job, its position and name.
    status : {"ok", "no-overlap", "error"}
        Outcome.
    reason : str or None
        One-line message for ``no-overlap`` and ``error``.
    summary : mapping
        What the ``write`` step of :func:`run_batch` returned (report, counts).
    seconds : float
        Wall time of the job's run and write (of its preparation when that failed).
    """

    ref: JobRef
    status: str
    reason: str | None = None
    summary: Mapping[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def label(self) -> str:
        """The job's label (:attr:`JobRef.label`)."""
        return self.ref.label

    def record(self) -> dict[str, object]:
        """Return the job's entry in ``batch.json``."""
        job = self.ref.job
        entry: dict[str, object] = {
            "index": self.ref.index,
            "name": self.ref.name,
            "source": job.origin,
            "aoi": job.aoi,
            "before": list(job.before),
            "after": list(job.after),
            "status": self.status,
        }
        if self.reason is not None:
            entry["reason"] = self.reason
        entry.update(self.summary)
        return entry


def _failed(ref: JobRef, exc: BaseException, seconds: float) -> JobResult:
    status = "no-overlap" if isinstance(exc, NoOverlapError) else "error"
    result = JobResult(ref, status, one_line(exc), seconds=seconds)
    log.info("%s: %s: %s", ref.label, status, result.reason)
    if status == "error":
        log.debug("%s: failed here", ref.label, exc_info=exc)
    return result


def run_batch(
    jobs: Sequence[BatchJob],
    *,
    names: Sequence[str],
    prepare: Callable[[JobRef], P],
    execute: Callable[[P, JobRef], R],
    write: Callable[[R, JobRef], Mapping[str, object]],
    workers: int = 1,
    on_result: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Prepare, run and write every job; a job that fails is recorded, the others go on.

    Parameters
    ----------
    jobs : sequence of BatchJob
        The batch.
    names : sequence of str
        One name per job (:func:`job_names`).
    prepare : callable
        ``prepare(ref)``: open the job's inputs (fast); called for every job, in
        order, in this thread, before any ``execute``.
    execute : callable
        ``execute(prepared, ref)``: the long work; called in worker threads when
        ``workers > 1``.
    write : callable
        ``write(result, ref)``: write the job's outputs and return its summary for
        ``batch.json``; called in this thread as each job finishes.
    workers : int
        Jobs executed at a time.
    on_result : callable, optional
        Called with each :class:`JobResult` as soon as it is known (in this thread;
        failed preparations first, then runs in the order they finish).

    Returns
    -------
    list of JobResult
        In job order.

    Raises
    ------
    ValueError
        ``names`` and ``jobs`` differ in length.

    Notes
    -----
    Errors in :data:`JOB_ERRORS` fail their job (:class:`~borderwatch.errors.NoOverlapError`
    gives ``no-overlap``); anything else is a bug and propagates, cancelling the jobs
    not yet started.
    """
    if len(names) != len(jobs):
        raise InternalError(f"{len(names)} names for {len(jobs)} jobs")
    refs = [JobRef(i, len(jobs), j, n) for i, (j, n) in enumerate(zip(jobs, names, strict=True), 1)]
    results: dict[int, JobResult] = {}

    def finish(result: JobResult) -> None:
        results[result.ref.index] = result
        if on_result is not None:
            on_result(result)

    prepared: list[tuple[JobRef, P]] = []
    for ref in refs:
        t0 = time.perf_counter()
        log.debug("%s: opening inputs", ref.label)
        try:
            prepared.append((ref, prepare(ref)))
        except JOB_ERRORS as exc:
            finish(_failed(ref, exc, time.perf_counter() - t0))
    at_once = max(1, min(workers, len(prepared)))
    log.info("batch: %d of %d jobs ready, %d run at a time", len(prepared), len(refs), at_once)

    def run(ref: JobRef, item: P) -> tuple[R, float]:
        log.info("%s: running", ref.label)
        t0 = time.perf_counter()
        return execute(item, ref), t0

    def done(ref: JobRef, outcome: Callable[[], tuple[R, float]]) -> None:
        t0 = time.perf_counter()
        try:
            value, t0 = outcome()
            summary = write(value, ref)
        except JOB_ERRORS as exc:
            finish(_failed(ref, exc, time.perf_counter() - t0))
            return
        seconds = time.perf_counter() - t0
        log.info("%s: done in %.1f s", ref.label, seconds)
        finish(JobResult(ref, "ok", None, dict(summary), seconds))

    if at_once == 1:
        for ref, item in prepared:
            done(ref, functools.partial(run, ref, item))
    else:
        with ThreadPoolExecutor(at_once, thread_name_prefix="borderwatch-job") as pool:
            futures = {pool.submit(run, ref, item): ref for ref, item in prepared}
            try:
                for fut in as_completed(futures):
                    done(futures[fut], fut.result)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return [results[ref.index] for ref in refs]
