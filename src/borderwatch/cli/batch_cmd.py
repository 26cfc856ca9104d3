"""``borderwatch batch``: many AOIs x many image pairs, one report per job.

Jobs are every combination of the ``--aoi`` values and the ``--pair`` values, plus
the rows of ``--jobs`` files (CSV with columns ``aoi,before,after``; ``aoi`` may be
empty for the whole overlap; ``before``/``after`` may list several files separated
by ``;``; optional columns ``before_date``, ``after_date``, ``credit``,
``before_credit``, ``after_credit``, ``before_scene_id``, ``after_scene_id`` and
``allow_reversed`` as :func:`borderwatch.jobs.read_jobs` describes). A job whose
before date is later than its after date, or whose two dates are the same imagery,
fails alone unless ``--allow-reversed`` or its ``allow_reversed`` cell says yes.
Each job's report is ``<name>.geojson`` in ``--out-dir``, the name made of
the parts of the paths that tell the jobs apart (:func:`borderwatch.jobs.job_names`:
``overlap__beihai__imgs_1__imgs_2`` and ``overlap__bercy__imgs_1__imgs_2`` for two
OSCD cities, ``<aoi>__<before>__<after>`` for pairs in one folder). The same job given
twice is refused; distinct jobs whose names still agree get ``-2``, ``-3``, ...

Before any long work every job's inputs are opened and existing outputs are refused
without ``--overwrite``. Then every job runs through the same engine and product
writer as ``detect`` (:func:`borderwatch.engine.detect`,
:func:`borderwatch.products.write.write_products`): ``<name>.geojson`` with ``<name>.qml``,
with ``--gpkg`` also the styled ``<name>.gpkg`` (and with ``--qgis-project`` the QGIS
project ``<name>.qgz`` of it), with ``--evidence`` the packet ``<name>.evidence/``, the
same attribute schema and stable ids, stored reviews re-applied. Jobs run on
``--scheduler`` (default dask's local ``threads``; with ``threads`` several jobs run at a
time on one shared pool of a thread per CPU). Each job's outputs are written as soon as
it is done.

A job whose input is missing or unreadable fails alone: ``batch.json`` lists every job
with its ``status`` (``ok``; ``no-overlap`` for an AOI the pair does not cover;
``error``) and, when not ``ok``, the one-line ``reason``; every message about a job
names it (``job 2/5 <name> (jobs.csv:3)``). Exit code 0 when no job failed, 1 when
any job has status ``error`` (after writing everything else), 2 when the batch is
refused before it starts (bad job file, repeated job, existing report).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import click

from borderwatch.cli.logs import quiet_scheduler
from borderwatch.cli.options import (
    detect_options,
    detect_params,
    packet_options,
    scale_options,
    sign_key_file,
)
from borderwatch.errors import InputError, OutputExistsError, PairRefusedError
from borderwatch.jobs import (
    BatchJob,
    JobRef,
    JobResult,
    job_names,
    pair_jobs,
    read_jobs,
    refuse_duplicates,
    run_batch,
)
from borderwatch.products.coverage import coverage_lines, coverage_summary
from borderwatch.products.export import (
    atomic_write,
    check_folder,
    check_folder_writable,
    check_sign_key_outside,
)
from borderwatch.products.redact import redact_record
from borderwatch.products.summary import detection_figures, figures_line
from borderwatch.progress import progress_reporter

__all__ = ["batch", "read_jobs"]

log = logging.getLogger(__name__)

#: dask schedulers that run in this process (others are dask.distributed addresses).
_LOCAL = ("threads", "processes", "synchronous")


@contextlib.contextmanager
def job_slots(scheduler: str, jobs: int) -> Iterator[int]:
    """Yield how many jobs run at a time on ``scheduler``.

    With dask's ``threads``, jobs share one pool of a thread per CPU (set as dask's
    ``pool``), so several small jobs fill the CPUs without oversubscribing them. Other
    local schedulers run one job at a time; a dask.distributed address takes one job
    per local CPU at a time (the cluster spreads their tasks).
    """
    cpus = os.cpu_count() or 1
    if scheduler == "threads" and jobs > 1 and cpus > 1:
        import dask

        with (
            ThreadPoolExecutor(cpus, thread_name_prefix="borderwatch-dask") as pool,
            dask.config.set(pool=pool),
        ):
            yield min(jobs, cpus)
    elif scheduler in _LOCAL:
        yield 1
    else:
        quiet_scheduler(scheduler)
        yield min(jobs, cpus)


def _outcome(result: JobResult) -> list[str]:
    """One line on the job, then its coverage warning if any."""
    if result.status == "ok":
        lines = coverage_lines(cast(Mapping[str, Any], result.summary["coverage"]))
        return [f"{figures_line(result.summary)}; {lines[0]}", *lines[1:]]
    return [f"{result.status}: {result.reason}"]


def _csv_fix(kind: str, job: BatchJob) -> str:
    """Give the fix for a refused pair of a job-file row: its columns, not the CLI options."""
    first = (
        "swap before and after, correct the dates"
        if kind == "reversed"
        else ("give two different dates")
    )
    return f"{first}, or set the column allow_reversed to yes on {job.origin}"


@click.command()
@click.option(
    "--aoi",
    "aois",
    multiple=True,
    help="AOI id/name/file (repeatable); default: the whole overlap of each pair.",
)
@click.option(
    "--pair",
    "pairs",
    multiple=True,
    nargs=2,
    type=click.Path(path_type=Path),
    help="BEFORE AFTER rasters or folders (repeatable); combined with every --aoi.",
)
@click.option(
    "--jobs",
    "job_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV job file with columns aoi,before,after and optional before_date, after_date, "
    "credit, before_credit, after_credit, before_scene_id, after_scene_id, allow_reversed "
    "(repeatable).",
)
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the reports and batch.json (created if missing).",
)
@click.option("--gpkg", "gpkg", is_flag=True, help="Also write <name>.gpkg per job.")
@click.option(
    "--qgis-project",
    "qgis_project",
    is_flag=True,
    help="Also write the QGIS project <name>.qgz per job (needs --gpkg).",
)
@click.option(
    "--evidence", "evidence", is_flag=True, help="Also write the packet <name>.evidence/ per job."
)
@click.option(
    "--allow-reversed",
    is_flag=True,
    help="Run jobs whose before date is later than the after date, or whose dates are "
    "the same files (per job: the allow_reversed column).",
)
@detect_options
@packet_options(redact=False)
@scale_options
@click.pass_context
def batch(
    ctx: click.Context,
    aois: tuple[str, ...],
    pairs: tuple[tuple[Path, Path], ...],
    job_files: tuple[Path, ...],
    out_dir: Path,
    gpkg: bool,
    qgis_project: bool,
    evidence: bool,
    method: Any,
    threshold: str,
    min_area_m2: float,
    overwrite: bool,
    block_size: int | None,
    scheduler: str | None,
    sign_key: Any = None,
    redact: bool = False,
    allow_reversed: bool = False,
    **quality: Any,
) -> None:
    """Run detection for many AOIs x image pairs; one report per job.

    Exit code 1 when a job failed (the others are written, batch.json says which and
    why), 2 when the batch is refused before it starts.
    """
    from borderwatch.engine import (
        DEFAULT_BLOCK_SIZE,
        DetectionRun,
        Plan,
        make_plan,
        run_plan,
    )
    from borderwatch.products.review import default_store_dir
    from borderwatch.products.write import write_products

    quiet = bool(ctx.obj.get("quiet"))
    jobs: list[BatchJob] = pair_jobs(pairs, aois)
    for path in job_files:
        jobs += read_jobs(path)
    if not jobs:
        raise click.UsageError("give at least one --pair or --jobs file")
    if qgis_project and not gpkg:
        raise click.UsageError("--qgis-project shows each job's GeoPackage: add --gpkg")
    refuse_duplicates(jobs)
    names = job_names(jobs)
    reports = []
    for name in names:
        reports += [out_dir / f"{name}.geojson", out_dir / f"{name}.qml"]
        reports += [out_dir / f"{name}.gpkg"] if gpkg else []
        reports += [out_dir / f"{name}.qgz"] if qgis_project else []
        reports += [out_dir / f"{name}.evidence"] if evidence else []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot create the output folder ({exc.strerror})") from exc
    check_folder_writable(out_dir, output=out_dir)
    existing = [p for p in reports if p.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more reports)" if len(existing) > 1 else ""
        raise OutputExistsError(f"{existing[0]}: output exists{more}; pass --overwrite")
    key_file = sign_key_file()
    for packet_dir in (p for p in reports if p.suffix == ".evidence"):
        if key_file is not None:
            check_sign_key_outside(key_file, packet_dir)
        if packet_dir.exists():
            check_folder(packet_dir, overwrite=overwrite)
    params = detect_params(
        method=method,
        threshold=threshold,
        min_area_m2=min_area_m2,
        **quality,
    )
    reviews_dir = default_store_dir()
    sched = scheduler or "threads"
    size = block_size or DEFAULT_BLOCK_SIZE
    log.info("batch: %d jobs, reports to %s, scheduler %s", len(jobs), out_dir, sched)
    log.debug("batch: parameters %s", params)

    def prepare(ref: JobRef) -> Plan:
        job = ref.job
        try:
            prepared = make_plan(
                list(job.before),
                list(job.after),
                aoi=job.aoi,
                params=params,
                block_size=size,
                imagery=job.imagery,
                allow_reversed=allow_reversed or job.allow_reversed,
            )
        except PairRefusedError as exc:
            if job.origin.startswith("--pair"):
                raise
            raise PairRefusedError(exc.problem, kind=exc.kind, fix=_csv_fix(exc.kind, job)) from exc
        grid = prepared.source.grid
        log.info(
            "%s: %d x %d px grid at %g m (%s), %d block(s) of %d px",
            ref.label,
            grid.shape[0],
            grid.shape[1],
            grid.res[0],
            grid.crs.to_string(),
            len(prepared.blocks),
            size,
        )
        return prepared

    def execute(prepared: Plan, ref: JobRef) -> DetectionRun:
        log.debug("%s: computing on %s", ref.label, sched)
        return run_plan(prepared, scheduler=sched)

    def write(run: DetectionRun, ref: JobRef) -> dict[str, object]:
        path = out_dir / f"{ref.name}.geojson"
        layers = (path, out_dir / f"{ref.name}.gpkg") if gpkg else (path,)
        products = write_products(
            run,
            outputs=layers,
            evidence=out_dir / f"{ref.name}.evidence" if evidence else None,
            reviews_dir=reviews_dir,
            overwrite=overwrite,
            sign_key=sign_key,
            redact=redact,
            command=f"borderwatch {ctx.info_name}",
            qgis_project=out_dir / f"{ref.name}.qgz" if qgis_project else None,
        )
        log.info("%s: wrote %s", ref.label, path)
        packet = products.evidence
        return {
            "report": path.name,
            **detection_figures(products.detections),  # reviews applied, rejected excluded
            "threshold": run.change.threshold,
            **({"manifest_sha256": packet.manifest_sha256} if packet is not None else {}),
            "coverage": coverage_summary(run),
        }

    with progress_reporter(quiet=quiet) as progress, job_slots(sched, len(jobs)) as slots:
        advance = progress.stage("jobs", len(jobs)) if progress is not None else None

        def show(result: JobResult) -> None:
            if result.status == "error":
                click.echo(f"borderwatch: {result.label}: error: {result.reason}", err=True)
            if progress is not None and advance is not None:
                advance()
                if result.status != "error":
                    progress.note(f"{result.label}: {_outcome(result)[0]}")

        results = run_batch(
            jobs,
            names=names,
            prepare=prepare,
            execute=execute,
            write=write,
            workers=slots,
            on_result=show,
        )
    counts = Counter(r.status for r in results)
    records = [r.record() for r in results]
    with atomic_write(out_dir / "batch.json", overwrite=True) as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "scheduler": sched,
                    "statistics": "sample",
                    "counts": {s: counts.get(s, 0) for s in ("ok", "no-overlap", "error")},
                    "jobs": redact_record(records) if redact else records,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    log.info("batch: wrote %s", out_dir / "batch.json")
    if not quiet:
        failed = f", {counts['error']} failed" if counts["error"] else ""
        click.echo(f"{counts['ok']} of {len(results)} jobs run{failed}; reports in {out_dir}")
        for r in results:
            if r.status == "error":  # already printed on stderr as it happened
                continue
            first, *rest = _outcome(r)
            click.echo(f"  {r.label}: {first}")
            for line in rest:
                click.echo(f"    {line}")
            if "manifest_sha256" in r.summary:
                digest = r.summary["manifest_sha256"]
                click.echo(f"    manifest sha256 {digest} (record it elsewhere)")
    if counts["error"]:
        ctx.exit(1)
