"""The coverage ledger: what every pixel of the region was on every date.

Per date each pixel of the region (the AOI inside the grid, or the stack's overlap) is
exactly one of ``assessed`` (clear, valid imagery), ``cloud``, ``shadow``, ``snow``
(together ``masked``), ``nodata`` (inside the image but without valid pixels) or
``no_imagery`` (outside the date's image), so the statuses sum to the region. The
``total`` row gives each pixel the status of its second-best date (in that order of
preference): ``assessed`` there means assessed on at least two dates, the least a change
can be seen with; its other statuses say why a pixel was not.

For a corridor AOI (``aoi corridors``: a ``border_km`` property), each status also gets
km of corridor centre line: ``border_km`` times the status's share of the corridor's
area (the corridor is a buffer of constant width around the line, so the shares of area
and of length agree except at the corridor's ends).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features

from borderwatch.aoi import AOI
from borderwatch.engine.plan import Win
from borderwatch.io import Grid
from borderwatch.monitor.masks import CLEAR, CLOUD, NO_IMAGERY, NODATA, SHADOW, SNOW

__all__ = ["LEDGER_STATUSES", "LedgerAccumulator", "corridor_summary", "ledger_lines"]

#: Ledger statuses, in order; ``masked`` is ``cloud + shadow + snow``.
LEDGER_STATUSES = ("assessed", "cloud", "shadow", "snow", "nodata", "no_imagery")
_CODES = (CLEAR, CLOUD, SHADOW, SNOW, NODATA, NO_IMAGERY)


class LedgerAccumulator:
    """Pixel counts per date and status, and the per-pixel best two statuses over dates.

    Memory: the region mask and two ``uint8`` grids, whatever the number of dates.
    ``off_grid_m2`` is the region's area beyond the grid (m2): no imagery on any date.
    """

    def __init__(self, grid: Grid, region: Any, n_dates: int, *, off_grid_m2: float = 0.0) -> None:
        self.grid = grid
        self.off_grid_m2 = off_grid_m2
        self.region = (
            rasterio.features.geometry_mask(
                [region], out_shape=grid.shape, transform=grid.transform, invert=True
            )
            if not region.is_empty
            else np.zeros(grid.shape, bool)
        )
        self.counts = np.zeros((n_dates, len(_CODES)), np.int64)
        self.best = np.full(grid.shape, NO_IMAGERY, np.uint8)
        self.second = np.full(grid.shape, NO_IMAGERY, np.uint8)

    def add(self, k: int, w: Win, codes: np.ndarray) -> None:
        """Count one block of date ``k``'s state codes."""
        r0, c0, h, wd = w
        cut = (slice(r0, r0 + h), slice(c0, c0 + wd))
        inside = self.region[cut]
        self.counts[k] += np.bincount(codes[inside], minlength=len(_CODES))[: len(_CODES)]
        best, second = self.best[cut], self.second[cut]
        self.second[cut] = np.where(codes < best, best, np.minimum(second, codes))
        self.best[cut] = np.minimum(best, codes)

    def frame(self, records: Any) -> pd.DataFrame:
        """Return the ledger: a row per date, then ``total`` (m2, shares of the region)."""
        total = np.bincount(self.second[self.region], minlength=len(_CODES))[: len(_CODES)]
        rows = []
        for k, rec in enumerate(records):
            rows.append(self._row(rec.date, rec.scene, rec.mask_kind, self.counts[k]))
        rows.append(self._row("total", "", "", total))
        return pd.DataFrame(rows)

    def _row(self, date: str, scene: str, mask: str, counts: np.ndarray) -> dict[str, Any]:
        px = self.grid.pixel_area
        region = float(self.region.sum()) * px + self.off_grid_m2
        row: dict[str, Any] = {"date": date, "scene": scene, "mask": mask}
        for name, n in zip(LEDGER_STATUSES, counts, strict=True):
            row[f"{name}_m2"] = float(n) * px
        row["no_imagery_m2"] += self.off_grid_m2
        row["masked_m2"] = row["cloud_m2"] + row["shadow_m2"] + row["snow_m2"]
        row["region_m2"] = region
        for name in ("assessed", "masked", "nodata", "no_imagery"):
            row[f"{name}_share"] = row[f"{name}_m2"] / region if region else 0.0
        return row


def add_km(ledger: pd.DataFrame, border_km: float) -> pd.DataFrame:
    """Add ``*_km`` columns of corridor centre line to a ledger (see the module notes)."""
    out = ledger.copy()
    for name in ("assessed", "masked", "nodata", "no_imagery"):
        out[f"{name}_km"] = out[f"{name}_share"] * border_km
    return out


def corridor_summary(
    aoi: AOI | None, ledger: pd.DataFrame, structures: gpd.GeoDataFrame
) -> dict[str, Any] | None:
    """For a corridor AOI: km of centre line assessed and km of new ``fence_or_wall``.

    Returns None when the AOI is not a corridor (no ``border_km`` property).
    """
    if aoi is None or "border_km" not in aoi.properties:
        return None
    border_km = float(aoi.properties["border_km"])
    total = ledger[ledger["date"] == "total"].iloc[0]
    fences = structures[(structures["class"] == "fence_or_wall") & (structures["status"] == "new")]
    return {
        "corridor": aoi.id,
        "border_km": border_km,
        "assessed_km": float(total["assessed_share"]) * border_km,
        "new_fence_km": float(fences["length_m"].sum()) / 1000.0,
        "new_fences": [
            {
                "id": r["id"],
                "length_km": float(r["length_m"]) / 1000.0,
                "last_absent": r["last_absent"],
                "first_present": r["first_present"],
            }
            for _, r in fences.iterrows()
        ],
    }


def ledger_lines(ledger: pd.DataFrame) -> list[str]:
    """Summary lines: one per date, then the total line."""
    from borderwatch.products.coverage import format_area

    lines = []
    for _, r in ledger.iterrows():
        label = "total (assessed on 2+ dates)" if r["date"] == "total" else f"{r['date']}"
        km = f", {r['assessed_km']:.1f} km" if "assessed_km" in r else ""
        lines.append(
            f"  {label}: assessed {format_area(r['assessed_m2'])} ({r['assessed_share']:.0%}{km}), "
            f"masked {format_area(r['masked_m2'])} ({r['masked_share']:.0%}), "
            f"nodata {r['nodata_share']:.0%}, no imagery {r['no_imagery_share']:.0%}"
        )
    return lines
