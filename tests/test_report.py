"""report.html from the packaged jinja2 template: known rows, escaping, packaging."""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
from rasterio.crs import CRS
from shapely.geometry import Point

from borderwatch.aoi import get_aoi
from borderwatch.products.evidence import Chip
from borderwatch.products.report import TEMPLATE, render_report, review_figures, write_report

EVIL = "<script>alert('x')</script> & \"q\""
EVIL_HTML = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;q&#34;"


def fake_run(aoi: str | None = "Helong", params: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        aoi=None if aoi is None else dataclasses.replace(get_aoi("helong"), name=aoi),
        change=SimpleNamespace(
            params={"threshold": "ki", "min_area_m2": 20.0} if params is None else params,
            method="combined",
            threshold=1.1793,
        ),
        grid=SimpleNamespace(
            res=(0.5, 0.5),
            crs=CRS.from_epsg(32652),
            bounds=(500000.0, 4708000.0, 500200.0, 4708200.0),
        ),
    )


def table(rows: list[tuple]) -> gpd.GeoDataFrame:
    cols = ("id", "class", "area_m2", "length_m", "score", "confidence", "review", "note")
    data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    return gpd.GeoDataFrame(data, geometry=[Point(0, 0)] * len(rows), crs=32652)


def assert_contains(text: str, *parts: str) -> None:
    """Assert that every part occurs in ``text``, naming the ones that do not."""
    missing = [p for p in parts if p not in text]
    assert not missing, missing


RECORD = {
    "scenes": {
        "before": {"date": "2019-06-14", "files": ["b.tif"], "scene_ids": [], "credit": "ESA"},
        "after": {"date": "2021-09-02", "files": ["a.tif"], "scene_ids": ["S2B_1"]},
    },
    "parameters": {"threshold_value": 1.17934, "align": True, "detect_params": {"x": 1}},
}


def test_template_is_package_data():
    # The wheel packages src/borderwatch, so the template travels with the code.
    path = importlib.resources.files("borderwatch") / "templates" / TEMPLATE
    assert path.is_file() and "{{ aoi }}" in path.read_text("utf-8")


def test_report_known_rows_and_sections(tmp_path):
    det = table(
        [
            ("bw-1", "building", 1234567.4, 12.34, 2.345, 0.981, "unreviewed", ""),
            ("bw-2", "other", np.nan, np.inf, np.float32(3.25), None, "unreviewed", None),
        ]
    )
    det["lat"], det["lon"], det["mgrs"] = [42.5403, np.nan], [129.0039, np.nan], ["52TEN1", ""]
    chips = [Chip("bw-2", "c/2b.png", "c/2a.png", "c/2b.tif", "c/2a.tif")]
    html = render_report(
        run=fake_run(), detections=det, chips=chips, overview="overview.png", record=RECORD
    )
    assert html.startswith('<!DOCTYPE html>\n<html lang="en">') and html.endswith("</html>\n")
    assert "<title>Possible new construction: Helong</title>" in html
    assert "<h1>Possible new construction: Helong</h1>" in html
    assert "SYNTHETIC" not in html  # real imagery: no banner
    assert "2 detections, none reviewed; 1,234,567 m² in total, unconfirmed &middot;" in html
    assert (
        '<tr><td class="num">1</td><td><a href="#bw-1">bw-1</a></td><td>probable building</td>'
        '<td class="num">1,234,567</td><td class="num">12.3</td><td class="num">42.540300</td>'
        '<td class="num">129.003900</td><td>52TEN1</td><td class="num">2.35</td>'
        '<td class="num">0.98</td><td>unreviewed</td><td></td></tr>'
        '<tr><td class="num">2</td><td><a href="#bw-2">bw-2</a></td>'
        "<td>change of unknown kind</td>"
        '<td class="num"></td><td class="num"></td><td class="num"></td><td class="num"></td>'
        '<td></td><td class="num">3.25</td>'
        '<td class="num"></td><td>unreviewed</td><td></td></tr></table>'
    ) in html
    assert "No detection has been reviewed yet" in html
    assert "&ldquo;probable building&rdquo; means the change is consistent with a new building" in (
        html
    )
    assert (
        '<h3 id="bw-2">#2 bw-2</h3><div class="pair"><figure><img src="c/2b.png" '
        'alt="before bw-2"><figcaption>before, 2019-06-14 &middot; GeoTIFF: '
        '<code>c/2b.tif</code></figcaption></figure><figure><img src="c/2a.png" '
        'alt="after bw-2"><figcaption>after, 2021-09-02 &middot; GeoTIFF: '
        "<code>c/2a.tif</code></figcaption></figure></div>\n<h2>Method and limits</h2>\n"
    ) in html
    assert (
        "one 0.5&nbsp;m grid in EPSG:32652" in html and "<b>1.18</b> (threshold rule: ki)" in html
    )
    assert (
        "<tr><th>before</th><td>2019-06-14</td><td>b.tif</td><td>unknown</td>"
        "<td>ESA</td></tr><tr><th>after</th><td>2021-09-02</td><td>a.tif</td>"
        "<td>S2B_1</td><td>unknown</td></tr></table>"
    ) in html
    assert (
        "<h3>Parameters</h3><table><tr><th>threshold_value</th><td>1.179</td></tr>"
        "<tr><th>align</th><td>True</td></tr></table>"
    ) in html
    out = write_report(
        tmp_path / "report.html",
        run=fake_run(),
        detections=det,
        chips=chips,
        overview="overview.png",
        record=RECORD,
    )
    written = out.read_text("utf-8")
    assert written.split("report written")[0] == html.split("report written")[0]


