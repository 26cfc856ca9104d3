"""Review round trip: import from a GeoPackage, keep per place, re-apply by id or IoU, labels."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from conftest import REAL_HOME, REAL_XDG_DATA_HOME
from shapely.geometry import box

import borderwatch.products.write
from borderwatch.cli import main
from borderwatch.errors import InputError
from borderwatch.products.review import (
    apply_reviews,
    default_store_dir,
    export_labels,
    import_reviews,
    load_reviews,
    place_key,
    store_path,
)


def _geom(blob: bytes | None):
    """Decode a GeoPackage geometry blob (header + WKB)."""
    if blob is None:
        return None
    flags = blob[3]
    envelope = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(flags >> 1) & 7]
    return shapely.from_wkb(bytes(blob[8 + envelope :]))


def _with_st_functions(con: sqlite3.Connection) -> None:
    """The SpatiaLite-style functions GDAL's R-tree triggers call, as GDAL provides them."""
    con.create_function("ST_IsEmpty", 1, lambda b: None if b is None else int(_geom(b).is_empty))
    for i, name in enumerate(("ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY")):
        con.create_function(name, 1, lambda b, i=i: None if b is None else _geom(b).bounds[i])


def edit_reviews(gpkg: Path, values: dict[str, tuple[str, str]]) -> None:
    """Set review/note by id, as a GIS would (SQL UPDATE on the layer table)."""
    con = sqlite3.connect(gpkg)
    _with_st_functions(con)
    with con:
        for det_id, (review, note) in values.items():
            n = con.execute(
                "UPDATE detections SET review=?, note=? WHERE id=?", (review, note, det_id)
            ).rowcount
            assert n == 1
    con.close()


@pytest.fixture
def edited(analyst_outputs, tmp_path):
    gpkg = tmp_path / "edited.gpkg"
    shutil.copy(analyst_outputs.gpkg, gpkg)
    ids = analyst_outputs.products.detections["id"].tolist()
    assert len(ids) >= 2
    edit_reviews(gpkg, {ids[0]: ("confirmed", "new barracks"), ids[1]: ("rejected", "")})
    return gpkg, ids


@pytest.mark.slow
def test_import_then_rerun_reapplies_by_id(analyst_outputs, edited, tmp_path, sample_detect_args):
    gpkg, ids = edited
    store = tmp_path / "store"
    result = import_reviews(gpkg, store_dir=store)
    assert (result.place, result.read, result.reviewed, result.stored) == ("helong", len(ids), 2, 2)
    assert result.store == store_path(store, "helong") and result.store.exists()
    stored = load_reviews(store, "helong")
    assert dict(zip(stored["id"], stored["review"], strict=True)) == {
        ids[0]: "confirmed",
        ids[1]: "rejected",
    }
    # The CLI rerun over the same place writes the reviews back into the new layer.
    out = tmp_path / "rerun.gpkg"
    r = CliRunner().invoke(
        main,
        sample_detect_args(out, "--reviews", str(store)),
    )
    assert r.exit_code == 0, r.output
    assert "re-applied 2 stored reviews for helong" in r.output
    # The terminal's figures are the reviewed table's: the rejected one is in no total.
    areas = analyst_outputs.products.detections.set_index("id")["area_m2"]
    kept = areas.sum() - areas[ids[1]]
    assert (
        f"{len(ids)} detections (1 confirmed, 1 rejected), {kept:,.0f} m2 excluding rejected, "
        "in helong (2019-06-14 -> 2021-09-02,"
    ) in r.output
    det = pyogrio.read_dataframe(out, layer="detections").set_index("id")
    assert det.loc[ids[0], "review"] == "confirmed" and det.loc[ids[0], "note"] == "new barracks"
    assert det.loc[ids[1], "review"] == "rejected"
    assert (det.drop(index=ids[:2])["review"] == "unreviewed").all()


