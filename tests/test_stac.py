"""STAC items and catalogs as dates, and COGs read over http(s) with windowed requests only.

Every server here is a loopback ``http.server`` the test starts on 127.0.0.1 (a free
port) and stops; no test reaches beyond it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
import rasterio.windows
from click.testing import CliRunner
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping

from borderwatch.cli import main
from borderwatch.errors import InputError
from borderwatch.io import open_date
from borderwatch.remote import WINDOW_SHA256_OF, window_strips
from borderwatch.sample_data import sample_tiles_dir
from borderwatch.stac import item_date, select_dates, stack_from_stac

# --------------------------------------------------------------------------- STAC


def _band_files(folder: Path, source: Path) -> dict[str, Path]:
    """The sample tile's four bands as single-band files with names that say nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    with rasterio.open(source) as src:
        profile = {**src.profile, "count": 1}
        for i, role in enumerate(("blue", "green", "red", "nir"), start=1):
            path = folder / f"file{i}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(src.read(i), 1)
            out[role] = path
    return out


def _footprint(path: Path) -> tuple[float, float, float, float]:
    with rasterio.open(path) as src:
        return transform_bounds(src.crs, "EPSG:4326", *src.bounds)


def _item(
    item_id: str, when: str, bounds: tuple[float, ...], bands: dict[str, Path], **kw: object
) -> pystac.Item:
    item = pystac.Item(
        id=item_id,
        geometry=mapping(box(*bounds)),
        bbox=list(bounds),
        datetime=dt.datetime.fromisoformat(when),
        properties=dict(kw),
    )
    s2 = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}
    for role, path in bands.items():
        item.add_asset(
            f"asset_{s2[role]}",  # keys that are not role names: eo:bands must decide
            pystac.Asset(
                href=str(path),
                media_type=pystac.MediaType.COG,
                roles=["data"],
                extra_fields={"eo:bands": [{"name": s2[role], "common_name": role}]},
            ),
        )
    item.add_asset(
        "thumbnail", pystac.Asset(href="thumb.png", media_type="image/png", roles=["thumbnail"])
    )
    return item


def _write_item(item: pystac.Item, path: Path) -> Path:
    """The item as a file with asset hrefs relative to it."""
    doc = item.to_dict(include_self_link=False)
    for asset in doc["assets"].values():
        if Path(asset["href"]).is_absolute():
            asset["href"] = os.path.relpath(asset["href"], path.parent)
    path.write_text(json.dumps(doc), "utf-8")
    return path


@pytest.fixture
def stac_dir(tmp_path: Path) -> dict[str, object]:
    tiles = sample_tiles_dir()
    before = _band_files(tmp_path / "data" / "before", tiles / "before.tif")
    after = _band_files(tmp_path / "data" / "after", tiles / "after.tif")
    bounds = _footprint(tiles / "before.tif")
    far = (bounds[0] + 3, bounds[1], bounds[2] + 3, bounds[3])  # 3 degrees east
    items = [
        _item(
            "S2_before",
            "2019-06-14T02:30:00+00:00",
            bounds,
            before,
            **{"sci:citation": "Contains modified Copernicus Sentinel data 2019"},
        ),
        _item(
            "S2_after",
            "2021-09-02T02:30:00+00:00",
            bounds,
            after,
            providers=[
                {"name": "Host", "roles": ["host"]},
                {"name": "ESA", "roles": ["licensor", "producer"]},
            ],
            license="proprietary",
        ),
        _item("S2_late", "2023-01-10T02:30:00+00:00", bounds, after),
        _item("S2_elsewhere", "2020-06-01T02:30:00+00:00", far, after),
    ]
    folder = tmp_path / "items"
    folder.mkdir()
    paths = [_write_item(it, folder / f"{it.id}.json") for it in items]
    return {"items": items, "paths": paths, "bounds": bounds, "before": before, "root": tmp_path}


