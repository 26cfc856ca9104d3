"""Hand-written code against the library call that replaced it (or did not).

Each sub-command times (or compares) the code borderwatch had against the library
function in one process, alternating rounds, and prints a table:

``sha256``
    A file of ``--mb`` random bytes (default 500) written to ``--tmp`` (deleted
    after): the former ``readinto`` loop over one 1 MiB buffer against
    :func:`borderwatch.products.export.sha256_file` (``hashlib.file_digest``). The file is
    read once first, so both run from the page cache.
``geojson``
    ``--n`` traced detections (default 20,000) in the analyst schema: the former
    encoder (``to_rfc7946`` dicts and ``json.dumps``) against
    :func:`borderwatch.products.export.write_geojson` (GDAL's GeoJSON driver). Also checks that
    both files parse to the same features.
``otsu``
    :func:`borderwatch.methods.thresholds.otsu_from_histogram` against
    ``skimage.filters.threshold_otsu(hist=...)`` on synthetic histograms and on the
    change scores of the LEVIR-CD and DSIFN-CD samples under ``--data`` (if there):
    how often they differ, and which one is the exact maximum (rational arithmetic).

Usage::

    PYTHONPATH=src python benchmarks/library_swaps.py sha256 --mb 500
    PYTHONPATH=src python benchmarks/library_swaps.py geojson --n 20000
    PYTHONPATH=src python benchmarks/library_swaps.py otsu --data /work/shared/data
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage
from shapely.geometry import mapping
from shapely.geometry.polygon import orient

from borderwatch.products.export import sha256_file, write_geojson


def _rounds(
    fns: dict[str, Callable[[], Any]], rounds: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds of each function, ``rounds`` times, alternating."""
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name][0].append(time.perf_counter() - w0)
            times[name][1].append(time.process_time() - c0)
    return times


def _table(
    times: dict[str, tuple[list[float], list[float]]],
    unit: Callable[[float], str] | None = None,
) -> None:
    """Medians (wall time decides; CPU time shows what a shared machine hides)."""
    base = statistics.median(next(iter(times.values()))[0])
    print(
        "| code | median wall s | median CPU s | wall runs s | vs first |"
        + (" rate |" if unit else "")
    )
    print("|---|---|---|---|---|" + ("---|" if unit else ""))
    for name, (wall, cpu) in times.items():
        m = statistics.median(wall)
        runs = ", ".join(f"{x:.3f}" for x in wall)
        rate = f" {unit(m)} |" if unit else ""
        print(
            f"| {name} | {m:.3f} | {statistics.median(cpu):.3f} | {runs} | {m / base:.2f}x |{rate}"
        )


# --- sha256 -----------------------------------------------------------------------


def old_sha256(path: str | os.PathLike[str], bufsize: int = 1 << 20) -> str:
    """Former ``sha256_file``: readinto one reused buffer, hash a memoryview of it."""
    h = hashlib.sha256()
    buf = bytearray(bufsize)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def bench_sha256(args: argparse.Namespace) -> None:
    fd, name = tempfile.mkstemp(prefix="bw-sha-", suffix=".bin", dir=args.tmp)
    try:
        rng = np.random.default_rng(0)
        with os.fdopen(fd, "wb") as fh:
            for _ in range(args.mb):
                fh.write(rng.bytes(1_000_000))
        assert old_sha256(name) == sha256_file(name)  # also warms the page cache
        times = _rounds(
            {
                "readinto loop, 1 MiB buffer (old)": lambda: old_sha256(name),
                "hashlib.file_digest (new)": lambda: sha256_file(name),
            },
            args.rounds,
        )
    finally:
        os.unlink(name)
    print(f"SHA-256 of {args.mb} MB in the page cache, {args.rounds} rounds")
    _table(times, lambda s: f"{args.mb / s:.0f} MB/s")


# --- geojson ----------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if not np.isfinite(f) else f
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.datetime64,)):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _orient_ccw(geom: shapely.Geometry) -> shapely.Geometry:
    if geom.geom_type == "Polygon":
        return orient(geom, sign=1.0)
    if geom.geom_type == "MultiPolygon":
        return shapely.MultiPolygon([orient(p, sign=1.0) for p in geom.geoms])
    return geom


