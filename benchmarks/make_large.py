"""Generate large synthetic before/after pairs for the throughput benchmark.

Each pair is a 4-band (blue, green, red, NIR) uint16 GeoTIFF per date, tiled
512 x 512, DEFLATE with horizontal predictor, on a 1 m EPSG:32652 grid, of
2048, 4096, 8192 or 16384 pixels square. Content comes from
``borderwatch.synthetic.make_pair``: a pool of ``--pool`` deterministic 512-pixel
scenes (textured ground, fields, roads, planted new buildings and fences, per-band
illumination change, mis-registration and sensor noise) is rendered once, and each
512-pixel tile of the large scene is one pool member under one of the 8 flips and
rotations, plus fresh sensor noise. So every tile looks like real imagery to the
compressor and the change detector, and generation is fast and memory-bounded
(one tile row of 512 x size pixels at a time, never the whole scene).

Usage::

    python benchmarks/make_large.py --size 8192 --out benchmarks/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from borderwatch.synthetic import make_pair

TILE = 512
PROFILE = {
    "driver": "GTiff",
    "dtype": "uint16",
    "count": 4,
    "crs": "EPSG:32652",
    "tiled": True,
    "blockxsize": TILE,
    "blockysize": TILE,
    "compress": "deflate",
    "predictor": 2,
    "interleave": "pixel",
    "BIGTIFF": "IF_SAFER",
    "nodata": None,
}


def _variant(img: np.ndarray, k: int) -> np.ndarray:
    out = np.rot90(img, k % 4, axes=(1, 2))
    return out[:, :, ::-1] if k >= 4 else out


def make_large(size: int, out_dir: Path, *, pool: int = 12, seed: int = 0) -> tuple[Path, Path]:
    """Write ``before_<size>.tif`` and ``after_<size>.tif`` into ``out_dir``."""
    if size % TILE:
        raise SystemExit(f"size must be a multiple of {TILE}")
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = [make_pair(seed=seed + i, size=TILE) for i in range(pool)]
    rng = np.random.default_rng(seed)
    # Whole metres, so the grid lines up with borderwatch's default UTM grid.
    transform = Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 4720000.0)
    paths = (out_dir / f"before_{size}.tif", out_dir / f"after_{size}.tif")
    profile = {**PROFILE, "width": size, "height": size, "transform": transform}
    with (
        rasterio.open(paths[0], "w", **profile) as db,
        rasterio.open(paths[1], "w", **profile) as da,
    ):
        for ds in (db, da):
            ds.descriptions = ("blue", "green", "red", "nir")
        for r in range(0, size, TILE):
            row_b = np.empty((4, TILE, size), np.uint16)
            row_a = np.empty((4, TILE, size), np.uint16)
            for c in range(0, size, TILE):
                p = pairs[int(rng.integers(pool))]
                k = int(rng.integers(8))
                for src, dst in ((p.before, row_b), (p.after, row_a)):
                    tile = _variant(src, k).astype(np.int32)
                    tile += rng.integers(-8, 9, size=tile.shape, dtype=np.int32)
                    dst[:, :, c : c + TILE] = np.clip(tile, 1, 65535)
            win = rasterio.windows.Window(0, r, size, TILE)
            db.write(row_b, window=win)
            da.write(row_a, window=win)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs="+", default=[2048, 4096, 8192])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    ap.add_argument("--pool", type=int, default=12)
    args = ap.parse_args()
    for size in args.size:
        t = time.perf_counter()
        paths = make_large(size, args.out, pool=args.pool)
        mb = sum(p.stat().st_size for p in paths) / 2**20
        took = time.perf_counter() - t
        print(f"{size}: {paths[0].name}, {paths[1].name}: {mb:.0f} MB in {took:.1f} s")


if __name__ == "__main__":
    main()