def test_item_file_is_a_date(stac_dir):
    path = stac_dir["paths"][0]
    found = item_date(path)
    assert found.date == "2019-06-14" and found.scene_id == "S2_before"
    assert found.credit == "Contains modified Copernicus Sentinel data 2019"
    # Relative hrefs resolved against the item's folder; bands in blue, green, red, nir order.
    assert found.paths == tuple(str(p.resolve()) for p in stac_dir["before"].values())
    assert found.hrefs[0] == "../data/before/file1.tif"
    source = open_date(str(path))
    assert source.band_names == ("blue", "green", "red", "nir")
    assert source.paths == found.paths
    assert source.imagery.date == "2019-06-14" and source.imagery.scene_id == "S2_before"
    assert source.imagery.date_source == "STAC item S2_before.json datetime"
    assert source.imagery.credit == "Contains modified Copernicus Sentinel data 2019"
    # The providers' licensor/producer (not the host) give the credit, with the licence.
    assert item_date(stac_dir["paths"][1]).credit == "ESA (licence proprietary)"


def test_item_list_selected_by_dates_and_area(stac_dir, tmp_path):
    listing = tmp_path / "search.json"
    listing.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [json.loads(p.read_text()) for p in stac_dir["paths"]],
            }
        )
    )
    aoi = box(*stac_dir["bounds"]).buffer(-0.001)
    got = select_dates(listing, aoi_lonlat=aoi, start="2019-01-01", end="2022-12-31")
    # S2_late is after --to; S2_elsewhere is in range but 3 degrees away.
    assert [(d.date, d.scene_id) for d in got] == [
        ("2019-06-14", "S2_before"),
        ("2021-09-02", "S2_after"),
    ]
    assert got[1].paths[2].endswith("after/file3.tif")  # red, relative to the listing
    every = select_dates(listing, aoi_lonlat=None, start="2019-01-01", end="2023-12-31")
    assert [d.scene_id for d in every] == ["S2_before", "S2_elsewhere", "S2_after", "S2_late"]
    with pytest.raises(InputError, match=r"4 items: 3 outside the dates, 1 not over the area"):
        select_dates(listing, aoi_lonlat=aoi, start="2020-01-01", end="2020-12-31")
    with pytest.raises(InputError, match="not one item"):
        item_date(listing)


def test_catalog_with_relative_hrefs_and_masks(stac_dir, tmp_path):
    catalog = pystac.Catalog(id="border", description="test catalog")
    collection = pystac.Collection(
        id="s2",
        description="Sentinel-2",
        extent=pystac.Extent(
            pystac.SpatialExtent([list(stac_dir["bounds"])]),
            pystac.TemporalExtent([[None, None]]),
        ),
        license="CC-BY-SA-3.0-IGO",
        providers=[pystac.Provider("Copernicus", roles=[pystac.ProviderRole.LICENSOR])],
    )
    catalog.add_child(collection)
    for item in stac_dir["items"][:3]:
        item = item.clone()
        item.properties.pop("sci:citation", None)
        item.properties.pop("providers", None)
        scl = stac_dir["root"] / "data" / f"{item.id}_SCL.tif"
        scl.write_bytes(b"")  # only its href is taken here
        item.add_asset("SCL", pystac.Asset(href=str(scl), media_type=pystac.MediaType.COG))
        collection.add_item(item)
    root = tmp_path / "catalog"
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    doc = json.loads((root / "s2" / "S2_after" / "S2_after.json").read_text())
    assert not Path(doc["assets"]["asset_B04"]["href"]).is_absolute()
    aoi = box(*stac_dir["bounds"])
    entries = stack_from_stac(
        str(root / "catalog.json"), aoi_lonlat=aoi, start="2021-01-01", end="2023-12-31"
    )
    assert [(e.date, e.scene_id) for e in entries] == [
        ("2021-09-02", "S2_after"),
        ("2023-01-10", "S2_late"),
    ]
    first = entries[0]
    assert first.paths[3] == str((stac_dir["root"] / "data" / "after" / "file4.tif").resolve())
    assert first.mask == str((stac_dir["root"] / "data" / "S2_after_SCL.tif").resolve())
    assert first.credit == "Copernicus (licence CC-BY-SA-3.0-IGO)"  # from the collection


