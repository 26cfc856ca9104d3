"""QGIS layer styles (QML) for the exported layers, as text.

QGIS reads these from a ``.qml`` file next to a GeoJSON, or from the
``layer_styles`` table of a GeoPackage (see :mod:`borderwatch.products.gpkg`). They use only
what QGIS 3.16 and later understand: a categorized renderer on ``class`` with one
simple fill symbol per class, and simple labels drawn from an expression.

* detections: building red, fence_or_wall orange, built_up_change blue, other purple;
  each labelled with its report number (``#`` and the ``ref`` column, as in
  report.html); the ``review`` field edited through a drop-down of the allowed
  values (a *Value Map* widget,
  :data:`borderwatch.products.schema.REVIEW_VALUES`).
* aoi: a blue outline without fill, labelled with its name.
* footprints: a grey dashed outline per date, labelled with the date.
* coverage: categorized on ``status``: assessed a green outline, one date only an
  orange hatch, not covered a grey hatch; labelled with the status and share.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

from borderwatch.errors import InputError
from borderwatch.products.schema import REVIEW_VALUES

__all__ = [
    "CLASS_COLOURS",
    "COVERAGE_COLOURS",
    "DETECTION_LABEL",
    "aoi_qml",
    "coverage_qml",
    "detections_qml",
    "footprints_qml",
    "style_for_layer",
    "value_map_field",
]

#: RGB colour of each detection class (Colorbrewer Set1-like, readable on imagery).
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "building": (228, 26, 28),
    "fence_or_wall": (255, 127, 0),
    "built_up_change": (55, 126, 184),
    "other": (152, 78, 163),
}

#: RGB colour of each coverage ``status`` (see :mod:`borderwatch.products.coverage`).
COVERAGE_COLOURS: dict[str, tuple[int, int, int]] = {
    "assessed": (51, 160, 44),
    "one_date_only": (255, 127, 0),
    "not_covered": (110, 110, 110),
}

#: Label expression of a detection: its number in the report, e.g. ``#3``.
DETECTION_LABEL = "'#' || \"ref\""

_QGIS_VERSION = "3.22.0"
_POLYGON = 2  # QgsWkbTypes::PolygonGeometry


def _rgba(rgb: Sequence[int], alpha: int) -> str:
    return f"{rgb[0]},{rgb[1]},{rgb[2]},{alpha}"


def _options(values: dict[str, str]) -> str:
    items = "".join(
        f'<Option type="QString" name={quoteattr(k)} value={quoteattr(v)}/>'
        for k, v in values.items()
    )
    return f'<Option type="Map">{items}</Option>'


def _fill_symbol(
    name: str,
    *,
    fill: str,
    outline: str,
    width_mm: float,
    fill_style: str = "solid",
    outline_style: str = "solid",
) -> str:
    opts = _options(
        {
            "color": fill,
            "style": fill_style,
            "outline_color": outline,
            "outline_style": outline_style,
            "outline_width": f"{width_mm:g}",
            "outline_width_unit": "MM",
            "joinstyle": "miter",
        }
    )
    return (
        f'<symbol type="fill" name={quoteattr(name)} alpha="1" clip_to_extent="1" force_rhr="0">'
        f'<layer class="SimpleFill" enabled="1" locked="0" pass="0">{opts}</layer></symbol>'
    )


def _labels(expression: str, *, size_pt: float = 9.0) -> str:
    return (
        '<labeling type="simple"><settings calloutType="simple">'
        f'<text-style fieldName={quoteattr(expression)} isExpression="1" fontSize="{size_pt:g}" '
        'fontSizeUnit="Point" textColor="0,0,0,255" fontWeight="75" multilineHeight="1" '
        'textOpacity="1" namedStyle="Bold" fontFamily="Sans Serif">'
        '<text-buffer bufferDraw="1" bufferSize="0.8" bufferSizeUnits="MM" '
        'bufferColor="255,255,255,255" bufferOpacity="0.85" bufferJoinStyle="128"/>'
        "</text-style>"
        '<text-format wrapChar="" multilineAlign="3" plussign="0" formatNumbers="0"/>'
        '<placement placement="1" offsetType="0" centroidInside="1" centroidWhole="0" '
        'fitInPolygonOnly="0" priority="5" overrunDistance="0"/>'
        '<rendering obstacle="1" drawLabels="1" labelPerPart="0" displayAll="1" '
        'upsidedownLabels="0" scaleVisibility="0" fontLimitPixelSize="0" limitNumLabels="0"/>'
        "</settings></labeling>"
    )


def value_map_field(name: str, values: Sequence[str]) -> str:
    """``<field>`` of a QML ``<fieldConfiguration>``: a Value Map (drop-down) of ``values``.

    Each value is shown as itself with ``_`` read as a space; the stored text is the
    value. Laid out as QGIS 3.22 writes it (*Layer Properties > Attributes Form*).
    """
    entries = "".join(
        f'<Option type="Map"><Option type="QString" name={quoteattr(v.replace("_", " "))} '
        f"value={quoteattr(v)}/></Option>"
        for v in values
    )
    return (
        f'<field name={quoteattr(name)} configurationFlags="None"><editWidget type="ValueMap">'
        f'<config><Option type="Map"><Option type="List" name="map">{entries}</Option>'
        "</Option></config></editWidget></field>"
    )


def _document(renderer: str, labeling: str, fields: Sequence[str] = ()) -> str:
    categories = "Symbology|Labeling|Fields|Forms" if fields else "Symbology|Labeling"
    config = f"<fieldConfiguration>{''.join(fields)}</fieldConfiguration>\n" if fields else ""
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        f'<qgis version="{_QGIS_VERSION}" styleCategories="{categories}" labelsEnabled="1">\n'
        f"{renderer}\n{labeling}\n{config}"
        f"<layerGeometryType>{_POLYGON}</layerGeometryType>\n</qgis>\n"
    )


def _single(symbol: str) -> str:
    return (
        '<renderer-v2 type="singleSymbol" forceraster="0" symbollevels="0" '
        f'enableorderby="0" referencescale="-1"><symbols>{symbol}</symbols></renderer-v2>'
    )


def _categorized(attr: str, values: Sequence[str], symbols: Sequence[str]) -> str:
    """Build a categorized renderer on ``attr``: one symbol per value, labelled without ``_``."""
    categories = [
        f'<category render="true" symbol="{i}" value={quoteattr(value)} '
        f'label={quoteattr(value.replace("_", " "))} type="string"/>'
        for i, value in enumerate(values)
    ]
    return (
        f'<renderer-v2 type="categorizedSymbol" attr={quoteattr(attr)} forceraster="0" '
        'symbollevels="0" enableorderby="0" referencescale="-1">'
        f"<categories>{''.join(categories)}</categories>"
        f"<symbols>{''.join(symbols)}</symbols>"
        "<rotation/><sizescale/></renderer-v2>"
    )


def detections_qml() -> str:
    """QML for the detections layer: categorized on ``class``, labelled ``#ref``.

    The ``review`` field is edited through a drop-down of
    :data:`~borderwatch.products.schema.REVIEW_VALUES`.

    Returns
    -------
    str
        A complete QGIS style document.
    """
    symbols = [
        _fill_symbol(str(i), fill=_rgba(rgb, 60), outline=_rgba(rgb, 255), width_mm=0.6)
        for i, rgb in enumerate(CLASS_COLOURS.values())
    ]
    renderer = _categorized("class", list(CLASS_COLOURS), symbols)
    review = value_map_field("review", REVIEW_VALUES)
    return _document(renderer, _labels(DETECTION_LABEL), [review])


def aoi_qml() -> str:
    """QML for the AOI layer: blue outline, no fill, labelled with ``name``."""
    symbol = _fill_symbol(
        "0", fill="0,0,0,0", fill_style="no", outline=_rgba((31, 120, 180), 255), width_mm=0.8
    )
    return _document(_single(symbol), _labels('coalesce("name", "id")', size_pt=10))


def footprints_qml() -> str:
    """QML for the valid-data footprints: grey dashed outline, labelled with the date."""
    symbol = _fill_symbol(
        "0",
        fill="0,0,0,0",
        fill_style="no",
        outline=_rgba((90, 90, 90), 255),
        width_mm=0.4,
        outline_style="dash",
    )
    return _document(_single(symbol), _labels('"role" || \' \' || "date"', size_pt=8))


def coverage_qml() -> str:
    """QML for the coverage layer: categorized on ``status``, labelled with the share."""
    symbols = []
    for i, (status, rgb) in enumerate(COVERAGE_COLOURS.items()):
        hatched = status != "assessed"
        symbols.append(
            _fill_symbol(
                str(i),
                fill=_rgba(rgb, 160 if hatched else 0),
                fill_style="b_diagonal" if hatched else "no",
                outline=_rgba(rgb, 255),
                width_mm=0.5,
            )
        )
    renderer = _categorized("status", list(COVERAGE_COLOURS), symbols)
    expression = "replace(\"status\", '_', ' ') || ' ' || format_number(100 * \"share\", 1) || ' %'"
    return _document(renderer, _labels(expression, size_pt=8))


#: Colour of each state in a monitoring run's ``observations`` layer.
STATE_COLOURS: dict[str, tuple[int, int, int]] = {
    "present": (227, 26, 28),
    "absent": (51, 160, 44),
    "unassessable": (110, 110, 110),
}


def observations_qml() -> str:
    """QML for a monitoring run's observations: categorized on ``state``, labelled with the date.

    Filter the layer on ``date`` in QGIS to see one image's states.
    """
    symbols = [
        _fill_symbol(
            str(i),
            fill=_rgba(rgb, 90),
            fill_style="b_diagonal" if state == "unassessable" else "solid",
            outline=_rgba(rgb, 255),
            width_mm=0.5,
        )
        for i, (state, rgb) in enumerate(STATE_COLOURS.items())
    ]
    renderer = _categorized("state", list(STATE_COLOURS), symbols)
    return _document(renderer, _labels('"date" || \' \' || "state"', size_pt=8))


def ledger_qml() -> str:
    """QML for a monitoring run's coverage ledger: the region, labelled date and share assessed."""
    symbol = _fill_symbol(
        "0", fill="0,0,0,0", fill_style="no", outline=_rgba((51, 160, 44), 255), width_mm=0.6
    )
    expression = "\"date\" || ' assessed ' || format_number(100 * \"assessed_share\", 1) || ' %'"
    return _document(_single(symbol), _labels(expression, size_pt=8))


def style_for_layer(layer: str) -> str:
    """QML for one of the exported layers: ``detections``, ``aoi``, ``footprints``, ``coverage``.

    Raises
    ------
    InputError
        Unknown layer name.
    """
    makers = {
        "detections": detections_qml,
        "aoi": aoi_qml,
        "footprints": footprints_qml,
        "coverage": coverage_qml,
    }
    if layer not in makers:
        raise InputError(f"no style for layer {layer!r}; known: {', '.join(makers)}")
    return makers[layer]()
