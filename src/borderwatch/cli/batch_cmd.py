"""``borderwatch batch``: many AOIs x many image pairs as one dask job graph.

Jobs are every combination of the ``--aoi`` values and the ``--pair`` values, plus
the rows of ``--jobs`` files (CSV with columns ``aoi,before,after``; ``aoi`` may be
empty for the whole overlap; ``before``/``after`` may list several files separated
by ``;``). All jobs' blocks run in one dask graph (``--scheduler``, default dask's
local ``threads``), and one GeoJSON report per job is written to ``--out-dir`` as
``<aoi>__<before>__<after>.geojson``, plus ``batch.json`` listing every job, its
status (``ok`` or ``no-overlap``), detection count and report. Batch runs are block by
block in one pass with statistics from a sample (:mod:`borderwatch.blockpass`), with
co-registration and classification as ``detect``; radiometric normalisation is not
available block by block (``--normalise`` other than ``none`` is refused).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import click

from borderwatch.blocks import DEFAULT_BLOCK_SIZE, BlockJob, prepare_job
from borderwatch.cli.options import detect_options, parse_threshold, scale_options
from borderwatch.cli.scale import write_block_outputs
from borderwatch.errors import InputError, NoOverlapError, OutputExistsError
from borderwatch.export import atomic_write

__all__ = ["Job", "batch", "read_jobs", "report_name"]

Job = tuple[str | None, tuple[str, ...], tuple[str, ...]]


def read_jobs(path: Path) -> list[Job]:
    """Jobs from a CSV file with header ``aoi,before,after``.

    Raises
    ------
    InputError
        Missing columns or empty ``before``/``after``.
    """
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"aoi", "before", "after"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(
                f"{path}: job file lacks column(s) {sorted(missing)}; "
                "header must be aoi,before,after"
            )
        jobs: list[Job] = []
        for n, row in enumerate(reader, start=2):
            b = tuple(p.strip() for p in (row["before"] or "").split(";") if p.strip())
            a = tuple(p.strip() for p in (row["after"] or "").split(";") if p.strip())
            if not b or not a:
                raise InputError(f"{path}:{n}: before and after must both be given")
            jobs.append(((row["aoi"] or "").strip() or None, b, a))
    return jobs


def report_name(aoi: str | None, before: tuple[str, ...], after: tuple[str, ...]) -> str:
    """File name of a job's report: ``<aoi>__<before stem>__<after stem>.geojson``."""

    def stem(paths: tuple[str, ...]) -> str:
        return Path(paths[0]).stem if len(paths) == 1 else Path(paths[0]).parent.name

    place = Path(aoi).stem if aoi else "overlap"
    return f"{place}__{stem(before)}__{stem(after)}.geojson"


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
    help="BEFORE AFTER rasters (repeatable); combined with every --aoi.",
)
@click.option(
    "--jobs",
    "job_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV job file with columns aoi,before,after (repeatable).",
)
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the reports (created if missing).",
)
@detect_options
@scale_options
@click.pass_context
def batch(
    ctx: click.Context,
    aois: tuple[str, ...],
    pairs: tuple[tuple[Path, Path], ...],
    job_files: tuple[Path, ...],
    out_dir: Path,
    method: str,
    threshold: str,
    min_area_m2: float,
    overwrite: bool,
    block_size: int | None,
    scheduler: str | None,
    **quality: Any,
) -> None:
    """Run detection for many AOIs x image pairs as one job graph; one report per job."""
    from borderwatch.dask_run import run_jobs
    from borderwatch.engine import DetectParams

    specs: list[Job] = [
        (aoi, (str(b),), (str(a),)) for (b, a) in pairs for aoi in (aois or (None,))
    ]
    for path in job_files:
        specs += read_jobs(path)
    if not specs:
        raise click.UsageError("give at least one --pair or --jobs file")
    names = [report_name(*s) for s in specs]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise InputError(
            f"two jobs would write the same report {sorted(dupes)[0]}; "
            "rename the inputs or split the batch"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (out_dir / name).exists() and not overwrite:
            raise OutputExistsError(f"{out_dir / name}: output exists; pass --overwrite")
    params = DetectParams(
        method=method, threshold=parse_threshold(threshold), min_area_m2=min_area_m2, **quality
    )
    jobs: list[BlockJob] = []
    status: list[dict[str, object]] = []
    for (aoi, b, a), name in zip(specs, names, strict=True):
        entry: dict[str, object] = {"aoi": aoi, "before": list(b), "after": list(a)}
        try:
            jobs.append(
                prepare_job(
                    list(b),
                    list(a),
                    aoi=aoi,
                    params=params,
                    block_size=block_size or DEFAULT_BLOCK_SIZE,
                )
            )
            entry.update(status="ok", report=name)
        except NoOverlapError as exc:
            entry.update(status="no-overlap", reason=str(exc))
        status.append(entry)
    runs = iter(run_jobs(jobs, scheduler=scheduler or "threads"))
    for entry in status:
        if entry["status"] != "ok":
            continue
        run = next(runs)
        write_block_outputs(run, out_dir / str(entry["report"]), overwrite=overwrite)
        entry.update(
            detections=len(run.objects),
            total_area_m2=run.total_area_m2,
            threshold=run.change.threshold,
        )
    with atomic_write(out_dir / "batch.json", overwrite=True) as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "scheduler": scheduler or "threads",
                    "statistics": "sample",
                    "jobs": status,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    if not ctx.obj.get("quiet"):
        ok = sum(e["status"] == "ok" for e in status)
        click.echo(f"{ok} of {len(status)} jobs run; reports in {out_dir}")
        for e in status:
            click.echo(f"  {e.get('report') or e['status']}: {e.get('detections', '-')} detections")