def test_detect_on_stac_items(stac_dir, tmp_path):
    before, after = stac_dir["paths"][:2]
    out = tmp_path / "out.geojson"
    r = CliRunner().invoke(
        main, ["detect", "--before", str(before), "--after", str(after), "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    meta = json.loads(out.read_text())["borderwatch"]["inputs"]
    assert meta["before"]["scene_id"] == "S2_before" and meta["after"]["date"] == "2021-09-02"
    names = [f["name"] for f in meta["after"]["files"]]
    assert names == ["file1.tif", "file2.tif", "file3.tif", "file4.tif"]
    assert meta["after"]["stac_item"] == str(after.resolve())


# ----------------------------------------------------------------- COG over HTTP


def _requests(log_file: Path) -> list[tuple[str, str, int, int]]:
    lines = log_file.read_text().splitlines() if log_file.exists() else []
    return [tuple(json.loads(line)) for line in lines]


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path, Callable[[], list]]]:
    """A loopback HTTP server with Range support over a folder; stopped at the end.

    It runs in its own process (``tests/range_server.py``), as a real server would:
    in this process its thread would wait on the GIL that GDAL's opening holds. The
    third value returns the requests so far: ``(method, path, first byte, length)``.
    """
    root = tmp_path / "www"
    root.mkdir()
    log_file = tmp_path / "requests.jsonl"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    server = [sys.executable, str(Path(__file__).with_name("range_server.py"))]
    with subprocess.Popen(
        [*server, str(root), str(log_file)],
        stdout=subprocess.PIPE,
        text=True,
        env={**env, "NO_PROXY": "127.0.0.1"},
    ) as proc:
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            yield f"http://127.0.0.1:{port}", root, partial(_requests, log_file)
        finally:
            proc.terminate()


