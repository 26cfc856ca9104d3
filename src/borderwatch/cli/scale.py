"""Block-by-block runs from the CLI: shared by ``detect`` and ``batch``.

Keeps the command modules thin: this module decides when ``detect`` goes block by
block (:func:`use_blocks`) and writes a blockwise run's outputs (GeoJSON with run
metadata, plus the score/mask COGs written during the run).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import click

from borderwatch.blocks import BlockRun, needs_blocks, run_detect_blocks
from borderwatch.cli.logs import quiet_scheduler
from borderwatch.errors import InputError
from borderwatch.export import check_writable, write_geojson
from borderwatch.pipeline import run_metadata
from borderwatch.progress import progress_reporter

__all__ = ["raster_out_options", "run_blockwise", "use_blocks", "write_block_outputs"]

log = logging.getLogger(__name__)

_GEOJSON = (".geojson", ".json")


def raster_out_options(fn: Any) -> Any:
    """``--score-out`` and ``--mask-out`` (Cloud Optimized GeoTIFFs)."""
    fn = click.option(
        "--mask-out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write the final change mask (uint8 COG, 1 = detection); "
        "implies block-by-block processing.",
    )(fn)
    fn = click.option(
        "--score-out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write the change score (float32 COG); implies block-by-block processing.",
    )(fn)
    return fn


def use_blocks(
    before: Any,
    after: Any,
    *,
    aoi: str | None,
    params: Any,
    block_size: int | None,
    scheduler: str | None,
    score_out: Path | None,
    mask_out: Path | None,
) -> bool:
    """Go block by block when asked (any scale option) or when the grid is too large.

    Too large means more than :data:`borderwatch.blocks.IN_MEMORY_MAX_PIXELS` pixels.
    """
    if any(v is not None for v in (block_size, scheduler, score_out, mask_out)):
        return True
    return needs_blocks(before, after, aoi=aoi, params=params)


def write_block_outputs(run: BlockRun, out: Path | None, *, overwrite: bool) -> list[Path]:
    """Write the detections GeoJSON of a blockwise run; list every file written."""
    files = [*run.outputs.values()]
    if out is not None:
        files.insert(
            0,
            write_geojson(run.objects, out, metadata=run_metadata(run), overwrite=overwrite),  # type: ignore[arg-type]
        )
    return files


def run_blockwise(
    ctx: click.Context,
    before: Any,
    after: Any,
    *,
    aoi: str | None,
    params: Any,
    out: Path | None,
    block_size: int | None,
    scheduler: str | None,
    score_out: Path | None,
    mask_out: Path | None,
    overwrite: bool,
    unsupported: dict[str, Any],
) -> tuple[BlockRun, list[Path]]:
    """Run ``detect`` block by block and write its outputs.

    Raises
    ------
    InputError
        An option the blockwise path does not support (e.g. ``--evidence``) was
        given, or ``--out`` is not GeoJSON.
    """
    given = [name for name, value in unsupported.items() if value]
    if given:
        raise InputError(
            f"{', '.join(given)} not available for block-by-block runs yet; drop it, or run "
            "without --block-size/--scheduler/--score-out/--mask-out on a smaller scene"
        )
    if out is not None:
        if out.suffix.lower() not in _GEOJSON:
            raise InputError(f"{out}: block-by-block runs write GeoJSON; use a .geojson name")
        check_writable(out, overwrite=overwrite)
    from borderwatch.blocks import DEFAULT_BLOCK_SIZE

    local = scheduler in (None, "local")
    quiet_scheduler(scheduler)
    log.info(
        "detect: block by block, %d px blocks, %s scheduler",
        block_size or DEFAULT_BLOCK_SIZE,
        "local" if local else scheduler,
    )
    with (
        progress_reporter(quiet=bool(ctx.obj.get("quiet"))) as progress,
        # dask schedulers report no steps: show the elapsed time instead.
        progress.activity(f"on {scheduler}")
        if progress is not None and not local
        else contextlib.nullcontext(),
    ):
        run = run_detect_blocks(
            before,
            after,
            aoi=aoi,
            params=params,
            block_size=block_size or DEFAULT_BLOCK_SIZE,
            scheduler=scheduler,
            score_out=score_out,
            mask_out=mask_out,
            overwrite=overwrite,
            progress=progress,
        )
    log.info(
        "detect: %d detections over %d block(s), threshold %.4g",
        len(run.objects),
        run.blocks,
        run.change.threshold,
    )
    return run, write_block_outputs(run, out, overwrite=overwrite)
