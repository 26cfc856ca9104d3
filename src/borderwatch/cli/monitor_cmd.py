"""``borderwatch monitor``: structures over a stack of dates, dated by brackets."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from borderwatch.cli.options import (
    _date_option,
    detect_params,
    grid_options,
    monitor_detect_options,
    packet_options,
    print_packet,
    sign_key_file,
)
from borderwatch.errors import InputError, MissingDependencyError
from borderwatch.products.export import (
    check_folder,
    check_sign_key_outside,
    check_writable,
    lies_in,
)
from borderwatch.progress import progress_reporter
from borderwatch.remote import remote_env

__all__ = ["monitor_command", "stack_entries"]

_SUFFIXES = (".gpkg", ".geojson", ".json")


def _stac_entries(source: str, aoi: str | None, start: str | None, end: str | None) -> list[Any]:
    if start is None or end is None:
        raise InputError("--stac needs --from YYYY-MM-DD and --to YYYY-MM-DD")
    try:
        stac = importlib.import_module("borderwatch.stac")
    except ImportError as exc:
        raise MissingDependencyError(
            f"--stac {source}: STAC input is not available in this installation "
            "(module borderwatch.stac is missing)"
        ) from exc
    aoi_lonlat = None
    if aoi is not None:
        from borderwatch.aoi import aoi_polygon_lonlat, get_aoi

        area = get_aoi(aoi)
        aoi_lonlat = aoi_polygon_lonlat(area, width_m=area.properties.get("width_m"))
    return list(stac.stack_from_stac(source, aoi_lonlat=aoi_lonlat, start=start, end=end))


def stack_entries(
    *,
    stack: Path | None,
    dates: tuple[Path, ...],
    stac: str | None,
    aoi: str | None,
    start: str | None,
    end: str | None,
) -> list[Any]:
    """Return the stack's entries from exactly one of ``--stack``, ``--date`` or ``--stac``."""
    from borderwatch.monitor import entries_from_dates, read_stack_csv

    given = [n for n, v in (("--stack", stack), ("--date", dates), ("--stac", stac)) if v]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise InputError(
            "give the dates with one of --stack STACK.csv, --date PATH (repeated) or "
            f"--stac CATALOG --from --to{got}"
        )
    if stack is not None:
        return read_stack_csv(stack)
    if dates:
        return entries_from_dates(list(dates))
    return _stac_entries(str(stac), aoi, start, end)


@click.command("monitor")
@click.option(
    "--stack",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="STACK.csv: columns date,path and optionally credit,scene_id,mask.",
)
@click.option(
    "--date",
    "dates",
    multiple=True,
    type=click.Path(path_type=Path),
    help="One date's raster or folder (repeat; dates from the files' metadata).",
)
@click.option("--stac", default=None, help="STAC Catalog or Item(s) to select dates from.")
@click.option(
    "--from",
    "start",
    default=None,
    callback=_date_option,
    help="First date, YYYY-MM-DD (with --stac).",
)
@click.option(
    "--to", "end", default=None, callback=_date_option, help="Last date, YYYY-MM-DD (with --stac)."
)
@click.option(
    "--aoi", default=None, help="Catalogue id/name or AOI file; default: the stack's overlap."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="FILE.gpkg (layers structures, observations, coverage) or FILE.geojson.",
)
@click.option(
    "--evidence",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write an evidence packet (image strips, report.html, manifest.json) here.",
)
@grid_options
@monitor_detect_options
@packet_options(redact=False)
@click.pass_context
def monitor_command(
    ctx: click.Context,
    stack: Path | None,
    dates: tuple[Path, ...],
    stac: str | None,
    start: str | None,
    end: str | None,
    aoi: str | None,
    out: Path,
    evidence: Path | None,
    overwrite: bool,
    sign_key: Any = None,
    redact: bool = False,
    **options: Any,
) -> None:
    """Find structures over a stack of dates and date each one by a bracket."""
    from borderwatch.monitor import monitor
    from borderwatch.monitor.products import summary_lines, write_monitor_products

    params = detect_params(**options)  # method, threshold, resolution, crs, ...
    # Every output is checked before the work starts.
    if out.suffix.lower() not in _SUFFIXES:
        raise InputError(f"{out}: unknown output type; use .gpkg, .geojson or .json")
    check_writable(out, overwrite=overwrite)
    if out.suffix.lower() != ".gpkg":
        check_writable(out.with_suffix(".qml"), overwrite=overwrite)
    if evidence is not None:
        if lies_in(out, evidence):
            raise InputError(f"{out}: lies in the evidence folder {evidence}; write it beside it")
        key_file = sign_key_file()
        if key_file is not None:
            check_sign_key_outside(key_file, evidence)
        check_folder(evidence, overwrite=overwrite)
    entries = stack_entries(stack=stack, dates=dates, stac=stac, aoi=aoi, start=start, end=end)
    quiet = bool(ctx.obj.get("quiet"))
    with (
        remote_env([e.paths for e in entries]),  # GDAL settings for URL inputs, strips included
        progress_reporter(quiet=quiet) as progress,
        monitor(entries, aoi=aoi, params=params, progress=progress) as run,
    ):
        files, packet = write_monitor_products(
            run,
            out=out,
            evidence=evidence,
            overwrite=overwrite,
            sign_key=sign_key,
            redact=redact,
            command=f"borderwatch {ctx.info_name}",
        )
        if not quiet:
            for line in summary_lines(run):
                click.echo(line)
            for path in files:
                click.echo(f"  wrote {path}")
            if packet is not None:
                click.echo(f"  wrote {packet.report}")
            print_packet(packet)
