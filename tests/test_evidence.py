"""Evidence packet: chips (PNG and GeoTIFF), identical stretch, manifest, verify."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from PIL import Image
from shapely.geometry import box

from borderwatch.cli import main
from borderwatch.errors import InputError, OutputExistsError
from borderwatch.io import Grid
from borderwatch.products.cartography import SYNTHETIC_BANNER, fit_text, nice_length
from borderwatch.products.evidence import (
    _write_png,
    chip_window,
    render_chip,
    scene_info,
    stretch_limits,
    true_colour_bands,
    write_evidence,
)
from borderwatch.products.export import sha256_file
from borderwatch.products.manifest import verify_packet
from borderwatch.products.schema import where

YELLOW = np.array([255, 255, 0])


def test_packet_layout(analyst_outputs):
    packet = analyst_outputs.products.evidence
    det = analyst_outputs.products.detections
    assert [c.id for c in packet.chips] == det["id"].tolist()
    names = sorted(p.relative_to(packet.folder).as_posix() for p in packet.folder.rglob("*"))
    expected = {"chips", "custody.jsonl", "manifest.json", "manifest.json.tsq", "overview.png"}
    expected.add("report.html")
    for det_id in det["id"]:
        expected |= {f"chips/{det_id}_{r}.{e}" for r in ("before", "after") for e in ("png", "tif")}
    assert names == sorted(expected)


def test_chip_geotiffs_hold_the_grid_values(analyst_outputs):
    run = analyst_outputs.run
    packet = analyst_outputs.products.evidence
    for chip, geom in zip(packet.chips, analyst_outputs.products.detections.geometry, strict=True):
        win = chip_window(geom, run.grid)
        rows, cols = win.toslices()
        for role, rel in (("before", chip.before_tif), ("after", chip.after_tif)):
            with rasterio.open(packet.folder / rel) as src:
                assert src.crs == run.grid.crs
                assert src.transform == run.grid.window_grid(win).transform
                assert src.descriptions == ("blue", "green", "red", "nir")
                tags = src.tags()
                assert tags["ACQUISITION_DATE"] == getattr(run, role).source.date
                # Marked as generated, credited, and placed, so no copy passes for a real scene.
                info = scene_info(getattr(run, role))
                assert (tags["SYNTHETIC"], tags["CREDIT"]) == ("yes", info["credit"])
                assert tags.get("SCENE_ID") == info["scene_id"]
                centre = where(gpd.GeoSeries([box(*src.bounds).centroid], crs=src.crs)).iloc[0]
                lat, lon = float(tags["CENTRE_LAT"]), float(tags["CENTRE_LON"])
                assert (lat, lon) == pytest.approx((centre["lat"], centre["lon"]), abs=1e-6)
                want = run.read_window(win)[0 if role == "before" else 1]
                np.testing.assert_array_equal(src.read(), want)
            # The chip window contains the whole polygon.
            assert box(*src.bounds).contains(geom)


def test_chip_pngs_outline_and_captions(analyst_outputs):
    packet = analyst_outputs.products.evidence
    chip = packet.chips[0]
    geom = analyst_outputs.products.detections.geometry.iloc[0]
    win = chip_window(geom, analyst_outputs.run.grid)
    before = np.asarray(Image.open(packet.folder / chip.before_png).convert("RGB"))
    after = np.asarray(Image.open(packet.folder / chip.after_png).convert("RGB"))
    # Small chips are enlarged by a whole factor to about 320 px (at least 240 px wide);
    # a red SYNTHETIC banner (the sample tiles), 26 px of title, 6 + 16 px a caption line:
    # the credit (wrapped, whole) and the centroid's two lines.
    desc = Image.open(packet.folder / chip.before_png).text["Description"].split("\n")
    captions = desc[2:-2]  # banner, title, captions, scale bar, north arrow
    credit = f"source: {scene_info(analyst_outputs.run.before)['credit']}"
    # Lines break at spaces, or inside a word too wide for one: no character is lost.
    assert "".join(captions[:-2]).replace(" ", "") == credit.replace(" ", "")
    assert len(captions) >= 3
    foot = 6 + 16 * len(captions)
    k = max(1, 320 // max(win.height, win.width))
    band = before.shape[0] - (win.height * k + 26 + foot)
    assert (
        before.shape
        == after.shape
        == (win.height * k + 26 + foot + band, max(win.width * k, 240), 3)
    )
    assert band > 20
    for img in (before, after):
        assert (img == YELLOW).all(axis=-1).sum() > 50  # polygon outline drawn
        assert (img[:band] == (200, 0, 0)).all(axis=-1).mean() > 0.6  # red banner
        title = img[band : band + 26]
        assert (title == 255).all(axis=-1).mean() > 0.8  # white caption band with the date
        assert (
            Image.open(packet.folder / chip.after_png)
            .text["Description"]
            .startswith(SYNTHETIC_BANNER)
        )
    body = slice(band + 26, -foot)
    # The after chip shows new bright construction inside the outline: it is brighter there.
    assert after[body].mean() > before[body].mean()


def test_same_stretch_for_both_dates():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 100, (3, 20, 20))
    b = a * 2.0
    lims = stretch_limits(a, b)
    pooled = np.concatenate([a.reshape(3, -1), b.reshape(3, -1)], axis=1)
    np.testing.assert_allclose(lims, np.percentile(pooled, [2, 98], axis=1).T)
    a_nan = a.copy()
    a_nan[:, :5] = np.nan
    assert np.isfinite(stretch_limits(a_nan, b)).all()
    flat = stretch_limits(np.ones((3, 4, 4)))
    assert (flat[:, 1] > flat[:, 0]).all()


def test_render_identical_data_gives_identical_image_area():
    rgb = np.random.default_rng(1).integers(0, 255, (3, 40, 40), dtype=np.uint8)
    ring = [np.array([[5.0, 5.0], [30.0, 5.0], [30.0, 30.0], [5.0, 5.0]])]
    one = np.asarray(render_chip(rgb, outline_px=ring, pixel_m=1.0, title="A", source="s").image)
    two = np.asarray(render_chip(rgb, outline_px=ring, pixel_m=1.0, title="B", source="s").image)
    np.testing.assert_array_equal(one[26:], two[26:])
    assert not np.array_equal(one[:26], two[:26])


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("blue", "green", "red", "nir"), (2, 1, 0)),
        (("B01", "B02", "B03", "B04", "B08"), (3, 2, 1)),
        (("Red", "Green", "Blue"), (0, 1, 2)),
        (("band1", "band2", "band3", "band4"), (2, 1, 0)),
        (("pan",), (0, 0, 0)),
    ],
)
def test_true_colour_bands(names, expected):
    assert true_colour_bands(names) == expected


def test_a_long_credit_is_wrapped_whole_onto_the_chip(tmp_path):
    rgb = np.full((3, 40, 40), 128, np.uint8)
    credit = (
        "source: synthetic imagery (borderwatch.synthetic.make_pair(seed=0)), "
        "© Example Imaging Corporation 2021, licensed CC BY-NC 4.0 for research use only"
    )
    img = render_chip(rgb, outline_px=[], pixel_m=1.0, title="AFTER", source=credit, notes=["x"])
    path = tmp_path / "chip.png"
    _write_png(img, path, overwrite=False)
    lines = Image.open(path).text["Description"].split("\n")[1:-3]  # title .. notes
    assert "".join(lines).replace(" ", "") == credit.replace(" ", "") and 2 <= len(lines) <= 4
    assert not any("…" in line for line in lines)
    # Every line is drawn: the caption band grows by 16 px a line.
    assert img.image.height == 40 * 8 + 26 + 6 + 16 * (len(lines) + 1)


def test_wrap_splits_a_word_wider_than_the_line_without_losing_a_character():
    from PIL import ImageDraw, ImageFont

    from borderwatch.products.cartography import wrap_text

    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    font = ImageFont.load_default(size=12)
    word = "borderwatch.synthetic.make_pair(seed=0)" * 3
    lines = wrap_text(draw, f"source: {word} end", font, 100)
    assert "".join(lines).replace(" ", "") == f"source:{word}end"
    assert all(draw.textlength(line, font=font) <= 100 for line in lines) and len(lines) > 3


def test_long_captions_are_cut_to_the_chip_width():
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    font = ImageFont.load_default(size=12)
    text = "source: " + "T49QCD_20161209T031122_B02.tif " * 8
    cut = fit_text(draw, text, font, 200)
    assert cut.endswith("…") and text.startswith(cut[:-1])
    assert draw.textlength(cut, font=font) <= 200 and len(cut) > 20
    assert fit_text(draw, "short", font, 200) == "short"


@pytest.mark.parametrize(("max_m", "nice"), [(23.0, 20.0), (7.9, 5.0), (130.0, 100.0), (1.5, 1.0)])
def test_scale_bar_lengths(max_m, nice):
    assert nice_length(max_m) == nice


def test_chip_window_is_padded_and_clipped():
    from affine import Affine
    from rasterio.crs import CRS

    grid = Grid(CRS.from_epsg(32652), Affine(1, 0, 0, 0, -1, 100), (100, 100))
    win = chip_window(box(45, 45, 55, 55), grid)
    assert (win.width, win.height) == (48, 48)
    corner = chip_window(box(0, 90, 4, 100), grid)
    assert (corner.col_off, corner.row_off) == (0, 0)


def test_manifest_records_hashes_versions_and_times(analyst_outputs):
    packet = analyst_outputs.products.evidence
    doc = json.loads(packet.manifest.read_text())
    files = {f["path"]: f for f in doc["files"]}
    tiles = analyst_outputs.tiles
    for name in ("before.tif", "after.tif"):
        entry = files[str((tiles / name).resolve())]
        assert entry["role"] == "input" and entry["sha256"] == sha256_file(tiles / name)
    assert files["report.html"]["sha256"] == sha256_file(packet.report)
    assert str(analyst_outputs.gpkg.resolve()) in files  # outputs outside the packet too
    for chip in packet.chips:
        assert chip.after_png in files and chip.before_tif in files
    assert {"borderwatch", "rasterio", "gdal", "numpy", "scikit-image"} <= set(doc["versions"])
    assert doc["host"]["name"]
    assert doc["started_utc"].endswith("+00:00") and doc["finished_utc"] >= doc["started_utc"]
    assert doc["scenes"]["before"]["date"] == "2019-06-14"
    assert doc["scenes"]["after"]["date"] == "2021-09-02"
    assert doc["parameters"]["method"] == "combined" and doc["parameters"]["min_area_m2"] == 20.0
    assert doc["aoi"]["id"] == "helong"


def test_verify_detects_changed_missing_and_extra(analyst_outputs, tmp_path):
    packet = tmp_path / "packet"
    shutil.copytree(analyst_outputs.evidence, packet)
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", str(packet)])
    assert ok.exit_code == 0 and "ok:" in ok.output
    assert verify_packet(packet).ok
    chip = analyst_outputs.products.evidence.chips[0]
    png = packet / chip.after_png
    png.write_bytes(png.read_bytes() + b"\0")
    (packet / chip.before_tif).unlink()
    (packet / "notes.txt").write_text("added later")
    result = verify_packet(packet)
    assert result.changed == (chip.after_png,)
    assert result.missing == (chip.before_tif,)
    assert result.extra == ("notes.txt",)
    bad = runner.invoke(main, ["verify", str(packet)])
    assert bad.exit_code == 1
    assert f"changed: {chip.after_png}" in bad.output
    assert f"missing: {chip.before_tif}" in bad.output and "extra: notes.txt" in bad.output
    with pytest.raises(InputError, match="cannot read the manifest"):
        verify_packet(tmp_path)


def test_refuses_non_empty_folder(analyst_outputs, tmp_path):
    (tmp_path / "something.txt").write_text("x")
    with pytest.raises(OutputExistsError):
        write_evidence(
            analyst_outputs.run, tmp_path, detections=analyst_outputs.products.detections
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["something.txt"]


@pytest.mark.slow
def test_demo_writes_everything_and_verifies(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--out-dir", str(out)])
    assert r.exit_code == 0, r.output
    for name in (
        "new_structures.gpkg",
        "new_structures.geojson",
        "new_structures.qml",
        "report.html",
        "manifest.json",
        "overview.png",
    ):
        assert (out / name).is_file(), name
    assert verify_packet(out).ok


@pytest.mark.slow
@pytest.mark.realdata
def test_oscd_sentinel2_packet(tmp_path, shared_data):
    """Real Sentinel-2 bands (OSCD Beihai, Daudt et al. 2018): chips from B04/B03/B02."""
    city = shared_data / "oscd" / "Onera Satellite Change Detection dataset - Images" / "beihai"
    args = [
        "detect",
        "--out",
        str(tmp_path / "beihai.gpkg"),
        "--min-area",
        "5000",
        "--evidence",
        str(tmp_path / "packet"),
        "--reviews",
        str(tmp_path / "store"),
    ]
    for b in ("B02", "B03", "B04", "B08"):
        args += [
            "--before",
            str(next((city / "imgs_1").glob(f"*_{b}.tif"))),
            "--after",
            str(next((city / "imgs_2").glob(f"*_{b}.tif"))),
        ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    det = pyogrio.read_dataframe(tmp_path / "beihai.gpkg", layer="detections")
    assert len(det) > 0 and det.crs.to_epsg() == 32649  # UTM 49N, the city's zone
    assert (det["area_m2"] >= 5000).all()
    doc = json.loads((tmp_path / "packet" / "manifest.json").read_text())
    assert doc["scenes"]["before"]["date"] == "2016-12-09"
    assert sum(f["role"] == "input" for f in doc["files"]) == 8
    chips = sorted((tmp_path / "packet" / "chips").glob("*_after.tif"))
    assert len(chips) == len(det)
    with rasterio.open(chips[0]) as src:
        assert src.descriptions == ("B02", "B03", "B04", "B08")
        assert src.res[0] == pytest.approx(10.0, rel=0.05)  # the EPSG:4326 10 m bands in UTM
    assert verify_packet(tmp_path / "packet").ok


@pytest.mark.slow
def test_inputs_are_hashed_once_per_run(tmp_path, monkeypatch):
    """Object ids, the GeoJSON provenance and the manifest share one hash per input."""
    import sys

    import borderwatch.products.export as export
    from borderwatch.engine import detect
    from borderwatch.products.write import write_products
    from borderwatch.sample_data import sample_tiles_dir

    counted: list[str] = []
    real = export.sha256_file

    def counting(path, **kwargs):
        counted.append(str(path))
        return real(path, **kwargs)

    # Every module that holds the hash function, wherever it imported it from.
    for name, module in list(sys.modules.items()):
        if name.startswith("borderwatch") and getattr(module, "sha256_file", None) is real:
            monkeypatch.setattr(module, "sha256_file", counting)
    tiles = sample_tiles_dir()
    run = detect(tiles / "before.tif", tiles / "after.tif", aoi="helong")
    outs = (tmp_path / "d.gpkg", tmp_path / "d.geojson")
    products = write_products(run, outputs=outs, evidence=tmp_path / "evidence")
    inputs_hashed = [p for p in counted if Path(p).parent == tiles]
    assert sorted(inputs_hashed) == sorted(str(tiles / n) for n in ("before.tif", "after.tif"))
    manifest = json.loads((products.evidence.folder / "manifest.json").read_text())
    inputs = {Path(f["path"]).name: f["sha256"] for f in manifest["files"] if f["role"] == "input"}
    assert inputs == {n: real(tiles / n) for n in ("before.tif", "after.tif")}


@pytest.mark.parametrize("size", [0, 1, 1 << 18, 3 * (1 << 18) + 5])
def test_sha256_file_over_several_buffers(tmp_path, size):
    # hashlib.file_digest reads through a 256 KiB buffer: every multiple and remainder
    # of it must give hashlib's digest of the whole bytes.
    import hashlib

    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("data", "digest"),
    [  # FIPS 180-2 / NIST test vectors
        (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    ],
)
def test_sha256_file_known_answers(tmp_path, data, digest):
    path = tmp_path / "v.bin"
    path.write_bytes(data)
    assert sha256_file(path) == digest
