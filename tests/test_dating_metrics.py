"""Tests for the matching and scoring of benchmarks/dating.py, on hand-made layers."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Polygon, box

from borderwatch.synthetic.stack import make_stack

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "dating.py"
_SPEC = importlib.util.spec_from_file_location("dating_benchmark", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
dating = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(dating)

CRS = "EPSG:32652"
X0, Y0 = 500_000.0, 4_700_000.0


def sq(x: float, y: float, side: float) -> Polygon:
    return box(X0 + x, Y0 + y, X0 + x + side, Y0 + y + side)


def ring(x: float, y: float, side: float, strip: float) -> Polygon:
    outer = sq(x, y, side)
    return outer.difference(sq(x + strip, y + strip, side - 2 * strip))


def gdf(ids: list, geoms: list, **cols) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"id": ids, **cols}, geometry=geoms, crs=CRS)


def test_match_by_iou_by_point_and_none() -> None:
    truth = gdf([1, 2, 3, 4], [sq(0, 0, 10), sq(100, 0, 10), sq(300, 0, 10), ring(500, 0, 60, 3)])
    found = gdf(
        ["a", "b", "c", "d"],
        [
            sq(2, 0, 10),  # IoU 80 / 120 = 0.667 with truth 1
            sq(103, 3, 2),  # tiny, inside truth 2: IoU 0.04
            sq(200, 0, 10),  # nothing planted there
            ring(501, 1, 60, 3),  # the fence ring, 1 m off
        ],
    )
    m = dating.match(truth, found).set_index("truth_id")
    assert m.loc[1, "found_id"] == "a" and m.loc[1, "rule"] == "iou"
    assert m.loc[1, "iou"] == pytest.approx(80 / 120)
    assert m.loc[2, "found_id"] == "b" and m.loc[2, "rule"] == "point"
    assert pd.isna(m.loc[3, "found_id"]) and m.loc[3, "rule"] == ""
    assert m.loc[4, "found_id"] == "d" and m.loc[4, "rule"] == "iou"


def test_match_reprojects_the_output_and_handles_an_empty_one() -> None:
    truth = gdf([1], [sq(0, 0, 20)])
    found = gdf([7], [sq(1, 1, 20)]).to_crs(4326)
    m = dating.match(truth, found)
    assert m["found_id"].tolist() == [7] and m["iou"].iloc[0] > 0.8
    empty = dating.match(truth, gdf([], []))
    assert empty["found_id"].isna().all() and len(empty) == 1


def test_bracket_contains_and_days() -> None:
    assert dating.bracket_contains("2020-01-01", "2020-03-01", "2020-03-01")
    assert dating.bracket_contains("2020-01-01", "2020-03-01", "2020-02-01")
    assert not dating.bracket_contains("2020-01-01", "2020-03-01", "2020-01-01")  # absent then
    assert not dating.bracket_contains("2020-01-01", "2020-03-01", "2020-03-02")
    assert not dating.bracket_contains(None, "2020-03-01", "2020-02-01")  # no bracket
    assert not dating.bracket_contains(math.nan, "2020-03-01", "2020-02-01")
    assert dating.days("2020-01-01", "2020-03-01") == 60.0
    assert math.isnan(dating.days(None, "2020-03-01"))


def test_wrongly_absent_counts_only_absent_on_hidden_dates() -> None:
    matches = pd.DataFrame(
        {"truth_id": [1, 2, 3], "found_id": ["a", "b", None], "iou": [1, 1, 0], "rule": ""}
    )
    obs = pd.DataFrame(
        {
            "id": ["a", "a", "a", "b", "b"],
            "date": ["2020-01-01", "2020-02-01", "2020-03-01", "2020-02-01", "2020-03-01"],
            "state": ["absent", "absent", "present", "unassessable", "absent"],
        }
    )
    hidden = {1: {"2020-02-01", "2020-03-01"}, 2: {"2020-02-01"}, 3: {"2020-01-01"}}
    # a: absent on hidden 02-01 (wrong), present on hidden 03-01; b: unassessable (right)
    assert dating.wrongly_absent(matches, obs, hidden) == 1
    assert dating.wrongly_absent(matches, obs, {}) == 0


def test_false_new_counts_unmatched_new_structures() -> None:
    structures = pd.DataFrame(
        {"id": ["a", "b", "c", "d"], "status": ["new", "new", "present_throughout", "new"]}
    )
    matches = pd.DataFrame({"truth_id": [1, 2], "found_id": ["a", "c"]})
    assert dating.false_new(structures, matches, area_km2=0.5) == (2, 4.0)


def test_score_dating_and_summary() -> None:
    truth = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "built": ["2020-03-01", "2020-03-01", "2020-05-01", "2020-05-01"],
            "tight_lo": ["2020-01-01", "2020-02-01", "2020-04-01", "2020-04-01"],
            "tight_hi": ["2020-03-01", "2020-03-01", "2020-05-01", "2020-05-01"],
        }
    )
    structures = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "status": ["new", "new", "present_throughout"],
            "last_absent": ["2020-01-01", "2020-03-01", None],
            "first_present": ["2020-03-01", "2020-04-01", "2020-01-01"],
        }
    )
    matches = pd.DataFrame({"truth_id": [1, 2, 3, 4], "found_id": ["a", "b", "c", None]})
    s = dating.score_dating(truth, structures, matches).set_index("id")
    assert s["status"].tolist() == ["new", "new", "present_throughout", "missed"]
    assert s["contains"].tolist() == [True, False, False, False]  # b dated a month late
    assert s.loc[1, "width_days"] == 60 and s.loc[1, "tight"]
    assert s.loc[2, "width_days"] == 31 and not s.loc[2, "tight"]
    assert math.isnan(s.loc[3, "width_days"])
    summary = dating.summarise(s.reset_index())
    assert summary["n"] == 4 and summary["found"] == 2 and summary["contains"] == 1
    assert summary["contains_share"] == 0.25
    assert summary["median_width_days"] == pytest.approx(45.5)
    # b: seen absent on its built month, so late; nothing is dated before it was built
    assert dating.early_late(s.reset_index()) == {"early": 0, "late": 1}


def test_synthetic_truth_gives_brackets_and_hidden_dates(tmp_path: Path) -> None:
    truth = make_stack(tmp_path / "s", seed=0, dates=6)
    frame, masked, nodata = dating.synthetic_truth(truth)
    assert frame["id"].tolist() == truth.structures["id"].tolist()
    for r in frame.itertuples():
        assert r.tight_lo is None or r.tight_lo < r.built <= r.tight_hi
    assert masked and nodata  # the stack hides some structures under cloud and nodata
    for sid, dates in masked.items():
        assert all(truth.state(int(sid), d) == "unassessable" for d in dates)


def test_sn7_place_gives_each_building_its_first_month(tmp_path: Path) -> None:
    place = tmp_path / "L15-test"
    (place / "images").mkdir(parents=True)
    (place / "labels_match").mkdir()
    months = {"2018_01": [1, 2], "2018_06": [1, 2, 3], "2018_11": [1, 3, 4]}
    for month, ids in months.items():
        stem = f"global_monthly_{month}_mosaic_L15-test"
        (place / "images" / f"{stem}.tif").write_bytes(b"")
        feats = [
            {
                "type": "Feature",
                "properties": {"Id": i},
                "geometry": box(i * 100, 0, i * 100 + 20, 20).__geo_interface__,
            }
            for i in ids
        ]
        doc = {
            "type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
            "features": feats,
        }
        (place / "labels_match" / f"{stem}_Buildings.geojson").write_text(json.dumps(doc))
    rows, buildings = dating.sn7_place(place)
    assert [r["date"] for r in rows] == ["2018-01-01", "2018-06-01", "2018-11-01"]
    assert all(r["mask"] == "" and "SpaceNet 7" in r["credit"] for r in rows)
    b = buildings.set_index("id")
    assert b["built"].to_dict() == {
        1: "2018-01-01",
        2: "2018-01-01",
        3: "2018-06-01",
        4: "2018-11-01",
    }
    assert b["new"].to_dict() == {1: False, 2: False, 3: True, 4: True}
    assert buildings.crs.to_epsg() == 3857


def test_report_renders_every_section() -> None:
    scen = {
        "n": 9,
        "found": 9,
        "contains": 9,
        "contains_share": 1.0,
        "median_width_days": 61.0,
        "median_tight_days": 61.0,
        "tight_share": 1.0,
        "absent_on_masked": 0,
        "absent_on_nodata": 0,
        "false_new": 1,
        "area_km2": 0.25,
        "false_new_per_km2": 4.0,
        "runs": [{"seed": 0, "status": "ok"}, {"seed": 1, "status": "exit 2: boom"}],
    }
    res = {"synthetic": {"masked clouds": scen}, "sn7": {"skipped": "x absent"}}
    text = dating.report(res, command="python benchmarks/dating.py")
    assert "| masked clouds | 9 | 9 | 9 (1.00) | 61 | 61 | 1.00 | 0 | 0 | 1 / 0.25 = 4.00 |" in text
    assert "not scored: masked clouds seed 1: exit 2: boom" in text
    assert "Not run: x absent." in text and "Not run (--skip-speed)." in text