def _big_cog(source: Path, dest: Path, *, reps: int = 4) -> None:
    """The sample tile repeated ``reps`` x ``reps`` times as a tiled COG with overviews.

    The copy at the upper left keeps the sample tile's georeferencing, so an AOI over
    the sample tile is 1 / reps**2 of the file.
    """
    with rasterio.open(source) as src:
        data = np.tile(src.read(), (1, reps, reps))
        tags, desc = src.tags(), src.descriptions
        profile = {**src.profile, "width": data.shape[2], "height": data.shape[1]}
    profile.update(driver="COG", blocksize=256, compress="deflate", overviews="auto")
    for key in ("blockxsize", "blockysize", "tiled", "interleave"):
        profile.pop(key, None)
    with rasterio.open(dest, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
        dst.descriptions = desc


def _detections(path: Path) -> list[tuple[str, float]]:
    gdf = gpd.read_file(path)
    return sorted((g.wkt, round(a, 6)) for g, a in zip(gdf.geometry, gdf.area_m2, strict=True))


def test_remote_cogs_read_with_windowed_requests_only(http_root, tmp_path):
    base, root, log = http_root
    tiles = sample_tiles_dir()
    for name in ("before", "after"):
        _big_cog(tiles / f"{name}.tif", root / f"{name}.tif")
    with rasterio.open(root / "before.tif") as src:
        assert src.overviews(1) and src.block_shapes[0] == (256, 256)
        inner = rasterio.windows.Window(64, 64, 384, 384)  # inside the first copy
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.window_bounds(inner))
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(
        json.dumps({"type": "Feature", "properties": {}, "geometry": mapping(box(*bounds))})
    )
    runs = {}
    for how, (b, a) in {
        "local": (root / "before.tif", root / "after.tif"),
        "remote": (f"{base}/before.tif", f"{base}/after.tif"),
    }.items():
        out = tmp_path / f"{how}.geojson"
        args = ["detect", "--before", str(b), "--after", str(a), "--aoi", str(aoi)]
        if how == "remote":  # the evidence packet's chips are read over HTTP too
            args += ["--evidence", str(tmp_path / "packet")]
        r = CliRunner().invoke(main, [*args, "--out", str(out)])
        assert r.exit_code == 0, r.output
        runs[how] = out
    # Same detections from the same files, read locally or over HTTP.
    local, remote = _detections(runs["local"]), _detections(runs["remote"])
    assert remote == local and len(local) > 0
    # Only byte ranges were asked for, and far fewer bytes than the files hold.
    sizes = {f"/{n}.tif": (root / f"{n}.tif").stat().st_size for n in ("before", "after")}
    requests = log()
    gets = [r for r in requests if r[0] == "GET"]
    assert gets and all(path in sizes for _, path, _, _ in requests)
    assert all(length < sizes[path] for _, path, _, length in gets)
    for path, size in sizes.items():
        fetched = sum(length for _, p, _, length in gets if p == path)
        assert fetched < 0.25 * size, (path, fetched, size)
    # Provenance: the URLs, the window read and its pixel hash, the server's ETag and size.
    meta = json.loads(runs["remote"].read_text())["borderwatch"]["inputs"]
    rec = meta["before"]["files"][0]
    assert rec["url"] == f"{base}/before.tif" and rec["bytes"] == sizes["/before.tif"]
    assert rec["etag"] and rec["last_modified"] and rec["sha256_of"] == WINDOW_SHA256_OF
    col, row, width, height = rec["window"]
    assert width < 1024 and height < 1024  # a part of the 2048 px file
    digest = hashlib.sha256()
    with rasterio.open(root / "before.tif") as src:
        for strip in window_strips(rasterio.windows.Window(col, row, width, height), 256):
            digest.update(src.read(window=strip).tobytes())
    assert rec["sha256"] == digest.hexdigest()
    assert meta["before"]["date"] == "2019-06-14"  # read from the remote file's tags
    manifest = json.loads((tmp_path / "packet" / "manifest.json").read_text())
    inputs = {f["path"]: f for f in manifest["files"] if f["role"] == "input"}
    assert set(inputs) == {f"{base}/before.tif", f"{base}/after.tif"}
    assert inputs[f"{base}/before.tif"]["sha256"] == rec["sha256"]
    assert inputs[f"{base}/after.tif"]["sha256_of"] == WINDOW_SHA256_OF
    assert inputs[f"{base}/after.tif"]["bytes"] == sizes["/after.tif"]
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "packet")])
    assert r.exit_code == 0, r.output
    assert "not checked: 2 remote inputs" in r.output


def test_missing_remote_file_is_one_line(http_root, tmp_path):
    base, root, log = http_root
    tiles = sample_tiles_dir()
    r = CliRunner().invoke(
        main,
        ["detect", "--before", f"{base}/missing.tif", "--after", str(tiles / "after.tif")],
    )
    assert r.exit_code == 2, r.output
    line = r.output.strip().splitlines()[-1]
    assert f"{base}/missing.tif: not a readable raster" in line
    assert log() and all(path == "/missing.tif" for _, path, _, _ in log())


def test_local_paths_leave_gdal_settings_alone():
    from rasterio.env import getenv, hasenv

    from borderwatch.remote import REMOTE_GDAL_CONFIG, remote_env

    with remote_env([["a.tif", "b.tif"], "c.json"]):
        assert not hasenv() or "GDAL_DISABLE_READDIR_ON_OPEN" not in getenv()
    with remote_env([["a.tif"], "https://example.org/b.tif"]):  # nothing is fetched here
        assert {k: getenv()[k] for k in REMOTE_GDAL_CONFIG} == REMOTE_GDAL_CONFIG
