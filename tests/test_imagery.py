"""Imagery metadata: dates, credits, scene ids from options, tags, product names, headers.

Real names come from ../shared/data: OSCD Beihai (Sentinel-2 tile files
``T49QCD_20161209T031122_B02.tif``; the dataset's ``dates.txt`` says 20161209 and
20180309) and the WHU Landsat Taizhou pair (ENVI ``2000TM``/``2003TM`` whose header band
names quote the scenes' ``L71119038_03820000317_MTL.txt`` and
``L71119038_03820030206_MTL.txt``: Landsat 7, path 119, row 38, 2000-03-17 and
2003-02-06). Tags and headers of the other cases are written by the tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from click.testing import CliRunner

from borderwatch.cli import main
from borderwatch.engine import make_plan
from borderwatch.errors import InputError
from borderwatch.imagery import (
    COPERNICUS_CREDIT,
    USGS_CREDIT,
    Imagery,
    ImageryOptions,
    check_pair,
    file_imagery,
    parse_date,
)
from borderwatch.io import open_date
from borderwatch.jobs import read_jobs
from borderwatch.sample_data import sample_tiles_dir

OSCD = Path("oscd") / "Onera Satellite Change Detection dataset - Images" / "beihai"
TAIZHOU = Path("landsat_cd_whu") / "Taizhou"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


# --------------------------------------------------------------------------- real names
@pytest.mark.realdata
def test_oscd_sentinel2_tile_names(shared_data):
    before = open_date(shared_data / OSCD / "imgs_1").imagery
    after = open_date(shared_data / OSCD / "imgs_2").imagery
    assert before == Imagery(
        date="2016-12-09",
        date_source="Sentinel-2 tile name",
        credit="Contains modified Copernicus Sentinel data 2016",
        credit_source="Sentinel-2 tile name",
        scene_id="T49QCD_20161209T031122",
        synthetic=False,
    )
    assert (after.date, after.scene_id) == ("2018-03-09", "T49QCD_20180309T030539")
    assert after.credit == "Contains modified Copernicus Sentinel data 2018"
    dates = (shared_data / OSCD / "dates.txt").read_text()
    assert "20161209" in dates and "20180309" in dates  # the dataset's own record agrees


@pytest.mark.realdata
def test_landsat_envi_header_band_names(shared_data):
    before = open_date(shared_data / TAIZHOU / "2000TM").imagery
    after = open_date(shared_data / TAIZHOU / "2003TM").imagery
    assert (before.date, before.scene_id) == ("2000-03-17", "L71119038_03820000317")
    assert (after.date, after.scene_id) == ("2003-02-06", "L71119038_03820030206")
    assert before.credit == after.credit == USGS_CREDIT
    # The file name "2000TM" is not a credit, and the header's ENVI "description" date
    # (Wed Apr 25 2012, when the file was resized) is not the acquisition.
    assert "2000TM" not in before.credit and before.date_source == "Landsat scene id"


def test_envi_acquisition_time(tmp_path, make_raster):
    import rasterio

    path = tmp_path / "scene.img"
    with rasterio.open(
        path,
        "w",
        driver="ENVI",
        width=4,
        height=4,
        count=1,
        dtype="uint8",
        crs="EPSG:32652",
        transform=rasterio.Affine(1, 0, 500000, 0, -1, 4710000),
    ) as dst:
        dst.write(np.ones((1, 4, 4), np.uint8))
    hdr = path.with_suffix(".hdr")
    hdr.write_text(hdr.read_text() + "acquisition time = 2020-01-15T02:03:04.000Z\n")
    meta = open_date(path).imagery
    assert (meta.date, meta.date_source, meta.credit) == ("2020-01-15", "ENVI header", None)


# --------------------------------------------------------------------------- product names
@pytest.mark.parametrize(
    ("path", "date", "scene_id", "credit"),
    [
        (
            "S2A_MSIL2A_20200115T030101_N0213_R032_T49QCD_20200115T060000.SAFE/GRANULE/"
            "L2A_T49QCD_A023785_20200115T030101/IMG_DATA/R10m/T49QCD_20200115T030101_B04_10m.jp2",
            "2020-01-15",
            "S2A_MSIL2A_20200115T030101_N0213_R032_T49QCD_20200115T060000",
            COPERNICUS_CREDIT.format(year=2020),
        ),
        (
            "T52TFN_20190614T021609_B02.jp2",
            "2019-06-14",
            "T52TFN_20190614T021609",
            COPERNICUS_CREDIT.format(year=2019),
        ),
        (
            "LC08_L2SP_118038_20200115_20200823_02_T1_SR_B4.TIF",
            "2020-01-15",
            "LC08_L2SP_118038_20200115_20200823_02_T1",
            USGS_CREDIT,
        ),
        ("LC81180382020015LGN00_B4.TIF", "2020-01-15", "LC81180382020015LGN00", USGS_CREDIT),
    ],
)
def test_product_names(path, date, scene_id, credit):
    meta = file_imagery(path, {})
    assert (meta.date, meta.scene_id, meta.credit) == (date, scene_id, credit)


def test_tags_written_by_the_test(make_raster):
    img = np.ones((3, 3), np.uint16)
    p = make_raster(
        "LC08_L2SP_118038_20200115_20200823_02_T1_SR_B4.tif",
        img,
        tags={
            "ACQUISITION_DATE": "2020-01-16",
            "TIFFTAG_COPYRIGHT": "Maxar Technologies 2020",
            "SCENE_ID": "10300100A1B2C300",
        },
    )
    meta = open_date(p).imagery
    # Tags beat the product name; a copyright tag gets its sign.
    assert meta == Imagery(
        "2020-01-16",
        "tiff tag ACQUISITION_DATE",
        "© Maxar Technologies 2020",
        "tiff tag TIFFTAG_COPYRIGHT",
        "10300100A1B2C300",
        False,
    )
    q = make_raster("q.tif", img, tags={"TIFFTAG_DATETIME": "2021:09:02 10:11:12"})
    assert (open_date(q).date, open_date(q).imagery.date_source) == (
        "2021-09-02",
        "tiff tag TIFFTAG_DATETIME",
    )
    # A date in the file name is taken before the file-writing time.
    r = make_raster("helong_2021-05-03.tif", img, tags={"TIFFTAG_DATETIME": "2022:01:01 00:00:00"})
    assert (open_date(r).date, open_date(r).imagery.date_source) == ("2021-05-03", "file name")


def test_nothing_known_stays_unknown_never_the_file_name(make_raster):
    meta = open_date(make_raster("2000TM_B01.tif", np.ones((3, 3), np.uint8))).imagery
    assert meta == Imagery()


def test_sample_tiles_are_synthetic():
    meta = open_date(sample_tiles_dir() / "before.tif").imagery
    assert meta.synthetic and meta.date == "2019-06-14"
    assert meta.credit is not None and meta.credit.startswith("synthetic imagery")


@pytest.mark.parametrize("bad", ["2020-13-01", "2019-02-30", "15/01/2020", "2020-1-5", ""])
def test_parse_date_refuses(bad):
    with pytest.raises(InputError, match="--before-date: .* is not a date; write YYYY-MM-DD"):
        parse_date(bad, where="--before-date")


# --------------------------------------------------------------------------- refusals
def test_check_pair_rules(make_raster, tmp_path):
    img = np.arange(9, dtype=np.uint16).reshape(3, 3)
    a = open_date(make_raster("a.tif", img, tags={"ACQUISITION_DATE": "2020-01-01"}))
    b = open_date(make_raster("b.tif", img + 1, tags={"ACQUISITION_DATE": "2021-01-01"}))
    check_pair(a, b)  # in order
    with pytest.raises(InputError, match=r"before date 2021-01-01 \(.*b.tif.*later than after"):
        check_pair(b, a)
    check_pair(b, a, allow_reversed=True)
    same_day = open_date(make_raster("c.tif", img + 2, tags={"ACQUISITION_DATE": "2020-01-01"}))
    check_pair(a, same_day)  # two images of one day are allowed
    shutil.copy(a.paths[0], tmp_path / "copy.tif")
    twin = open_date(tmp_path / "copy.tif")
    with pytest.raises(InputError, match="same SHA-256 content"):
        check_pair(a, twin)
    with pytest.raises(InputError, match="are the same files"):
        check_pair(a, a)


def test_make_plan_applies_options_before_the_check():
    tiles = sample_tiles_dir()
    opts = {"before": ImageryOptions(date="2021-09-02"), "after": ImageryOptions(date="2021-09-02")}
    plan = make_plan(tiles / "before.tif", tiles / "after.tif", aoi="helong", imagery=opts)
    assert plan.source.before.date == plan.source.before.imagery.date == "2021-09-02"
    assert plan.source.before.imagery.date_source == "option"
    assert plan.attrs["before_date"] == "2021-09-02"


def detect_pair(before: Path, after: Path, out: Path, *extra: str):
    return run("detect", "--before", str(before), "--after", str(after), "--out", str(out), *extra)


def test_cli_refuses_swapped_and_identical_inputs(tmp_path):
    tiles = sample_tiles_dir()
    b, a, out = tiles / "before.tif", tiles / "after.tif", tmp_path / "d.gpkg"
    swapped = detect_pair(a, b, out)
    assert swapped.exit_code == 2
    line = swapped.output.strip().splitlines()[-1]
    assert "before date 2021-09-02" in line and "after date 2019-06-14" in line
    assert "after.tif" in line and "before.tif" in line and "--allow-reversed" in line
    shutil.copy(b, tmp_path / "copy.tif")
    same = detect_pair(b, tmp_path / "copy.tif", out)
    assert same.exit_code == 2 and "same SHA-256 content" in same.output
    by_option = detect_pair(b, a, out, "--before-date", "2022-01-01")
    assert by_option.exit_code == 2 and "before date 2022-01-01" in by_option.output
    bad = detect_pair(b, a, out, "--after-date", "2021-02-30")
    assert bad.exit_code == 2 and "'2021-02-30' is not a date" in bad.output
    assert not out.exists()


@pytest.mark.slow
def test_cli_options_override_and_allow_reversed(tmp_path):
    tiles = sample_tiles_dir()
    packet = tmp_path / "packet"
    r = run(
        "detect",
        *("--before", str(tiles / "after.tif"), "--after", str(tiles / "before.tif")),
        *("--aoi", "helong", "--out", str(tmp_path / "d.gpkg"), "--evidence", str(packet)),
        "--allow-reversed",
        *("--credit", "© CNES 2014, Distribution Airbus DS"),
        *("--before-credit", "Maxar Technologies via Google Earth"),
        *("--after-scene-id", "DS_SPOT6_201406"),
        *("--after-date", "2014-06-30"),
    )
    assert r.exit_code == 0, r.output
    doc = json.loads((packet / "manifest.json").read_text())
    before, after = doc["scenes"]["before"], doc["scenes"]["after"]
    assert (before["credit"], before["credit_source"]) == (
        "Maxar Technologies via Google Earth",
        "option",
    )
    assert after["credit"] == "© CNES 2014, Distribution Airbus DS"
    assert (after["date"], after["date_source"], after["scene_id"]) == (
        "2014-06-30",
        "option",
        "DS_SPOT6_201406",
    )
    assert (before["date"], before["date_source"]) == ("2021-09-02", "tiff tag ACQUISITION_DATE")
    assert before["synthetic"] is True and before["scene_id"] is None
    html = (packet / "report.html").read_text("utf-8")
    assert "Imagery (before): Maxar Technologies via Google Earth<br>" in html
    assert "Imagery (after): © CNES 2014, Distribution Airbus DS" in html
    assert (
        '2014-06-30 <span class="muted">(date from option)</span>; scene id: DS_SPOT6_201406'
        in html
    )


# --------------------------------------------------------------------------- batch
def test_batch_csv_columns(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "aoi,before,after,before_date,after_date,credit,after_credit,after_scene_id,allow_reversed\n"
        "helong,b.tif,a.tif,2019-06-14,,© A 2019,© B 2021,X1,yes\n"
        ",b.tif,a.tif,,,,,,\n"
    )
    first, second = read_jobs(jobs)
    csv = "job file"  # where the report says the values came from
    assert first.imagery["before"] == ImageryOptions("2019-06-14", "© A 2019", None, csv)
    assert first.imagery["after"] == ImageryOptions(None, "© B 2021", "X1", csv)
    assert first.allow_reversed is True
    assert second.imagery["before"] == ImageryOptions(source=csv)
    assert second.allow_reversed is False
    jobs.write_text("aoi,before,after,after_date\n,b.tif,a.tif,2021-31-01\n")
    with pytest.raises(InputError, match=r"jobs.csv:2: after_date: '2021-31-01' is not a date"):
        read_jobs(jobs)
    jobs.write_text("aoi,before,after,allow_reversed\n,b.tif,a.tif,maybe\n")
    with pytest.raises(InputError, match="jobs.csv:2: allow_reversed 'maybe' is neither"):
        read_jobs(jobs)


@pytest.mark.slow
def test_batch_swapped_job_fails_alone_and_allowed_one_runs(tmp_path):
    tiles = sample_tiles_dir()
    b, a = tiles / "before.tif", tiles / "after.tif"
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "aoi,before,after,before_credit,after_scene_id,allow_reversed\n"
        f",{a},{b},,,\n"
        f"helong,{a},{b},© Test 2021,S-1,yes\n"
    )
    out = tmp_path / "out"
    r = run("batch", "--jobs", str(jobs), "--out-dir", str(out))
    assert r.exit_code == 1, r.output
    summary = json.loads((out / "batch.json").read_text())
    first, second = summary["jobs"]
    assert first["status"] == "error" and "later than after date" in first["reason"]
    assert second["status"] == "ok"
    meta = json.loads((out / second["report"]).read_text())["borderwatch"]
    assert meta["inputs"]["before"]["credit"] == "© Test 2021"
    assert meta["inputs"]["after"]["scene_id"] == "S-1"
    # --allow-reversed on the command line lets the first one run as well.
    r = run("batch", "--jobs", str(jobs), "--out-dir", str(out), "--overwrite", "--allow-reversed")
    assert r.exit_code == 0, r.output


# --------------------------------------------------------------------------- demo
@pytest.mark.slow
def test_demo_outputs_say_synthetic(tmp_path):
    out = tmp_path / "demo"
    r = run("demo", "--out-dir", str(out))
    assert r.exit_code == 0, r.output
    html = (out / "report.html").read_text("utf-8")
    assert "<title>SYNTHETIC: Possible new construction: Helong" in html
    assert 'id="synthetic" role="alert">SYNTHETIC IMAGERY: NOT A REAL FINDING' in html
    assert "()" not in html
    gpkg = out / "new_structures.gpkg"
    for layer in ("detections", "aoi", "footprints"):
        info = pyogrio.read_info(gpkg, layer=layer)
        assert info["layer_metadata"]["SYNTHETIC"] == "yes"
        assert info["layer_metadata"]["DESCRIPTION"].startswith("SYNTHETIC:")
    aoi = pyogrio.read_dataframe(gpkg, layer="aoi")
    assert aoi.loc[0, "confidence"] == "town"
    assert "not the facility or fence itself" in aoi.loc[0, "caveat"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["aoi"]["confidence"], manifest["scenes"]["after"]["synthetic"]) == (
        "town",
        True,
    )
    assert manifest["scenes"]["before"]["date_source"] == "tiff tag ACQUISITION_DATE"
    geo = json.loads((out / "new_structures.geojson").read_text())
    assert geo["borderwatch"]["synthetic"] is True
    assert geo["borderwatch"]["inputs"]["after"]["synthetic"] is True
