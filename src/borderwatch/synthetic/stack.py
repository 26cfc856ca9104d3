"""Synthetic image stacks: many dates, structures planted at known dates, and the truth.

:func:`make_stack` renders the valley of :mod:`borderwatch.synthetic` (the same
ground, existing village and compound, and the same new buildings, watchtower and
fence ring as :func:`~borderwatch.synthetic.make_pair`) on N dates. Each new
structure appears on a seeded date and stays (one building is removed again: a
transient); the dates carry what a monitoring tool must see through: seasons
(vegetation phenology and per-date illumination and haze), sub-pixel and
few-pixel mis-registration, clouds with their shadows over some structures on some
dates (with a user mask raster per cloudy date, or unmasked), and one date whose
image misses part of the area (nodata). The files are a ``STACK.csv`` as
``borderwatch monitor`` reads it and a ``truth.json`` that says, per structure, when
it was built and removed and, per date, which structures lie under cloud, shadow
or nodata.

Everything is drawn from ``numpy.random.default_rng`` streams spawned from one seed,
so the same arguments give identical files. Nothing here is real imagery.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio.crs import CRS
from scipy import ndimage

from borderwatch.errors import InputError, OutputExistsError
from borderwatch.masks import USER_MASK_TAG
from borderwatch.synthetic import events as ev
from borderwatch.synthetic import ground as gr
from borderwatch.synthetic import structures as st
from borderwatch.synthetic.events import MASK_CLOUD, MASK_SHADOW
from borderwatch.synthetic.frame import EPSG, LAYOUT_M, Box, Grid
from borderwatch.synthetic.pair import BAND_NAMES, atomic_write, validate_scene, write_raster

__all__ = ["MASK_CLOUD", "MASK_SHADOW", "DateTruth", "StackTruth", "make_stack", "stack_dates"]


_FIRST_DATE: Final = dt.date(2019, 4, 12)
_STEP_DAYS: Final = 61  # about six dates a year: every season is seen
_PSF_SIGMA_M: Final = 0.6

State = Literal["present", "absent", "unassessable"]


@dataclass(frozen=True)
class DateTruth:
    """What one date of a synthetic stack holds.

    Attributes
    ----------
    date : str
        ISO acquisition date, YYYY-MM-DD.
    scene_id : str
        Scene id written to ``STACK.csv``.
    path : Path
        The date's GeoTIFF.
    mask_path : Path or None
        Its user mask raster (uint8, 0 clear, 1 cloud, 2 cloud shadow), or None when
        the date has no cloud or the stack's clouds are unmasked.
    shift_px : tuple of float
        Mis-registration (rows, cols), pixels: ground content at (r, c) on the first
        date appears at (r + shift_px[0], c + shift_px[1]) on this one.
    season : float
        Strength of the dry-season look (0 in midsummer, 1.6 in midwinter).
    cloud_share, nodata_share : float
        Share of the scene under cloud or cloud shadow (as masked), and without data.
    nodata_region : shapely.Polygon or None
        The part of the scene without data (grid CRS, EPSG:32652), or None.
    masked_share : dict of int to float
        Per structure id, the share of its footprint (as displaced on this date) under
        cloud or cloud shadow; structures with none are left out.
    nodata_share_by_id : dict of int to float
        Per structure id, the share of its footprint without data; none left out.
    """

    date: str
    scene_id: str
    path: Path
    mask_path: Path | None
    shift_px: tuple[float, float]
    season: float
    cloud_share: float
    nodata_share: float
    nodata_region: shapely.Polygon | None
    masked_share: dict[int, float] = field(default_factory=dict)
    nodata_share_by_id: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class StackTruth:
    """A synthetic stack on disk and what was planted in it.

    Attributes
    ----------
    folder : Path
        Where the files are.
    csv_path, truth_path : Path
        ``STACK.csv`` (``date,path,credit,scene_id,mask``) and ``truth.json``.
    structures : geopandas.GeoDataFrame
        Planted new structures in the grid CRS (EPSG:32652), as placed on the first
        date's grid: ``id``, ``class`` (``"building"`` or ``"fence_or_wall"``),
        ``area_m2``, ``length_m`` (fence centreline, NaN for buildings), ``built``
        (first date it is visible, ISO), ``removed`` (first date it is gone again,
        ISO, or None) and polygon ``geometry``. Empty for a no-construction stack.
    dates : tuple of DateTruth
        One per date, in date order.
    transform : affine.Affine
        Pixel-to-map transform shared by every date (EPSG:32652 metres).
    crs : rasterio.crs.CRS
        EPSG:32652.
    seed : int
        Seed the stack was generated from.
    masks_written : bool
        Whether the clouds come with user mask rasters.
    """

    folder: Path
    csv_path: Path
    truth_path: Path
    structures: gpd.GeoDataFrame
    dates: tuple[DateTruth, ...]
    transform: Affine
    crs: CRS
    seed: int
    masks_written: bool

    def state(self, sid: int, date: str, *, min_clear: float = 0.5) -> State:
        """Return the true state of a structure on a date, as an ideal monitor sees it.

        Parameters
        ----------
        sid : int
            Structure id.
        date : str
            ISO date of the stack.
        min_clear : float, default 0.5
            Least share of the footprint that must be clear of cloud, shadow and
            nodata for the date to be assessable.

        Returns
        -------
        str
            ``"unassessable"`` when less than ``min_clear`` of the footprint is clear
            on that date, else ``"present"`` (built on or before it and not removed
            on or before it) or ``"absent"``.
        """
        d = self._date(date)
        hidden = d.masked_share.get(sid, 0.0) + d.nodata_share_by_id.get(sid, 0.0)
        if 1.0 - hidden < min_clear:
            return "unassessable"
        row = self.structures.set_index("id").loc[sid]
        removed = row["removed"]
        gone = removed is not None and date >= removed
        return "present" if date >= row["built"] and not gone else "absent"

    def tightest_bracket(self, sid: int, *, min_clear: float = 0.5) -> tuple[str | None, str]:
        """Return the tightest bracket of a structure's built date that the stack allows.

        Parameters
        ----------
        sid : int
            Structure id.
        min_clear : float, default 0.5
            As in :meth:`state`.

        Returns
        -------
        last_absent : str or None
            The last assessable date before the built date (None if there is none).
        first_present : str
            The first assessable date on or after the built date.
        """
        built = self.structures.set_index("id").loc[sid, "built"]
        ok = [
            d.date
            for d in self.dates
            if self.state(sid, d.date, min_clear=min_clear) != "unassessable"
        ]
        before = [d for d in ok if d < built]
        after = [d for d in ok if d >= built]
        if not after:
            raise InputError(f"structure {sid} is never assessable on or after {built}")
        return (before[-1] if before else None), after[0]

    def _date(self, date: str) -> DateTruth:
        for d in self.dates:
            if d.date == date:
                return d
        raise InputError(f"{date!r} is not a date of the stack in {self.folder}")


def stack_dates(n: int) -> tuple[str, ...]:
    """Return ``n`` ISO dates every 61 days from 2019-04-12 (about six a year).

    Parameters
    ----------
    n : int
        Number of dates, at least 4.

    Returns
    -------
    tuple of str
        YYYY-MM-DD, increasing.
    """
    return tuple(
        (_FIRST_DATE + dt.timedelta(days=_STEP_DAYS * i)).isoformat() for i in range(int(n))
    )


def make_stack(
    folder: str | os.PathLike[str],
    *,
    seed: int = 0,
    size_px: int = 512,
    pixel_m: float = 1.0,
    dates: int | Sequence[str] = 12,
    construction: bool = True,
    clouds: bool = True,
    mask_clouds: bool = True,
    misregistration: bool = True,
    nodata_date: bool = True,
    noise_sigma: float = 20.0,
    centre_lonlat: tuple[float, float] = (129.0039, 42.5403),
    overwrite: bool = False,
) -> StackTruth:
    """Render a synthetic stack of dated GeoTIFFs with structures built at known dates.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder to write into; created if missing.
    seed : int, default 0
        Seed of all randomness (textures, placement, built dates, shifts, clouds,
        illumination, noise). Same arguments, same files.
    size_px : int, default 512
        Rows and columns of the square scene, pixels (``size_px * pixel_m`` at
        least 512 m).
    pixel_m : float, default 1.0
        Pixel size, metres.
    dates : int or sequence of str, default 12
        The acquisition dates (ISO, increasing), or their number for
        :func:`stack_dates`. At least 4.
    construction : bool, default True
        Plant the new structures. False gives the same stack (same seasons, clouds,
        shifts, nodata) with nothing built, for false-positive rates.
    clouds : bool, default True
        Put clouds and their shadows over some structures on some dates: on the
        built date of one structure, on the date before the built date of another,
        and over a standing structure (or, without construction, over the same
        places) on a later date; about a quarter of the dates are cloudy.
    mask_clouds : bool, default True
        Write a user mask raster per cloudy date (the ``mask`` column of
        ``STACK.csv``); False leaves the clouds unmasked.
    misregistration : bool, default True
        Shift each date after the first by a sub-pixel amount (up to 0.5 px) and two
        dates by a few pixels (1.5--3 px), by Fourier shift.
    nodata_date : bool, default True
        Give one date a swath edge: the part of the scene beyond it (holding one of
        the new structures) has no data (0 in every band).
    noise_sigma : float, default 20.0
        Standard deviation of independent Gaussian sensor noise per date, DN.
    centre_lonlat : tuple of float, default (129.0039, 42.5403)
        Scene centre (longitude, latitude), degrees, EPSG:4326, in UTM zone 52N.
    overwrite : bool, default False
        Replace an existing ``STACK.csv`` / ``truth.json`` and images.

    Returns
    -------
    StackTruth
        Paths, planted structures with built/removed dates, and per-date truth.

    Raises
    ------
    InputError
        An argument out of range, fewer than 4 dates, or dates not increasing ISO dates.
    OutputExistsError
        ``STACK.csv`` exists in ``folder`` and ``overwrite`` is false.

    Notes
    -----
    Images: 4 bands (blue, green, red, NIR) uint16, EPSG:32652, nodata 0, the same
    grid on every date, tags ``ACQUISITION_DATE``, ``TIFFTAG_DATETIME``,
    ``SYNTHETIC=yes`` and ``GENERATOR``. Masks: 1 band uint8 on the same grid, 0
    clear, 1 cloud, 2 cloud shadow, grown by 2 px beyond the visible cloud. Built
    dates are drawn among the second to the last but one date, so each structure is
    absent on the first date and present on at least two. ``truth.json`` holds the
    structures (polygons in EPSG:32652 as WKT, built, removed) and the dates (shift,
    season, shares, nodata region, per-structure masked and nodata shares).

    Examples
    --------
    >>> import tempfile
    >>> truth = make_stack(tempfile.mkdtemp(), seed=1, dates=4)
    >>> len(truth.dates), sorted(set(truth.structures["class"]))
    (4, ['building', 'fence_or_wall'])
    """
    size, pixel_m, _, noise_sigma, lon, lat = validate_scene(
        size_px, pixel_m, (0.0, 0.0), noise_sigma, centre_lonlat
    )
    iso = _check_dates(dates)
    out = Path(folder)
    csv_path, truth_path = out / "STACK.csv", out / "truth.json"
    if not overwrite and (csv_path.exists() or truth_path.exists()):
        raise OutputExistsError(f"{csv_path} already exists; pass overwrite=True or another folder")
    out.mkdir(parents=True, exist_ok=True)

    extent = size * pixel_m
    cx, cy = Transformer.from_crs("EPSG:4326", f"EPSG:{EPSG}", always_xy=True).transform(lon, lat)
    left, top = round(cx - extent / 2), round(cy + extent / 2)
    transform = Affine(pixel_m, 0.0, left, 0.0, -pixel_m, top)
    grid = Grid(size=size, pixel_m=pixel_m, off=(extent - LAYOUT_M) / 2)
    tex_rng, layout_rng, plan_rng, date_rng, cloud_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)
    )
    ground, tex = gr.render_ground(grid, tex_rng)
    boxes, ring, tower = st.new_structures(layout_rng)
    buildings = [*boxes, tower]
    n = len(iso)
    built, removed = ev.plan_dates(plan_rng, n, len(buildings) + 1)
    nodata_plan = ev.plan_nodata(plan_rng, built) if nodata_date else None
    no_cover = nodata_plan[0] if nodata_plan is not None else None
    cloud_plan = ev.plan_clouds(plan_rng, n, built, avoid=no_cover) if clouds else {}
    footprints = [*buildings, ring]  # ids 1..len, as truth_footprints numbers them
    season_field = 1.0 + 0.25 * gr.smooth_noise(date_rng, (size, size), 150.0 / pixel_m)
    shifts = ev.plan_shifts(date_rng, n, misregistration=misregistration)

    records = []
    for i, date in enumerate(iso):
        img: NDArray[np.floating] = ground.copy()
        standing = [
            b
            for k, b in enumerate(buildings)
            if construction and built[k] <= i and i < (removed[k] or n)
        ]
        if construction and built[-1] <= i:
            st.paint_ring(img, grid, ring)
        img = st.paint_structures(img, grid, tex, [*st.EXISTING, *standing])
        season = 0.8 * (1.0 - math.cos(2 * math.pi * (_doy(date) - 196) / 365.25))
        img = gr.apply_season(img, (season_field * season).astype(np.float32))
        psf = _PSF_SIGMA_M / pixel_m
        img = ndimage.gaussian_filter(img, (0, psf, psf), mode="reflect")
        if shifts[i] != (0.0, 0.0):
            img = gr.fourier_shift(img, shifts[i])
        gains, offsets = gr.draw_illumination(date_rng)
        img = img * gains[:, None, None] + offsets[:, None, None]
        mask = np.zeros((size, size), dtype=np.uint8)
        for k in cloud_plan.get(i, ()):
            ev.draw_cloud(img, mask, grid, footprints[k], cloud_rng)
        if noise_sigma > 0:
            img = img + noise_rng.normal(0.0, noise_sigma, img.shape)
        dn = np.array(gr.quantise(img))
        nodata = np.zeros((size, size), dtype=bool)
        region = None
        if nodata_plan is not None and nodata_plan[0] == i:
            nodata, region = ev.swath_edge(grid, footprints[nodata_plan[1]], left=left, top=top)
            dn[:, nodata] = 0
        mask[nodata] = 0
        records.append(
            _write_date(
                out,
                date,
                dn,
                mask,
                nodata,
                region,
                seed=seed,
                shift=shifts[i],
                season=season,
                transform=transform,
                write_mask=mask_clouds and bool(mask.any()),
                footprints=footprints,
                grid=grid,
                pixel_m=pixel_m,
            )
        )

    structures = st.truth_footprints(buildings, ring, left=left, top=top, off=grid.off)
    structures["built"] = [iso[b] for b in built]
    structures["removed"] = pd.Series(
        [None if r is None else iso[r] for r in removed], index=structures.index, dtype=object
    )
    structures = structures[["id", "class", "area_m2", "length_m", "built", "removed", "geometry"]]
    if not construction:
        structures = structures.iloc[0:0]
    truth = StackTruth(
        folder=out,
        csv_path=csv_path,
        truth_path=truth_path,
        structures=structures,
        dates=tuple(records),
        transform=transform,
        crs=CRS.from_epsg(EPSG),
        seed=seed,
        masks_written=mask_clouds,
    )
    atomic_write(csv_path, partial(_write_csv, truth))
    atomic_write(truth_path, partial(_write_truth_json, truth))
    return truth


def _check_dates(dates: int | Sequence[str]) -> tuple[str, ...]:
    if isinstance(dates, int | np.integer) and not isinstance(dates, bool):
        if dates < 4:
            raise InputError(f"a stack needs at least 4 dates; got dates={dates}")
        return stack_dates(int(dates))
    if isinstance(dates, str) or not isinstance(dates, Sequence):
        raise InputError(f"dates must be a number or a sequence of ISO dates; got {dates!r}")
    iso = tuple(str(d) for d in dates)
    try:
        parsed = [dt.date.fromisoformat(d) for d in iso]
    except ValueError as exc:
        raise InputError(f"dates must be ISO YYYY-MM-DD: {exc}") from None
    if len(iso) < 4 or any(b <= a for a, b in zip(parsed, parsed[1:], strict=False)):
        raise InputError(f"dates must be at least 4 increasing ISO dates; got {list(iso)}")
    return tuple(d.isoformat() for d in parsed)


def _doy(date: str) -> int:
    return dt.date.fromisoformat(date).timetuple().tm_yday


def _write_date(
    out: Path,
    date: str,
    dn: NDArray[np.uint16],
    mask: NDArray[np.uint8],
    nodata: NDArray[np.bool_],
    region: shapely.Polygon | None,
    *,
    seed: int,
    shift: tuple[float, float],
    season: float,
    transform: Affine,
    write_mask: bool,
    footprints: list[Box],
    grid: Grid,
    pixel_m: float,
) -> DateTruth:
    """Write one date's image (and mask) and return its truth."""
    stamp = date.replace("-", "")
    scene = f"SYN{seed}-{stamp}"
    path = out / f"syn_{stamp}.tif"
    crs = CRS.from_epsg(EPSG)
    tags = {
        "ACQUISITION_DATE": date,
        "TIFFTAG_DATETIME": date.replace("-", ":") + " 00:00:00",
        "SYNTHETIC": "yes",
        "SCENE_ID": scene,
        "GENERATOR": f"borderwatch.synthetic.make_stack(seed={seed})",
    }
    common = {"crs": crs, "transform": transform}
    atomic_write(
        path,
        partial(write_raster, arr=dn, nodata=0, band_names=BAND_NAMES, tags=tags, **common),
    )
    mask_path = None
    if write_mask:
        mask_path = out / f"syn_{stamp}_mask.tif"
        atomic_write(
            mask_path,
            partial(
                write_raster,
                arr=mask[None],
                nodata=None,
                band_names=("mask: 0 clear, 1 cloud, 2 cloud shadow",),
                # Declared as borderwatch mask codes, so shadows read as shadows.
                tags={**tags, USER_MASK_TAG[0]: USER_MASK_TAG[1]},
                **common,
            ),
        )
    masked, hidden = {}, {}
    for sid, box in enumerate(footprints, start=1):
        fp = ev.footprint(grid, box, shift, ring=sid == len(footprints))
        area = max(int(fp.sum()), 1)
        m = float((mask[fp] > 0).sum()) / area
        h = float(nodata[fp].sum()) / area
        if m > 0:
            masked[sid] = round(m, 4)
        if h > 0:
            hidden[sid] = round(h, 4)
    return DateTruth(
        date=date,
        scene_id=scene,
        path=path,
        mask_path=mask_path,
        shift_px=shift,
        season=round(season, 4),
        cloud_share=round(float((mask > 0).mean()), 5),
        nodata_share=round(float(nodata.mean()), 5),
        nodata_region=region,
        masked_share=masked,
        nodata_share_by_id=hidden,
    )


