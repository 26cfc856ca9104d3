"""The offline map loads only the vendored Leaflet, and Leaflet really runs without network."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

folium = pytest.importorskip("folium", reason="folium not installed (pip install .[notebook])")

from borderwatch.products.webmap import LEAFLET_VERSION, external_urls, offline_map  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
# A square detection inside the overlay, about 80 m across, at the sample site.
SOUTH, WEST, NORTH, EAST = 42.9700, 129.0000, 42.9750, 129.0060
DETECTION = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"area_m2": 6400.0},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [
                        [129.0020, 42.9715],
                        [129.0030, 42.9715],
                        [129.0030, 42.9722],
                        [129.0020, 42.9722],
                        [129.0020, 42.9715],
                    ]
                ],
            },
        }
    ],
}


def site_map() -> folium.Map:
    """The notebook's map: image overlay, GeoJSON with a tooltip, layer control."""
    m = offline_map(location=((SOUTH + NORTH) / 2, (WEST + EAST) / 2), zoom_start=16)
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[2:6, 2:6] = 200
    folium.raster_layers.ImageOverlay(
        image=image, bounds=[[SOUTH, WEST], [NORTH, EAST]], name="after"
    ).add_to(m)
    folium.GeoJson(
        DETECTION,
        name="detections",
        style_function=lambda f: {"color": "yellow", "weight": 2},
        tooltip=folium.GeoJsonTooltip(fields=["area_m2"]),
    ).add_to(m)
    folium.LayerControl().add_to(m)
    m.fit_bounds([[SOUTH, WEST], [NORTH, EAST]])
    return m


def test_offline_map_has_no_external_url_and_embeds_leaflet():
    html = site_map().get_root().render()
    assert external_urls(html) == []
    assert 'src="data:text/javascript;base64,' in html
    assert "L.map(" in html and "L.imageOverlay(" in html and "L.tileLayer(" not in html
    # Leaflet's banner, base64-decoded from the script's data: URI.
    payload = html.split('src="data:text/javascript;base64,', 1)[1].split('"', 1)[0]
    assert f"Leaflet {LEAFLET_VERSION}" in base64.b64decode(payload).decode("utf-8")


def test_offline_map_leaves_other_maps_alone():
    offline_map(location=(SOUTH, WEST))
    assert folium.Map.default_js[0][1].startswith("https://")
    assert len(external_urls(folium.Map(tiles=None).get_root().render())) >= 2


def test_external_urls_finds_folium_cdn_links():
    urls = external_urls(folium.Map().get_root().render())
    assert any("leaflet" in u and u.endswith(".js") for u in urls)
    assert any("leaflet" in u and u.endswith(".css") for u in urls)
    assert any("jquery" in u for u in urls)


def test_external_urls_kinds_of_url():
    html = (
        '<script src="HTTP://a.example/x.js"></script>'
        '<link rel="stylesheet" href="//b.example/y.css">'
        '<img src="https://c.example/z.png"/>'
        '<img src="data:image/png;base64,AAAA"><script src="local.js"></script>'
        '<a href="https://not-an-asset.example/">link</a>'
    )
    assert external_urls(html) == [
        "HTTP://a.example/x.js",
        "//b.example/y.css",
        "https://c.example/z.png",
    ]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_leaflet_runs_offline_in_chromium(tmp_path):
    page = tmp_path / "map.html"
    site_map().save(str(page))
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        # Every host name fails to resolve: any CDN request would fail.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    # Class names set by Leaflet's code (the page's own <style> also names
    # .leaflet-container, so look for the class attributes only).
    classes = " ".join(re.findall(r'class="([^"]*)"', dom))
    assert "leaflet-container" in classes, dom[-2000:]  # L.map ran
    assert "leaflet-interactive" in classes  # the GeoJSON polygon, an SVG path
    assert re.search(r"<path [^>]*leaflet-interactive", dom)
    assert "leaflet-image-layer" in classes  # the after image
    assert "leaflet-control-layers" in classes


def test_vendored_files_present():
    from importlib.resources import files

    vendor = files("borderwatch").joinpath("_vendor", "leaflet")
    for name in ("leaflet.js", "leaflet.css", "LICENSE", "README.md", "images/layers.png"):
        assert vendor.joinpath(name).is_file(), name
    assert "Redistribution and use in source and binary forms" in (
        vendor.joinpath("LICENSE").read_text()
    )