def test_site_header_coordinates_confidence_and_caveat():
    # Helong's catalogue point is 42.5403 N, 129.0039 E (aoi/README.md); its search circle
    # is centred on it, so the centre comes back to 6 decimals; MGRS of that point.
    html = render_report(
        run=fake_run(), detections=table([]), chips=[], overview="o.png", record=RECORD
    )
    assert_contains(
        html,
        "<tr><th>site</th><td>Helong</td></tr>",
        "<td>42.540300, 129.003900 (WGS 84, EPSG:4326)</td>",
        "<tr><th>MGRS</th><td>52TEN0032009767</td></tr>",
        "<tr><th>AOI location confidence</th><td>town</td></tr>",
        "a town centre from public gazetteers, good to about 1-2 km",
        "Imagery (before): ESA<br>Imagery (after): unknown",
        "<tr><th>pixel size</th><td>0.5&nbsp;m (EPSG:32652)</td></tr>",
    )


def test_unknown_values_say_unknown_and_no_empty_brackets():
    record = {"scenes": {"before": {"files": ["b.tif"]}, "after": {"files": ["a.tif"]}}}
    det = table([("bw-1", "building", 10.0, 1.0, 1.0, 1.0, "unreviewed", "")])
    chips = [Chip("bw-1", "b.png", "a.png", "b.tif", "a.tif")]
    html = render_report(
        run=fake_run(), detections=det, chips=chips, overview="o.png", record=record
    )
    assert "()" not in html and "( )" not in html
    assert_contains(
        html,
        "Before date unknown &rarr; after date unknown",
        "After image, date unknown;",
        "<figcaption>before, date unknown &middot;",
        "Imagery (before): unknown<br>Imagery (after): unknown",
        "<td>date unknown; scene id: unknown</td>",
    )


def test_synthetic_imagery_banner_and_title():
    record = {
        "scenes": {
            "before": {"date": "2019-06-14", "credit": "synthetic imagery", "synthetic": True},
            "after": {"date": "2021-09-02", "credit": "synthetic imagery", "synthetic": True},
        }
    }
    html = render_report(
        run=fake_run(), detections=table([]), chips=[], overview="o.png", record=record
    )
    assert "<title>SYNTHETIC: Possible new construction: Helong</title>" in html
    body = html.split("<body>\n", 1)[1]
    assert body.startswith('<div class="synthetic" id="synthetic" role="alert">SYNTHETIC IMAGERY')
    assert "<h1>SYNTHETIC: Possible new construction: Helong</h1>" in body


def test_review_figures_exclude_rejected_and_count_confirmed():
    reviews = ["confirmed"] * 3 + ["rejected"] + ["unreviewed"] * 3 + ["needs_higher_resolution"]
    areas = [100.0, 200.0, 300.0, 5000.0, 10.0, 20.0, 30.0, 40.0]
    det = table(
        [
            (f"bw-{i}", "building", a, 1.0, 1.0, 1.0, r, "")
            for i, (a, r) in enumerate(zip(areas, reviews, strict=True))
        ]
    )
    figures = review_figures(det)
    assert figures["headline"] == (
        "3 confirmed detections, 600 m² (of 8 detections: 1 rejected, 3 unreviewed; "
        "700 m² excluding rejected)"
    )
    assert (figures["kept"], figures["kept_m2"], figures["confirmed_m2"]) == (7, 700.0, 600.0)
    html = render_report(run=fake_run(), detections=det, chips=[], overview="o.png", record=RECORD)
    headline = html.split("<h1>", 1)[1].split("</p>", 1)[0]
    assert "3 confirmed detections, 600 m² (of 8 detections" in headline
    assert "5," not in headline  # the rejected 5,000 m² is in no total
    assert "3 confirmed (600 m²), 1 rejected, 3 unreviewed; 700 m² in the 7 not rejected." in html
    unreviewed = review_figures(det.assign(review="unreviewed"))
    assert unreviewed["headline"] == "8 detections, none reviewed; 5,700 m² in total, unconfirmed"