def old_write_geojson(gdf: gpd.GeoDataFrame, path: Path, metadata: dict[str, Any]) -> None:
    """Former ``to_rfc7946`` + ``write_geojson`` (dicts, then the C JSON encoder)."""
    g = gdf.to_crs("EPSG:4326")
    cols = [c for c in g.columns if c != g.geometry.name]
    features = []
    for props, geom in zip(g[cols].to_dict(orient="records"), g.geometry.values, strict=True):
        geo = None
        if geom is not None:
            rounded = shapely.transform(_orient_ccw(geom), lambda xy: np.round(xy, 7))
            geo = mapping(rounded)
        features.append(
            {
                "type": "Feature",
                "properties": {k: _json_value(v) for k, v in props.items()},
                "geometry": geo,
            }
        )
    fc = {"type": "FeatureCollection", "features": features}
    fc["borderwatch"] = json.loads(json.dumps(metadata, default=_json_value))
    text = json.dumps(fc, ensure_ascii=False)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def detections(n: int) -> gpd.GeoDataFrame:
    """About ``n`` traced blobs in UTM 52N, in the analyst schema (first ``n`` kept)."""
    from borderwatch.io import Grid
    from borderwatch.objects.polygons import mask_to_objects
    from borderwatch.products.schema import analyst_table

    side = int(np.ceil(np.sqrt(n * 1.25))) * 24
    rng = np.random.default_rng(0)
    noise = ndimage.gaussian_filter(rng.random((side, side), dtype=np.float32), 2.5)
    mask = noise > np.quantile(noise, 0.93)
    score = noise * 10
    grid = Grid(CRS.from_epsg(32652), Affine(1.0, 0, 500000.0, 0, -1.0, 4720000.0), mask.shape)
    objs = mask_to_objects(mask, score, grid, attrs={"aoi_id": "bench"}).iloc[:n]
    return analyst_table(
        objs, input_hashes=["0" * 64, "1" * 64], before_date="2019-06-14", after_date="2021-09-02"
    )


