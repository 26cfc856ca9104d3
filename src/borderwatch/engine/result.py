"""The result of one run, its provenance, and pixel access for the products."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio.windows
from affine import Affine

from borderwatch import __version__
from borderwatch.aoi import AOI
from borderwatch.blockread import read_pair
from borderwatch.engine.fit import SceneModel
from borderwatch.engine.params import DetectParams
from borderwatch.engine.plan import Plan
from borderwatch.export import sha256_file
from borderwatch.io import DateSource, Grid, read_scene

__all__ = ["ChangeInfo", "DateRef", "DetectionRun", "run_metadata"]


@dataclass(frozen=True)
class DateRef:
    """One date of a run: its files (:class:`~borderwatch.io.DateSource`) and the grid."""

    source: DateSource
    grid: Grid


@dataclass(frozen=True)
class ChangeInfo:
    """Threshold value, method name and provenance parameters of a run."""

    threshold: float
    method: str
    params: dict[str, object]


@dataclass(frozen=True)
class DetectionRun:
    """Everything one run produced (no whole-scene pixel arrays).

    Attributes
    ----------
    before, after : DateRef
        The two dates.
    change : ChangeInfo
        Threshold, method and parameters.
    objects : geopandas.GeoDataFrame
        One polygon per detection, grid CRS (metres).
    aoi : AOI or None
        The area of interest.
    params : DetectParams
        Parameters used.
    plan : Plan
        The blocks, sample and sources.
    scene : SceneModel
        The fitted scene model (shift, normaliser, method, threshold).
    started_utc : str
        Start time, ISO 8601 UTC.
    outputs : dict
        ``{"score": path, "mask": path}`` of the rasters written.
    input_sha256 : dict
        SHA-256 of every input file by path, hashed while the blocks ran.
    raw_mask : numpy.ndarray or None
        ``bool (rows, cols)`` cleaned pixel mask before object filters, when asked for.
    """

    before: DateRef
    after: DateRef
    change: ChangeInfo
    objects: gpd.GeoDataFrame
    aoi: AOI | None
    params: DetectParams
    plan: Plan
    scene: SceneModel
    started_utc: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)
    input_sha256: dict[str, str] = field(default_factory=dict)
    raw_mask: np.ndarray | None = None

    @property
    def grid(self) -> Grid:
        """Analysis grid (CRS, transform, shape)."""
        return self.before.grid

    @property
    def blocks(self) -> int:
        """Number of blocks processed."""
        return len(self.plan.blocks)

    @property
    def total_area_m2(self) -> float:
        """Total area of all detections, m2."""
        return float(self.objects["area_m2"].sum()) if len(self.objects) else 0.0

    def read_window(self, window: rasterio.windows.Window) -> tuple[np.ndarray, np.ndarray]:
        """Before and co-registered, normalised after pixels of a grid window.

        Returns
        -------
        tuple of numpy.ndarray
            ``float32 (bands, rows, cols)`` each, NaN where invalid.
        """
        win = window.round_offsets().round_lengths()
        r0, c0, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
        pad = 0 if self.scene.shift is None else int(np.ceil(np.abs(self.scene.shift).max())) + 1
        R0, C0 = max(r0 - pad, 0), max(c0 - pad, 0)
        R1 = min(r0 + h + pad, self.grid.shape[0])
        C1 = min(c0 + w + pad, self.grid.shape[1])
        pair = read_pair(self.plan.source, (R0, C0, R1 - R0, C1 - C0))
        before, after, valid = self.scene.prepare(pair)
        cut = (slice(None), slice(r0 - R0, r0 - R0 + h), slice(c0 - C0, c0 - C0 + w))
        a = after[cut].copy()
        a[:, ~valid[cut[1:]]] = np.nan
        return before[cut], a

    def overview(self, role: str, *, max_px: int = 800) -> tuple[np.ndarray, int]:
        """One date on a coarser copy of the grid for an overview image.

        Returns
        -------
        data : numpy.ndarray
            ``float32 (bands, rows, cols)``, NaN where invalid.
        step : int
            Grid pixels per overview pixel.
        """
        rows, cols = self.grid.shape
        step = max(1, int(np.ceil(max(rows, cols) / max_px)))
        if step == 1:
            pair = read_pair(self.plan.source, (0, 0, rows, cols))
            return (pair.before if role == "before" else pair.after), 1
        coarse = Grid(
            self.grid.crs,
            self.grid.transform * Affine.scale(step),
            (-(-rows // step), -(-cols // step)),
        )
        date = self.before.source if role == "before" else self.after.source
        return read_scene(date, coarse, resampling="average").data.astype(np.float32), step


    def footprint(self, role: str, *, max_px: int = 2048) -> tuple[np.ndarray, Grid]:
        """Return one date's valid pixels on the grid (a coarser copy for large grids).

        Returns
        -------
        valid : numpy.ndarray
            ``bool (rows, cols)``.
        grid : Grid
            The grid of ``valid`` (the analysis grid when it has at most ``max_px``
            pixels on its longer side; else every ``step``-th pixel's neighbourhood).
        """
        data, step = self.overview(role, max_px=max_px)
        grid = self.grid
        if step > 1:
            rows, cols = data.shape[1:]
            grid = Grid(self.grid.crs, self.grid.transform * Affine.scale(step), (rows, cols))
        return np.isfinite(data).all(axis=0), grid


def run_metadata(run: DetectionRun, *, hash_inputs: bool = True) -> dict[str, Any]:
    """Provenance of a run: tool version, parameters, inputs (with SHA-256), grid.

    Returns
    -------
    dict
        JSON-serialisable.
    """
    import numpy
    import rasterio

    def files(ref: DateRef) -> list[dict[str, Any]]:
        return [
            {
                "path": str(Path(p).resolve()),
                "name": Path(p).name,
                "sha256": (run.input_sha256.get(p) or sha256_file(p)) if hash_inputs else None,
            }
            for p in ref.source.paths
        ]

    return {
        "tool": "borderwatch",
        "version": __version__,
        "started_utc": run.started_utc,
        "parameters": {
            **run.change.params,
            "resolution_m": run.grid.res[0],
            "crs": str(run.grid.crs),
            "detect_params": asdict(run.params),
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