def _files(root: Path) -> dict[Path, int]:
    """Files under ``root`` and their modification times (empty when it is absent)."""
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_cli_default_store_is_the_tests_home_not_the_users(
    edited, isolated_home, tmp_path, sample_detect_args, monkeypatch
):
    """Without --reviews, `review import` and `detect` use the per-test home only."""
    real_data = REAL_XDG_DATA_HOME or ""
    real_data_home = Path(real_data) if os.path.isabs(real_data) else REAL_HOME / ".local" / "share"
    real_store = real_data_home / "borderwatch" / "reviews"
    real_before = _files(real_store)
    store = isolated_home / "xdg-data" / "borderwatch" / "reviews"
    assert default_store_dir() == store
    assert store != real_store and not store.is_relative_to(real_store)

    gpkg, ids = edited
    r = CliRunner().invoke(main, ["review", "import", str(gpkg)])
    assert r.exit_code == 0, r.output
    assert (store / "helong.reviews.geojson").is_file()
    assert len(load_reviews(store, "helong")) == 2

    read_from: list[Path] = []
    load = borderwatch.products.write.load_reviews

    def spy(store_dir, place):
        read_from.append(Path(store_dir))
        return load(store_dir, place)

    monkeypatch.setattr(borderwatch.products.write, "load_reviews", spy)
    out = tmp_path / "rerun.gpkg"
    r = CliRunner().invoke(main, sample_detect_args(out))
    assert r.exit_code == 0, r.output
    assert read_from == [store]
    assert "re-applied 2 stored reviews for helong" in r.output
    assert _files(real_store) == real_before


@pytest.mark.parametrize(
    ("xdg", "expected"),
    [
        ("{tmp}/data", "{tmp}/data/borderwatch/reviews"),
        (None, "{home}/.local/share/borderwatch/reviews"),
        ("", "{home}/.local/share/borderwatch/reviews"),
        ("relative/data", "{home}/.local/share/borderwatch/reviews"),  # XDG: ignored
    ],
)
def test_default_store_dir_honours_xdg_data_home(
    xdg, expected, isolated_home, tmp_path, monkeypatch
):
    fill = {"tmp": str(tmp_path), "home": str(isolated_home)}
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME")
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg.format(**fill))
    assert default_store_dir() == Path(expected.format(**fill))


def test_reimport_updates_and_clears(edited, tmp_path):
    gpkg, ids = edited
    store = tmp_path / "store"
    import_reviews(gpkg, store_dir=store)
    edit_reviews(
        gpkg, {ids[0]: ("needs_higher_resolution", "check 0.5 m"), ids[1]: ("unreviewed", "")}
    )
    result = import_reviews(gpkg, store_dir=store)
    assert result.stored == 1
    stored = load_reviews(store, "helong")
    assert stored[["id", "review", "note"]].values.tolist() == [
        [ids[0], "needs_higher_resolution", "check 0.5 m"]
    ]


@pytest.mark.slow
def test_clearing_every_review_leaves_the_place_usable(edited, tmp_path, sample_detect_args):
    gpkg, ids = edited
    store = tmp_path / "store"
    import_reviews(gpkg, store_dir=store)
    edit_reviews(gpkg, {ids[0]: ("unreviewed", ""), ids[1]: ("unreviewed", "")})
    result = import_reviews(gpkg, store_dir=store)
    assert (result.reviewed, result.stored) == (0, 0)
    assert not result.store.exists()  # no empty store left behind
    assert len(load_reviews(store, "helong")) == 0
    # A store written empty by an older version is read as no reviews, not refused.
    result.store.parent.mkdir(parents=True, exist_ok=True)
    result.store.write_text('{"type": "FeatureCollection", "features": []}', "utf-8")
    assert len(load_reviews(store, "helong")) == 0
    assert import_reviews(gpkg, store_dir=store).stored == 0
    r = CliRunner().invoke(
        main, sample_detect_args(tmp_path / "again.gpkg", "--reviews", str(store))
    )
    assert r.exit_code == 0, r.output


def squares(offset: float, crs: str = "EPSG:32652") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": ["new-a", "new-b"], "review": ["unreviewed"] * 2, "note": ["", ""]},
        geometry=[box(offset, 0, offset + 10, 10), box(100, 100, 110, 110)],
        crs=crs,
    )


