"""Interactive maps that draw offline: folium with a vendored, inlined Leaflet.

A plain :class:`folium.Map` links Leaflet, jQuery, Bootstrap, Font Awesome and
Leaflet.awesome-markers from public CDNs, so on an air-gapped machine the page shows
nothing. :func:`offline_map` returns a map whose only assets are Leaflet 1.9.4
(``borderwatch/_vendor/leaflet``, BSD-2-Clause), embedded as ``data:`` URIs, and no
basemap, so the page and its saved HTML make no network request.

What works: image overlays, GeoJSON layers with styles, tooltips and popups, and the
layer control (its icon is inlined too). What does not: the features that need the
dropped assets, i.e. ``folium.Icon`` markers (Bootstrap/awesome-markers glyphs) and any
plugin that brings its own CDN links; :func:`external_urls` finds those in the HTML.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from importlib.resources import files
from typing import TYPE_CHECKING

from borderwatch.errors import MissingDependencyError

if TYPE_CHECKING:
    import folium

__all__ = ["external_urls", "offline_map"]

LEAFLET_VERSION = "1.9.4"

_CSS_IMAGE = re.compile(r"url\(images/([\w.-]+\.png)\)")
_EXTERNAL = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)


def _vendored(name: str) -> bytes:
    return files("borderwatch").joinpath("_vendor", "leaflet", name).read_bytes()


def _data_uri(mime: str, payload: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def _leaflet_css() -> bytes:
    # The stylesheet refers to its icons relative to itself (url(images/layers.png));
    # inside a data: URI that has no base, so the icons are inlined as well.
    css = _vendored("leaflet.css").decode("utf-8")
    css = _CSS_IMAGE.sub(
        lambda m: f"url({_data_uri('image/png', _vendored('images/' + m.group(1)))})", css
    )
    return css.encode("utf-8")


def offline_map(*, location: tuple[float, float], zoom_start: int = 17) -> folium.Map:
    """Make a folium map with no basemap whose page needs no network.

    Parameters
    ----------
    location : tuple of float
        Initial centre as ``(latitude, longitude)`` in degrees, EPSG:4326.
    zoom_start : int, optional
        Initial zoom level (web-map zoom, 17 is about 1 m per pixel).

    Returns
    -------
    folium.Map
        A map with ``tiles=None`` whose JavaScript and CSS are only the vendored
        Leaflet, inlined as base64 ``data:`` URIs. Only this instance is changed:
        other folium maps in the same process keep their CDN links.

    Raises
    ------
    MissingDependencyError
        folium is not installed (``pip install borderwatch[notebook]``); an
        :class:`ImportError`.

    Notes
    -----
    Add image overlays and GeoJSON layers as usual. Avoid ``folium.Icon`` markers and
    folium plugins: they depend on assets this map does not load; check the result with
    :func:`external_urls`.

    Examples
    --------
    >>> m = offline_map(location=(42.97, 129.0))
    >>> external_urls(m.get_root().render())
    []
    """
    try:
        import folium
    except ImportError as exc:  # folium is in the optional "notebook" extra
        raise MissingDependencyError(
            "offline_map needs folium: pip install 'borderwatch[notebook]'"
        ) from exc

    m = folium.Map(location=list(location), zoom_start=zoom_start, tiles=None)
    # Instance attributes shadow folium's module-level lists (which add_js_link would
    # mutate in place); jQuery, Bootstrap and awesome-markers are only for Icon markers.
    m.default_js = [("leaflet", _data_uri("text/javascript", _vendored("leaflet.js")))]
    m.default_css = [("leaflet_css", _data_uri("text/css", _leaflet_css()))]
    return m


class _AssetLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in {"script", "link", "img"}:
            return
        for name, value in attrs:
            if name in {"src", "href"} and value and _EXTERNAL.match(value):
                self.urls.append(value.strip())


def external_urls(html: str) -> list[str]:
    """List the network URLs an HTML page loads through its tags.

    Parameters
    ----------
    html : str
        The page, e.g. ``m.get_root().render()`` of a folium map.

    Returns
    -------
    list of str
        Every ``http://``, ``https://`` or protocol-relative (``//host/...``) URL in a
        ``src`` or ``href`` attribute of a ``<script>``, ``<link>`` or ``<img>`` tag, in
        document order. ``data:`` URIs and relative paths are not listed. URLs built by
        JavaScript at run time or named in CSS are not seen.

    Examples
    --------
    >>> external_urls('<script src="https://cdn.example/x.js"></script><img src="a.png">')
    ['https://cdn.example/x.js']
    """
    parser = _AssetLinks()
    parser.feed(html)
    parser.close()
    return parser.urls