def test_report_without_detections():
    html = render_report(
        run=fake_run(aoi=None, params={}),
        detections=table([]),
        chips=[],
        overview="o.png",
        record={},
    )
    assert_contains(
        html,
        "<title>Possible new construction: input overlap</title>",
        '<tr><td colspan="12">No detections.</td></tr></table>',
        "<p>No detections, so no chips.</p>\n<h2>Method and limits</h2>",
        "0 detections, none reviewed; 0 m² in total, unconfirmed",
        # Without an AOI the site is the grid's centre: UTM 52N 500100 E, 4708100 N.
        "<td>42.525279, 129.001218 (WGS 84, EPSG:4326)</td>",
        "<tr><th>AOI location confidence</th><td>not applicable</td></tr>",
    )


@pytest.mark.parametrize("where", ["aoi", "id", "note", "class", "path", "credit", "param"])
def test_report_escapes_every_value(where):
    det = table([("bw-1", "other", 1.0, 1.0, 1.0, 1.0, "unreviewed", "")])
    chips = [Chip("bw-1", "b.png", "a.png", "b.tif", "a.tif")]
    record = {"scenes": {"before": {"date": "2019-06-14", "files": []}}, "parameters": {}}
    run = fake_run()
    if where == "aoi":
        run = fake_run(aoi=EVIL)
    elif where in ("id", "note", "class"):
        det[where] = [EVIL]
        chips = [Chip(EVIL, "b.png", "a.png", "b.tif", "a.tif")] if where == "id" else chips
    elif where == "path":
        chips = [Chip("bw-1", EVIL, "a.png", EVIL, "a.tif")]
    elif where == "credit":
        record["scenes"]["before"]["credit"] = EVIL
    else:
        record["parameters"] = {EVIL: EVIL}
    html = render_report(run=run, detections=det, chips=chips, overview="o.png", record=record)
    assert "<script" not in html and EVIL not in html
    assert EVIL_HTML in html


@pytest.mark.slow
def test_report_after_a_stored_review_gives_confirmed_figures(analyst_outputs, tmp_path):
    """A review made in QGIS, imported and re-applied: the packet's figures follow it."""
    import shutil

    from test_review import edit_reviews

    from borderwatch.products.review import import_reviews
    from borderwatch.products.write import write_products

    gpkg = tmp_path / "edited.gpkg"
    shutil.copy(analyst_outputs.gpkg, gpkg)
    det = analyst_outputs.products.detections
    ids, areas = det["id"].tolist(), det["area_m2"].to_numpy()
    edit_reviews(
        gpkg, {ids[0]: ("confirmed", ""), ids[1]: ("confirmed", ""), ids[2]: ("rejected", "")}
    )
    store = tmp_path / "store"
    import_reviews(gpkg, store_dir=store)
    products = write_products(analyst_outputs.run, evidence=tmp_path / "packet", reviews_dir=store)
    assert products.reviews_applied == 3
    html = products.evidence.report.read_text("utf-8")
    n = len(ids)
    kept = areas.sum() - areas[2]
    confirmed = areas[0] + areas[1]
    assert (
        f"2 confirmed detections, {confirmed:,.0f} m² (of {n} detections: 1 rejected, "
        f"{n - 3} unreviewed; {kept:,.0f} m² excluding rejected)"
    ) in html
    assert (
        f"2 confirmed ({confirmed:,.0f} m²), 1 rejected, {n - 3} unreviewed; "
        f"{kept:,.0f} m² in the {n - 1} not rejected."
    ) in html
    summary = json.loads(products.evidence.manifest.read_text("utf-8"))["summary"]
    assert summary == {
        "detections": n,
        "confirmed": 2,
        "rejected": 1,
        "unreviewed": n - 3,
        "area_m2_excluding_rejected": pytest.approx(kept),
        "confirmed_area_m2": pytest.approx(confirmed),
    }