def stored_review(tmp_path: Path) -> gpd.GeoDataFrame:
    old = squares(0.0).iloc[[0]].assign(id="old-a", review="confirmed", note="wall")
    old = old.to_crs("EPSG:4326")
    return old.assign(**{"class": "other", "reviewed_utc": "", "source": "t"})


@pytest.mark.parametrize(
    ("shift_m", "iou", "applied"),
    [(2.0, 80 / 120, True), (3.3, 67 / 133, True), (3.4, 66 / 134, False), (6.0, 40 / 160, False)],
)
def test_overlap_match_needs_iou_half(tmp_path, shift_m, iou, applied):
    reviews = stored_review(tmp_path)
    a, b = box(0, 0, 10, 10), box(shift_m, 0, shift_m + 10, 10)
    assert a.intersection(b).area / a.union(b).area == pytest.approx(iou)
    det, n = apply_reviews(squares(shift_m), reviews)
    assert n == int(applied)
    expected = "confirmed" if applied else "unreviewed"
    assert det["review"].tolist() == [expected, "unreviewed"]
    assert det["note"].tolist() == (["wall", ""] if applied else ["", ""])


def test_one_review_goes_to_one_object():
    reviews = stored_review(Path("."))
    dets = squares(0.0)
    dets.loc[1, "geometry"] = box(0.5, 0, 10.5, 10)  # both overlap the reviewed square
    out, n = apply_reviews(dets, reviews)
    assert n == 1 and out["review"].tolist() == ["confirmed", "unreviewed"]


def test_place_without_aoi_is_the_rounded_footprint():
    foot = gpd.GeoDataFrame(
        {"role": ["before"]}, geometry=[box(129.001, 42.531, 129.009, 42.549)], crs="EPSG:4326"
    )
    assert place_key({"footprints": foot}) == "bbox_129.00_42.53_129.01_42.55"
    with pytest.raises(InputError, match="cannot tell the place"):
        place_key({})


def test_export_labels(edited, tmp_path):
    gpkg, ids = edited
    store = tmp_path / "store"
    edit_reviews(gpkg, {ids[-1]: ("needs_higher_resolution", "")} if len(ids) > 2 else {})
    import_reviews(gpkg, store_dir=store)
    out = tmp_path / "labels.geojson"
    r = CliRunner().invoke(main, ["review", "export-labels", str(out), "--reviews", str(store)])
    assert r.exit_code == 0, r.output
    assert "wrote 2 labels for helong" in r.output
    fc = json.loads(out.read_text())
    labels = {f["properties"]["id"]: f["properties"]["label"] for f in fc["features"]}
    assert labels == {ids[0]: 1, ids[1]: 0}
    assert fc["borderwatch"]["format"] == "borderwatch-labels/1"
    with pytest.raises(InputError, match="no reviews stored"):
        export_labels(tmp_path / "x.geojson", store_dir=store, place="nowhere")


def test_cli_import_and_bad_values(edited, tmp_path):
    gpkg, ids = edited
    store = tmp_path / "store"
    r = CliRunner().invoke(main, ["review", "import", str(gpkg), "--reviews", str(store)])
    assert r.exit_code == 0, r.output
    assert f"2 of {len(ids)} detections reviewed" in r.output
    edit_reviews(gpkg, {ids[0]: ("maybe", "")})
    bad = CliRunner().invoke(main, ["review", "import", str(gpkg), "--reviews", str(store)])
    assert bad.exit_code == 2
    assert "unknown review value(s) 'maybe'" in bad.output and "Traceback" not in bad.output
    assert len(load_reviews(store, "helong")) == 2  # the store was left as it was
    not_gpkg = tmp_path / "x.gpkg"
    not_gpkg.write_text("hello")
    bad2 = CliRunner().invoke(main, ["review", "import", str(not_gpkg), "--reviews", str(store)])
    assert bad2.exit_code == 2 and "not a readable GeoPackage" in bad2.output
