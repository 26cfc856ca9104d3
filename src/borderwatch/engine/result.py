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
from borderwatch.aoi import AOI, aoi_caveat
from borderwatch.engine.fit import SceneModel
from borderwatch.engine.params import DetectParams
from borderwatch.engine.plan import Plan
from borderwatch.engine.read import read_pair
from borderwatch.errors import InternalError
from borderwatch.io import DateSource, Grid
from borderwatch.products.coverage import coverage_summary
from borderwatch.products.export import sha256_file
from borderwatch.radiometry import offset_record
from borderwatch.remote import is_url, window_record

__all__ = ["ChangeInfo", "DateRef", "DetectionRun", "Preview", "run_metadata"]


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
class Preview:
    """Each date's valid footprint and the after image, every ``step``-th grid pixel.

    Filled from the blocks as they are processed (:class:`borderwatch.engine.apply.
    BlockPreview`), so products need no second read of the inputs. With ``step`` 1
    (grids up to :data:`~borderwatch.engine.apply.PREVIEW_PX` pixels) it is exact.

    Attributes
    ----------
    step : int
        Grid pixels per preview pixel.
    valid_before, valid_after : numpy.ndarray
        ``bool (rows, cols)``.
    after : numpy.ndarray
        ``float32 (bands, rows, cols)``, NaN where invalid.
    counts : list of int
        Valid pixels of each date on the whole grid (exact).
    """

    step: int
    valid_before: np.ndarray
    valid_after: np.ndarray
    after: np.ndarray
    counts: list[int]

    @classmethod
    def empty(cls, shape: tuple[int, int], bands: int, step: int) -> Preview:
        """Return a preview of a grid of ``shape`` with nothing filled in yet."""
        rows, cols = -(-shape[0] // step), -(-shape[1] // step)
        return cls(
            step,
            np.zeros((rows, cols), bool),
            np.zeros((rows, cols), bool),
            np.full((bands, rows, cols), np.nan, np.float32),
            [0, 0],
        )

    def add(self, part: Any) -> None:
        """Put one block's part (a ``BlockPreview``) in place."""
        r, c = part.origin
        h, w = part.valid_before.shape
        self.valid_before[r : r + h, c : c + w] = part.valid_before
        self.valid_after[r : r + h, c : c + w] = part.valid_after
        self.after[:, r : r + h, c : c + w] = part.after
        self.counts[0] += part.counts[0]
        self.counts[1] += part.counts[1]


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
    preview : Preview
        Footprints and after image at preview resolution, from the block pass.
    raw_mask, valid : numpy.ndarray or None
        ``bool (rows, cols)`` cleaned pixel mask before object filters, and the pixels
        valid in both dates, when asked for (``detect(..., raw_mask=True)``).
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
    preview: Preview | None = None
    raw_mask: np.ndarray | None = None
    valid: np.ndarray | None = None

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

    def _preview_grid(self) -> tuple[Preview, Grid]:
        if self.preview is None:
            raise InternalError("the run has no preview")
        p = self.preview
        grid = self.grid
        if p.step > 1:
            grid = Grid(grid.crs, grid.transform * Affine.scale(p.step), p.valid_before.shape)
        return p, grid

    def overview(self) -> tuple[np.ndarray, int]:
        """Return the after date at preview resolution and its step (grid px per pixel)."""
        p, _ = self._preview_grid()
        return p.after, p.step

    def footprint(self, role: str) -> tuple[np.ndarray, Grid, int]:
        """One date's valid pixels at preview resolution.

        Returns
        -------
        valid : numpy.ndarray
            ``bool (rows, cols)``.
        grid : Grid
            The grid of ``valid`` (the analysis grid when the preview step is 1).
        count : int
            Valid pixels of the date on the whole analysis grid (exact).
        """
        p, grid = self._preview_grid()
        k = 0 if role == "before" else 1
        return (p.valid_before if k == 0 else p.valid_after), grid, p.counts[k]


def run_metadata(run: DetectionRun, *, hash_inputs: bool = True) -> dict[str, Any]:
    """Provenance of a run: tool version, parameters, inputs (with SHA-256), grid, coverage.

    ``coverage`` is :func:`borderwatch.products.coverage.coverage_summary`: how much of
    the AOI both dates cover with valid pixels (m2 and share).

    Returns
    -------
    dict
        JSON-serialisable. ``inputs.before``/``inputs.after`` hold the date's
        :class:`~borderwatch.imagery.Imagery` fields (``date``, ``date_source``,
        ``credit``, ``credit_source``, ``scene_id``, ``synthetic``), its ``files`` and
        its ``radiometric_offset`` (:func:`borderwatch.radiometry.offset_record`: the
        Sentinel-2 baseline >= 04.00 offset applied per band and its source, or None);
        ``synthetic`` is true when either date is synthetic imagery.
    """
    import numpy
    import rasterio

    def files(ref: DateRef) -> list[dict[str, Any]]:
        return [
            window_record(p, run.grid, sha256=run.input_sha256.get(p), hash_pixels=hash_inputs)
            if is_url(p)
            else {
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
        else {
            "id": run.aoi.id,
            "name": run.aoi.name,
            "source": run.aoi.source,
            **dict(zip(("confidence", "caveat"), aoi_caveat(run.aoi), strict=True)),
        },
        "inputs": {
            role: {
                **ref.source.imagery.record(),
                "files": files(ref),
                "radiometric_offset": offset_record(
                    ref.source.band_names, ref.source.offsets, ref.source.offset_source
                ),
            }
            for role, ref in (("before", run.before), ("after", run.after))
        },
        "synthetic": run.before.source.imagery.synthetic or run.after.source.imagery.synthetic,
        "grid": {
            "crs": str(run.grid.crs),
            "transform": list(run.grid.transform)[:6],
            "shape": list(run.grid.shape),
        },
        # The engine's raw objects, before any review: the finding's figures are
        # borderwatch.products.summary.detection_figures of the reviewed table.
        "summary": {"engine_objects": len(run.objects), "engine_area_m2": run.total_area_m2},
        "coverage": coverage_summary(run),
        "versions": {
            "borderwatch": __version__,
            "numpy": numpy.__version__,
            "rasterio": rasterio.__version__,
            "gdal": rasterio.__gdal_version__,
            "python": platform.python_version(),
        },
    }