def _write_csv(truth: StackTruth, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["date", "path", "credit", "scene_id", "mask"])
        for d in truth.dates:
            credit = f"Synthetic (borderwatch.synthetic.make_stack, seed {truth.seed})"
            mask = d.mask_path.name if d.mask_path is not None else ""
            w.writerow([d.date, d.path.name, credit, d.scene_id, mask])


def _write_truth_json(truth: StackTruth, path: Path) -> None:
    doc = {
        "generator": "borderwatch.synthetic.make_stack",
        "synthetic": True,
        "seed": truth.seed,
        "crs": f"EPSG:{EPSG}",
        "transform": list(truth.transform)[:6],
        "masks_written": truth.masks_written,
        "structures": [
            {
                "id": int(r["id"]),
                "class": r["class"],
                "area_m2": float(r["area_m2"]),
                "length_m": None if math.isnan(r["length_m"]) else float(r["length_m"]),
                "built": r["built"],
                "removed": r["removed"],
                "wkt": r["geometry"].wkt,
            }
            for _, r in truth.structures.iterrows()
        ],
        "dates": [
            {
                "date": d.date,
                "scene_id": d.scene_id,
                "path": d.path.name,
                "mask": d.mask_path.name if d.mask_path is not None else None,
                "shift_px": list(d.shift_px),
                "season": d.season,
                "cloud_share": d.cloud_share,
                "nodata_share": d.nodata_share,
                "nodata_region_wkt": d.nodata_region.wkt if d.nodata_region is not None else None,
                "masked_share": {str(k): v for k, v in d.masked_share.items()},
                "nodata_share_by_id": {str(k): v for k, v in d.nodata_share_by_id.items()},
            }
            for d in truth.dates
        ],
    }
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
