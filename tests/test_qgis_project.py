"""The QGIS project writer without QGIS: the XML it writes, and the CLI's checks.

Real QGIS opening the project is in ``tests/test_qgis.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from borderwatch.cli import main
from borderwatch.io import open_date
from borderwatch.products.qgis_project import write_qgis_project
from borderwatch.products.schema import REVIEW_VALUES


def _qgs(path: Path) -> ET.Element:
    with zipfile.ZipFile(path) as zf:
        (name,) = zf.namelist()
        assert name == path.with_suffix(".qgs").name
        text = zf.read(name).decode("utf-8")
    return ET.fromstring(text.split("\n", 1)[1])


def _layers(root: ET.Element) -> dict[str, ET.Element]:
    return {ml.findtext("layername"): ml for ml in root.iter("maplayer")}


def _percentiles(path: Path, band: int) -> list[float]:
    with rasterio.open(path) as ds:
        values = ds.read(band, masked=True).compressed()
    return [float(v) for v in np.percentile(values, [2, 98])]


def test_project_has_styled_layers_true_colour_bands_and_relative_paths(analyst_outputs, tmp_path):
    case = tmp_path / "case"
    case.mkdir()
    gpkg = case / "detections.gpkg"
    shutil.copy(analyst_outputs.gpkg, gpkg)
    for name in ("before.tif", "after.tif"):
        shutil.copy(analyst_outputs.tiles / name, case / name)
    images = [(d, open_date(case / f"{d}.tif")) for d in ("after", "before")]
    written = write_qgis_project(case / "p.qgz", gpkg=gpkg, images=images, title="t")
    assert written == [case / "p.qgz"]
    root = _qgs(case / "p.qgz")
    assert root.find("projectCrs/spatialrefsys/authid").text == "EPSG:32652"
    tree = [n.get("name") for n in root.iter("layer-tree-layer")]
    layers = _layers(root)
    vectors = [n for n in tree if layers[n].get("type") == "vector"]
    assert vectors[:2] == ["detections", "aoi"] and tree[-2:] == ["after", "before"]
    det = layers["detections"]
    assert det.findtext("datasource") == "./detections.gpkg|layername=detections"
    assert det.findtext("provider") == "ogr" and det.get("labelsEnabled") == "1"
    # The GeoPackage's own default style: categories on class, '#ref' labels, a drop-down.
    assert det.find("renderer-v2").get("attr") == "class"
    assert det.find(".//text-style").get("fieldName") == "'#' || \"ref\""
    widget = det.find("fieldConfiguration/field[@name='review']/editWidget")
    assert widget.get("type") == "ValueMap"
    assert [o.get("value") for o in widget.iter("Option") if o.get("value")] == list(REVIEW_VALUES)
    for date in ("before", "after"):
        ml = layers[date]
        assert ml.findtext("datasource") == f"./{date}.tif" and ml.findtext("provider") == "gdal"
        r = ml.find("pipe/rasterrenderer")
        # The tiles' bands are blue, green, red, nir: true colour is 3, 2, 1.
        assert r.get("type") == "multibandcolor"
        assert (r.get("redBand"), r.get("greenBand"), r.get("blueBand")) == ("3", "2", "1")
        for tag, band in (("red", 3), ("green", 2), ("blue", 1)):
            ce = r.find(f"{tag}ContrastEnhancement")
            got = [float(ce.findtext("minValue")), float(ce.findtext("maxValue"))]
            assert got == pytest.approx(_percentiles(case / f"{date}.tif", band)), (date, tag)
    assert root.find("properties/Paths/Absolute").text == "false"


def split_bands(tile: Path, folder: Path) -> list[Path]:
    """One single-band file per band of a blue, green, red, nir tile, Sentinel-2 names."""
    folder.mkdir()
    paths = []
    with rasterio.open(tile) as ds:
        profile = {**ds.profile, "count": 1}
        for band, name in zip(range(1, 5), ("B02", "B03", "B04", "B08"), strict=True):
            path = folder / f"T52TEN_{name}.tif"
            with rasterio.open(path, "w", **profile) as out:
                out.write(ds.read(band), 1)
            paths.append(path)
    return paths


def test_a_date_of_band_files_is_stacked_red_green_blue_in_a_vrt(analyst_outputs, tmp_path):
    bands = split_bands(analyst_outputs.tiles / "after.tif", tmp_path / "bands")
    gpkg = tmp_path / "d.gpkg"
    shutil.copy(analyst_outputs.gpkg, gpkg)
    date = open_date(bands)
    assert date.band_names == ("B02", "B03", "B04", "B08")
    written = write_qgis_project(tmp_path / "p.qgz", gpkg=gpkg, images=[("after", date)], title="t")
    vrt = tmp_path / "p.after.vrt"
    assert written == [tmp_path / "p.qgz", vrt]
    ml = _layers(_qgs(tmp_path / "p.qgz"))["after"]
    assert ml.findtext("datasource") == "./p.after.vrt"
    r = ml.find("pipe/rasterrenderer")
    assert (r.get("redBand"), r.get("greenBand"), r.get("blueBand")) == ("1", "2", "3")
    sources = [e.text for e in ET.parse(vrt).iter("SourceFilename")]
    assert sources == [f"bands/T52TEN_{b}.tif" for b in ("B04", "B03", "B02")]
    with rasterio.open(vrt) as stack, rasterio.open(analyst_outputs.tiles / "after.tif") as tile:
        assert stack.count == 3 and stack.crs == tile.crs and stack.transform == tile.transform
        assert np.array_equal(stack.read(), tile.read([3, 2, 1]))


def test_redacted_project_and_vrt_name_no_folder_outside(analyst_outputs, tmp_path):
    bands = split_bands(analyst_outputs.tiles / "after.tif", tmp_path / "secret_case")
    folder = tmp_path / "packet"
    folder.mkdir()
    gpkg = folder / "d.gpkg"
    shutil.copy(analyst_outputs.gpkg, gpkg)
    before = open_date(analyst_outputs.tiles / "before.tif")
    images = [("after", open_date(bands)), ("before", before)]
    written = write_qgis_project(folder / "p.qgz", gpkg=gpkg, images=images, title="t", redact=True)
    assert written == [folder / "p.qgz", folder / "p.after.vrt"]
    layers = _layers(_qgs(folder / "p.qgz"))
    after = layers["after (image not in the packet: T52TEN_B02.tif and 3 more)"]
    assert after.findtext("datasource") == "./p.after.vrt"  # the VRT is in the folder
    assert layers["before (image not in the packet: before.tif)"].findtext("datasource") == (
        "./before.tif"
    )
    assert layers["detections"].findtext("datasource") == "./d.gpkg|layername=detections"
    vrt_text = (folder / "p.after.vrt").read_text()
    sources = [e.text for e in ET.fromstring(vrt_text).iter("SourceFilename")]
    assert sources == [f"T52TEN_{b}.tif" for b in ("B04", "B03", "B02")]
    with zipfile.ZipFile(folder / "p.qgz") as zf:
        project = zf.read("p.qgs").decode()
    for text in (project, vrt_text):
        assert "secret_case" not in text and "../" not in text and str(tmp_path) not in text
    # Once the band files are copied beside it, the stack opens.
    for band in bands:
        shutil.copy(band, folder / band.name)
    with rasterio.open(folder / "p.after.vrt") as stack:
        assert stack.count == 3


NEEDS_GPKG = "--qgis-project needs a GeoPackage output for its layers; give --out FILE.gpkg"


def _detect(tmp_path: Path, tiles: Path, *extra: str):
    args = ["detect", "--before", str(tiles / "before.tif"), "--after", str(tiles / "after.tif")]
    return CliRunner().invoke(main, [*args, *extra])


@pytest.mark.parametrize(
    ("out", "project", "message"),
    [
        ("d.geojson", "p.qgz", f"p.qgz: {NEEDS_GPKG}"),
        (None, "p.qgz", f"p.qgz: {NEEDS_GPKG}"),
        ("d.gpkg", "p.qgs", "p.qgs: a QGIS project must end in .qgz"),
    ],
)
def test_qgis_project_is_checked_before_any_work(analyst_outputs, tmp_path, out, project, message):
    extra = ["--out", str(tmp_path / out)] if out else []
    r = _detect(tmp_path, analyst_outputs.tiles, *extra, "--qgis-project", str(tmp_path / project))
    assert r.exit_code == 2
    assert r.output.strip() == f"borderwatch: error: {tmp_path}/{message}"
    assert list(tmp_path.iterdir()) == []


def test_existing_project_is_refused_before_any_work(analyst_outputs, tmp_path):
    (tmp_path / "p.qgz").write_text("mine")
    r = _detect(
        tmp_path,
        analyst_outputs.tiles,
        "--out",
        str(tmp_path / "d.gpkg"),
        "--qgis-project",
        str(tmp_path / "p.qgz"),
    )
    assert r.exit_code == 2
    assert "p.qgz: output exists; pass --overwrite" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.qgz"]
    assert (tmp_path / "p.qgz").read_text() == "mine"


def test_batch_qgis_project_needs_gpkg(analyst_outputs, tmp_path):
    tiles = analyst_outputs.tiles
    pair = ["--pair", str(tiles / "before.tif"), str(tiles / "after.tif")]
    r = CliRunner().invoke(
        main, ["batch", *pair, "--out-dir", str(tmp_path / "b"), "--qgis-project"]
    )
    assert r.exit_code == 2 and "--qgis-project shows each job's GeoPackage: add --gpkg" in r.output


@pytest.mark.slow
def test_batch_and_demo_write_a_project(analyst_outputs, tmp_path):
    tiles = analyst_outputs.tiles
    pair = ["--pair", str(tiles / "before.tif"), str(tiles / "after.tif"), "--aoi", "helong"]
    out = tmp_path / "b"
    r = CliRunner().invoke(
        main, ["batch", *pair, "--out-dir", str(out), "--gpkg", "--qgis-project"]
    )
    assert r.exit_code == 0, r.output
    (project,) = out.glob("*.qgz")
    layers = _layers(_qgs(project))
    assert (
        layers["detections"].findtext("datasource") == f"./{project.stem}.gpkg|layername=detections"
    )
    assert {"before", "after"} <= set(layers)

    demo = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--out-dir", str(demo)])
    assert r.exit_code == 0, r.output
    assert "wrote " + str(demo / "new_structures.qgz") in r.output
    manifest = json.loads((demo / "manifest.json").read_text())
    assert "new_structures.qgz" in json.dumps(manifest)
    assert os.path.getsize(demo / "new_structures.qgz") > 0


def test_band_files_of_different_pixel_sizes_line_up_in_the_stack(analyst_outputs, tmp_path):
    bands = split_bands(analyst_outputs.tiles / "after.tif", tmp_path / "bands")
    green = bands[1]  # B03 at 2 m instead of 1 m: every other pixel, same bounds
    with rasterio.open(green) as ds:
        data, profile = ds.read(1)[::2, ::2], ds.profile
        tr = ds.transform
    profile.update(
        height=data.shape[0], width=data.shape[1], transform=tr @ rasterio.Affine.scale(2)
    )
    with rasterio.open(green, "w", **profile) as out:
        out.write(data, 1)
    gpkg = tmp_path / "d.gpkg"
    shutil.copy(analyst_outputs.gpkg, gpkg)
    write_qgis_project(tmp_path / "p.qgz", gpkg=gpkg, images=[("a", open_date(bands))], title="t")
    with rasterio.open(tmp_path / "p.a.vrt") as stack:
        got = stack.read(2)
    assert got.shape == (data.shape[0] * 2, data.shape[1] * 2)
    assert np.array_equal(got, np.repeat(np.repeat(data, 2, axis=0), 2, axis=1))
