"""The main job, chained from the stage modules: AOI -> loader -> change -> objects.

:func:`run_detect` returns every intermediate product (scenes, scores, mask, objects)
so that notebooks and exporters can use any of them; :func:`run_metadata` describes
the run for provenance.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
from threadpoolctl import threadpool_limits

from borderwatch import __version__
from borderwatch.align import prepare_pair
from borderwatch.aoi import AOI, aoi_polygon_lonlat, get_aoi
from borderwatch.change import ChangeResult, detect_change, rank_verification
from borderwatch.classify import find_structures
from borderwatch.errors import InputError
from borderwatch.export import sha256_file
from borderwatch.io import Grid, Scene, load_pair, open_date
from borderwatch.objects import mask_to_objects

__all__ = ["DetectParams", "DetectionRun", "run_detect", "run_metadata", "sample_tiles_dir"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class DetectParams:
    """Parameters of a detection run (all distances in metres, areas in m2).

    Attributes
    ----------
    method : str
        Change score method (see :data:`borderwatch.change.METHODS`).
    threshold : str or float
        ``"otsu"`` or a fixed score.
    min_area_m2 : float
        Smallest object kept, m2.
    opening_px, closing_px : int
        Morphological clean-up radii, pixels.
    resolution : float or None
        Analysis pixel size in metres; default the finest input resolution.
    crs : str or None
        Analysis CRS; default the local UTM zone.
    margin_m : float
        Margin read around the AOI, metres.
    align : bool
        Co-register the after date onto the before date (phase correlation,
        :mod:`borderwatch.align`); the residual shift is recorded.
    normalise : {"none", "irmad", "histogram"}
        Relative radiometric normalisation of the after date. Default "none": the
        default score standardises every band and index difference, which already
        cancels a linear gain and offset between dates.
    classify : bool
        Keep construction-direction objects only and add ``class``, ``length_m``,
        ``confidence`` (:mod:`borderwatch.classify`).
    p_value : float
        False-alarm rate of the ``chi2`` threshold.
    model : str or None
        Model file from ``borderwatch train``; replaces ``method``/``threshold`` with the
        model's change probability > 0.5 (:func:`borderwatch.learn.detect_with_model`).
    """

    method: str = "combined"
    threshold: str | float = "ki"
    min_area_m2: float = 20.0
    opening_px: int = 1
    closing_px: int = 1
    resolution: float | None = None
    crs: str | None = None
    margin_m: float = 0.0
    align: bool = True
    normalise: Literal["none", "irmad", "histogram"] = "none"
    classify: bool = True
    p_value: float = 0.01
    model: str | None = None


@dataclass(frozen=True)
class DetectionRun:
    """Everything one detection run produced.

    Attributes
    ----------
    before, after : Scene
        The two dates on the analysis grid.
    change : ChangeResult
        Score, mask and threshold.
    objects : geopandas.GeoDataFrame
        One polygon per detection, in the grid CRS (metres).
    aoi : AOI or None
        The area of interest, if one was given.
    params : DetectParams
        Parameters used.
    """

    before: Scene
    after: Scene
    change: ChangeResult
    objects: gpd.GeoDataFrame
    aoi: AOI | None
    params: DetectParams
    started_utc: str = field(default="")

    @property
    def grid(self) -> Grid:
        """Analysis grid (CRS, transform, shape)."""
        return self.before.grid

    @cached_property
    def input_sha256(self) -> dict[str, str]:
        """SHA-256 of every before then after input file, keyed by path as given.

        Computed once per run on first use, so provenance, object ids and the evidence
        manifest share one pass over the inputs.
        """
        paths = [*self.before.source.paths, *self.after.source.paths]
        return {p: sha256_file(p) for p in paths}

    @property
    def total_area_m2(self) -> float:
        """Total area of all detections, m2."""
        return float(self.objects["area_m2"].sum()) if len(self.objects) else 0.0


def sample_tiles_dir() -> Path:
    """Folder of the embedded demo tiles (packaged copy, else the repository's).

    Raises
    ------
    InputError
        Neither the packaged nor the repository copy exists.
    """
    packaged = Path(str(resources.files("borderwatch"))) / "sample_tiles"
    repo = Path(__file__).resolve().parents[2] / "data" / "sample_tiles"
    for candidate in (packaged, repo):
        if (candidate / "before.tif").exists() and (candidate / "after.tif").exists():
            return candidate
    raise InputError(f"sample tiles not found in {packaged} or {repo}; reinstall borderwatch")


def run_detect(
    before: Sequence[PathLike] | PathLike,
    after: Sequence[PathLike] | PathLike,
    *,
    aoi: AOI | str | None = None,
    params: DetectParams | None = None,
    grid: Grid | None = None,
) -> DetectionRun:
    """Run the whole detection on one before/after pair.

    Parameters
    ----------
    before, after : path or sequence of paths
        One multi-band raster or several single-band rasters per date.
    aoi : AOI or str, optional
        An :class:`~borderwatch.aoi.AOI`, a catalogue id or name, or an AOI file path.
        Without it, the whole overlap of the inputs is processed.
    params : DetectParams, optional
        Detection parameters.
    grid : Grid, optional
        Analysis grid to use as is.

    Returns
    -------
    DetectionRun
    """
    params = params or DetectParams()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    area = get_aoi(aoi) if isinstance(aoi, (str, os.PathLike)) else aoi
    geom = aoi_polygon_lonlat(area) if area is not None else None
    b_src, a_src = open_date(before), open_date(after)
    sb, sa = load_pair(
        b_src,
        a_src,
        aoi=geom,
        crs=params.crs,
        resolution=params.resolution,
        margin_m=params.margin_m,
        grid=grid,
    )
    # Phase correlation's small matrix products run fastest on one BLAS thread; more
    # threads only contend with each other (and with GDAL) on a small machine.
    with threadpool_limits(limits=1, user_api="blas"):
        after_data, valid, align_info = prepare_pair(
            sb.data,
            sa.data,
            sb.valid,
            sa.valid,
            align=params.align,
            normalise_method=params.normalise,
        )
    sa = Scene(after_data, valid & sa.valid, sa.grid, sa.source)
    if params.model is not None:  # the learned mode (and its data readers) on demand
        from borderwatch.learn import detect_with_model
    change = (
        detect_change(
            sb.data,
            after_data,
            valid,
            pixel_area_m2=sb.grid.pixel_area,
            method=params.method,
            threshold=params.threshold,
            min_area_m2=params.min_area_m2,
            opening_px=params.opening_px,
            closing_px=params.closing_px,
            band_names=b_src.band_names,
            p_value=params.p_value,
        )
        if params.model is None
        else detect_with_model(
            params.model,
            sb.data,
            after_data,
            valid,
            band_names=b_src.band_names,
            pixel_area_m2=sb.grid.pixel_area,
            min_area_m2=params.min_area_m2,
            opening_px=params.opening_px,
            closing_px=params.closing_px,
        )
    )
    change = dataclasses.replace(change, params={**change.params, **align_info})
    attrs = {
        "aoi_id": area.id if area is not None else None,
        "before": ";".join(Path(p).name for p in b_src.paths),
        "after": ";".join(Path(p).name for p in a_src.paths),
        "before_date": b_src.date,
        "after_date": a_src.date,
    }
    objects = mask_to_objects(change.mask, change.score, sb.grid, attrs=attrs)
    if params.classify:
        objects = find_structures(
            objects,
            change.mask,
            sb.data,
            after_data,
            valid,
            band_names=b_src.band_names,
            pixel_m=math.sqrt(sb.grid.pixel_area),
            threshold=change.threshold,
            residual_shift_px=align_info["residual_shift_px"],  # type: ignore[arg-type]
            method=params.method,
            verify=_verification(params, sb.data, after_data, valid, change, sb.grid),
        )
    return DetectionRun(sb, sa, change, objects, area, params, started)


def _verification(
    params: DetectParams,
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    change: ChangeResult,
    grid: Grid,
) -> np.ndarray | None:
    """Rank-model score at the change mask for the default method's peak check, else None."""
    if params.method != "combined" or change.model is None:
        return None
    pixel_m = math.sqrt(grid.pixel_area)
    return rank_verification(change.model, before, after, valid, pixel_m=pixel_m, where=change.mask)


def run_metadata(run: DetectionRun, *, hash_inputs: bool = True) -> dict[str, Any]:
    """Provenance of a run: tool version, parameters, inputs (with SHA-256), grid.

    Returns
    -------
    dict
        JSON-serialisable.
    """
    import numpy
    import rasterio

    def files(scene: Scene) -> list[dict[str, Any]]:
        return [
            {
                "path": str(Path(p).resolve()),
                "name": Path(p).name,
                "sha256": (run.input_sha256.get(p) or sha256_file(p)) if hash_inputs else None,
            }
            for p in scene.source.paths
        ]

    return {
        "tool": "borderwatch",
        "version": __version__,
        "started_utc": run.started_utc,
        "parameters": {
            **run.change.params,
            "resolution_m": run.grid.res[0],
            "crs": str(run.grid.crs),
        },
        "aoi": None
        if run.aoi is None
        else {"id": run.aoi.id, "name": run.aoi.name, "source": run.aoi.source},
        "inputs": {
            "before": {"date": run.before.source.date, "files": files(run.before)},
            "after": {"date": run.after.source.date, "files": files(run.after)},
        },
        "grid": {
            "crs": str(run.grid.crs),
            "transform": list(run.grid.transform)[:6],
            "shape": list(run.grid.shape),
        },
        "summary": {"detections": len(run.objects), "total_area_m2": run.total_area_m2},
        "versions": {
            "borderwatch": __version__,
            "numpy": numpy.__version__,
            "rasterio": rasterio.__version__,
            "gdal": rasterio.__gdal_version__,
            "python": platform.python_version(),
        },
    }