def bench_geojson(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    gdf = detections(args.n)
    made = time.perf_counter() - t0
    verts = int(shapely.get_num_coordinates(gdf.geometry.values).sum())
    meta = {"tool": "borderwatch", "parameters": {"method": "cva", "threshold": 3.0}}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        old_p, new_p = Path(tmp, "old.geojson"), Path(tmp, "new.geojson")

        def new() -> None:
            write_geojson(gdf, new_p, metadata=meta, overwrite=True)

        times = _rounds(
            {
                "dicts + json.dumps (old)": lambda: old_write_geojson(gdf, old_p, meta),
                "GDAL GeoJSON driver, RFC7946=YES (new)": new,
            },
            args.rounds,
        )
        a, b = json.loads(old_p.read_text("utf-8")), json.loads(new_p.read_text("utf-8"))
        same = a["features"] == b["features"] and a["borderwatch"] == b["borderwatch"]
        sizes = old_p.stat().st_size / 1e6, new_p.stat().st_size / 1e6
    print(
        f"GeoJSON of {len(gdf)} polygons ({verts} vertices, {len(gdf.columns) - 1} columns; "
        f"made in {made:.1f} s), {args.rounds} rounds; files {sizes[0]:.1f} / {sizes[1]:.1f} MB, "
        f"same features and metadata: {same}"
    )
    _table(times)


# --- otsu -------------------------------------------------------------------------


def _sk_edge(hist: np.ndarray, lo: float, hi: float) -> float:
    """skimage's Otsu on the same histogram, as the upper edge of its last low bin."""
    from skimage.filters import threshold_otsu

    edges = np.histogram_bin_edges(np.array([lo, hi]), bins=hist.size, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    k = int(np.flatnonzero(centres == threshold_otsu(hist=(hist, centres)))[0])
    return float(edges[k + 1])


def _exact_bin(hist: np.ndarray) -> int:
    """Index of the last low bin at the exact maximum (first one on ties)."""
    h = [int(x) for x in hist]
    tot, mtot = sum(h), sum(i * c for i, c in enumerate(h))
    best: Fraction | None = None
    at, w0, m0 = -1, 0, 0
    for i in range(len(h) - 1):
        w0, m0 = w0 + h[i], m0 + i * h[i]
        w1 = tot - w0
        if w0 and w1:
            b = Fraction(w0 * w1) * (Fraction(m0, w0) - Fraction(mtot - m0, w1)) ** 2
            if best is None or b > best:
                best, at = b, i
    return at


def _compare(hist: np.ndarray, lo: float, hi: float, tally: dict[str, int]) -> None:
    from borderwatch.methods.thresholds import otsu_from_histogram

    ours, sk = otsu_from_histogram(hist, lo, hi), _sk_edge(hist, lo, hi)
    tally["n"] += 1
    if ours != sk:
        edges = np.histogram_bin_edges(np.array([lo, hi]), bins=hist.size, range=(lo, hi))
        exact = float(edges[_exact_bin(hist) + 1])
        tally["differ"] += 1
        tally["ours exact"] += ours == exact
        tally["skimage exact"] += sk == exact


def _score_hist(v: np.ndarray) -> tuple[np.ndarray, float, float]:
    v = v[np.isfinite(v)].astype(np.float64)
    lo, hi = np.percentile(v, [0.01, 99.99])
    hist, _ = np.histogram(np.clip(v, lo, hi), bins=512, range=(lo, hi))
    return hist, float(lo), float(hi)


def bench_otsu(args: argparse.Namespace) -> None:
    from borderwatch.evaluation import datasets
    from borderwatch.methods import get_method

    rng = np.random.default_rng(0)
    rows: dict[str, dict[str, int]] = {}
    tally = rows.setdefault(
        "synthetic samples of 1e3-1e6 values",
        dict.fromkeys(("n", "differ", "ours exact", "skimage exact"), 0),
    )
    for _ in range(args.trials):
        size = int(rng.choice([1000, 50_000, 1_000_000]))
        k = int(size * rng.uniform(0.01, 0.5))
        v = np.concatenate(
            [
                rng.gamma(rng.uniform(1, 5), 1, size - k),
                rng.normal(rng.uniform(3, 15), rng.uniform(0.3, 3), k),
            ]
        )
        _compare(*_score_hist(v), tally)
    for total in (10**7, 10**8, 7 * 10**8):
        tally = rows.setdefault(
            f"multinomial, {total:.0e} counts",
            dict.fromkeys(("n", "differ", "ours exact", "skimage exact"), 0),
        )
        for _ in range(200):
            p = np.abs(np.concatenate([rng.gamma(2, 1, 400), rng.normal(8, 1, 112)])) + 1e-3
            _compare(rng.multinomial(total, p / p.sum()).astype(np.int64), 0.0, 10.0, tally)
    data = Path(args.data)
    for name in ("levir_cd_samples", "levir_cd_tiles", "dsifn_cd_samples"):
        if not (data / name / "A").is_dir():
            continue
        tally = rows.setdefault(
            "LEVIR-CD / DSIFN-CD scores (cva, combined)",
            dict.fromkeys(("n", "differ", "ours exact", "skimage exact"), 0),
        )
        # the pixel size only names the pair here (fit below takes pixel_m=1.0)
        for pair in datasets.iter_png_pairs(data / name, pixel_m=0.5):
            for method in ("cva", "combined"):
                fitted = get_method(method).fit(
                    pair.before, pair.after, pair.valid, band_names=pair.band_names, pixel_m=1.0
                )
                s = fitted.score(pair.before, pair.after, pair.valid)
                _compare(*_score_hist(np.asarray(s)), tally)
    print("Otsu on 512-bin histograms: hand-written (int64/float64) vs skimage (float32 counts)")
    print("| histograms | n | differ | ours exact | skimage exact |")
    print("|---|---|---|---|---|")
    for name, t in rows.items():
        print(f"| {name} | {t['n']} | {t['differ']} | {t['ours exact']} | {t['skimage exact']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("sha256")
    p.add_argument("--mb", type=int, default=500)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tmp", default=tempfile.gettempdir())
    p = sub.add_parser("geojson")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tmp", default=tempfile.gettempdir())
    p = sub.add_parser("otsu")
    p.add_argument("--trials", type=int, default=3000)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = ap.parse_args()
    {"sha256": bench_sha256, "geojson": bench_geojson, "otsu": bench_otsu}[args.what](args)


if __name__ == "__main__":
    main()
