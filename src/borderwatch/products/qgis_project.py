"""A QGIS project (``.qgz``) of a run: its GeoPackage layers over both dates' images.

:func:`write_qgis_project` writes, without QGIS, the XML project QGIS 3.22 and later
read: the ``detections``, ``aoi`` and (when the GeoPackage has one) ``coverage``
layers of the run's GeoPackage, each with the style the GeoPackage holds as its
default (:mod:`borderwatch.products.styles`), over the before and after images in
true colour: a *multiband colour* renderer whose red, green and blue bands are the
images' red, green and blue (:func:`borderwatch.products.evidence.true_colour_bands`),
not the file's first three bands, each stretched between its 2nd and 98th
percentile. A date given as one file per band is shown through a small GDAL VRT
beside the project that stacks its red, green and blue files (each placed on the red
file's pixel grid by its bounds, so bands of different pixel sizes line up).

Paths are written relative to the project (QGIS's default "relative paths"), so a
folder holding the project, the GeoPackage and the images opens after it is moved.
With ``redact`` (a published packet) no folder outside the project's is named: files
there are written by their file name alone.
A ``.qgz`` is a zip holding one ``.qgs`` document; everything is written through
:func:`borderwatch.products.export.atomic_write`.
"""

from __future__ import annotations

import math
import os
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pyogrio
from pyproj import CRS as ProjCRS

from borderwatch.errors import InputError
from borderwatch.io import DateSource, open_raster
from borderwatch.products.evidence import stretch_limits, true_colour_bands
from borderwatch.products.export import atomic_write
from borderwatch.products.gpkg import read_layer_styles

__all__ = [
    "PROJECT_LAYERS",
    "check_qgis_project",
    "image_style",
    "write_qgis_project",
]

#: GeoPackage layers a project shows, top to bottom (each only if the GeoPackage has it).
PROJECT_LAYERS = ("detections", "aoi", "coverage")
#: Longest side of the decimated read the contrast stretch is computed on, pixels.
STRETCH_READ_PX = 1024
_QGIS_VERSION = "3.22.0"
_GEOMETRY = {
    "Polygon": "Polygon",
    "MultiPolygon": "Polygon",
    "Point": "Point",
    "LineString": "Line",
}


def check_qgis_project(path: str | os.PathLike[str], *, gpkg: Path | None) -> Path:
    """Check a ``--qgis-project`` output before any work starts.

    Raises
    ------
    InputError
        ``path`` does not end in ``.qgz``, or there is no ``.gpkg`` output for the
        project to show (``--qgis-project`` needs ``--out FILE.gpkg``).

    The caller checks that ``path`` may be written (it may lie in an evidence folder
    that does not exist yet).
    """
    dest = Path(path)
    if dest.suffix.lower() != ".qgz":
        raise InputError(f"{dest}: a QGIS project must end in .qgz")
    if gpkg is None or gpkg.suffix.lower() != ".gpkg":
        raise InputError(
            f"{dest}: --qgis-project needs a GeoPackage output for its layers; give --out FILE.gpkg"
        )
    return dest


def _outside(path: str | os.PathLike[str], folder: Path) -> bool:
    """Tell whether ``path`` lies outside ``folder`` (links resolved)."""
    return not Path(path).resolve().is_relative_to(folder.resolve())


def _relative(path: str | os.PathLike[str], folder: Path, *, redact: bool = False) -> str:
    """``path`` relative to ``folder`` as QGIS writes it (``./x``, ``../x``), else absolute.

    With ``redact`` a file outside ``folder`` is named ``./<file name>`` alone, so no
    folder outside is named (QGIS asks where it is, or finds it once copied beside).
    """
    target = Path(path).resolve()
    if redact and _outside(target, folder):
        return f"./{target.name}"
    try:
        rel = os.path.relpath(target, folder.resolve())
    except ValueError:  # another drive (Windows): only an absolute path can work
        return str(target)
    rel = rel.replace(os.sep, "/")
    return rel if rel.startswith("../") else f"./{rel}"


def _srs(parent: ET.Element, crs: str) -> None:
    """``<srs><spatialrefsys>`` of a CRS (WKT and authority id)."""
    c = ProjCRS.from_user_input(crs)
    ref = ET.SubElement(parent, "spatialrefsys")
    ET.SubElement(ref, "wkt").text = c.to_wkt()
    auth = c.to_authority()
    ET.SubElement(ref, "authid").text = ":".join(auth) if auth else ""
    ET.SubElement(ref, "description").text = c.name


def image_style(date: DateSource) -> tuple[str, tuple[int, int, int], list[np.ndarray]]:
    """Return the file a date is shown from, its red/green/blue bands and their stretch.

    Parameters
    ----------
    date : DateSource
        One date's files (:func:`borderwatch.io.open_date`).

    Returns
    -------
    path : str
        The date's file when it holds every band; else the first of its red, green
        and blue files (the caller stacks them, see :func:`write_qgis_project`).
    bands : tuple of int
        1-based band numbers of red, green and blue in that file (or in the stack).
    limits : list of numpy.ndarray
        2nd and 98th percentile of red, green and blue, from a read decimated to at most
        :data:`STRETCH_READ_PX` pixels a side (nodata ignored).
    """
    rgb = [date.file_bands[i] for i in true_colour_bands(date.band_names)]
    limits = []
    for path, band in rgb:
        with open_raster(path) as src:
            step = max(1, math.ceil(max(src.height, src.width) / STRETCH_READ_PX))
            shape = (max(src.height // step, 1), max(src.width // step, 1))
            data = src.read(band, out_shape=shape, masked=True).astype(np.float64)
        limits.append(stretch_limits(data.filled(np.nan)[None])[0])
    if len(date.paths) == 1:
        return rgb[0][0], (rgb[0][1], rgb[1][1], rgb[2][1]), limits
    return rgb[0][0], (1, 2, 3), limits


def _stack_vrt(date: DateSource, dest: Path, *, redact: bool = False) -> str:
    """VRT text stacking a multi-file date's red, green and blue bands (sources relative).

    With ``redact`` a band file outside the VRT's folder is named by its file name alone.
    """
    rgb = [date.file_bands[i] for i in true_colour_bands(date.band_names)]
    with open_raster(rgb[0][0]) as src:
        width, height, tr, wkt = src.width, src.height, src.transform, src.crs.to_wkt()
        dtype = src.dtypes[rgb[0][1] - 1]
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = wkt
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        repr(float(v)) for v in (tr.c, tr.a, tr.b, tr.f, tr.d, tr.e)
    )
    gdal_type = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}
    for k, (path, band) in enumerate(rgb, start=1):
        with open_raster(path) as src:
            if src.crs is None or src.crs.to_wkt() != wkt:
                raise InputError(
                    f"{path}: not in the CRS of {rgb[0][0]}; "
                    "the QGIS project cannot stack the true-colour bands"
                )
            # Placed on the red file's pixel grid by its bounds (a 20 m band on a 10 m one).
            s_tr, s_w, s_h, nodata = src.transform, src.width, src.height, src.nodata
        vb = ET.SubElement(
            root, "VRTRasterBand", dataType=gdal_type.get(dtype, "Float64"), band=str(k)
        )
        if nodata is not None:
            ET.SubElement(vb, "NoDataValue").text = repr(float(nodata))
        simple = ET.SubElement(vb, "SimpleSource")
        rel = _relative(path, dest.parent, redact=redact).removeprefix("./")
        ET.SubElement(simple, "SourceFilename", relativeToVRT="1").text = rel
        ET.SubElement(simple, "SourceBand").text = str(band)
        ET.SubElement(simple, "SrcRect", xOff="0", yOff="0", xSize=str(s_w), ySize=str(s_h))
        dst = {
            "xOff": (s_tr.c - tr.c) / tr.a,
            "yOff": (s_tr.f - tr.f) / tr.e,
            "xSize": s_w * s_tr.a / tr.a,
            "ySize": s_h * s_tr.e / tr.e,
        }
        ET.SubElement(simple, "DstRect", {k: f"{v:.10g}" for k, v in dst.items()})
    return ET.tostring(root, encoding="unicode")


def _map_layer(
    kind: str, layer_id: str, name: str, source: str, provider: str, crs: str
) -> ET.Element:
    ml = ET.Element("maplayer", type=kind)
    ET.SubElement(ml, "id").text = layer_id
    ET.SubElement(ml, "datasource").text = source
    ET.SubElement(ml, "layername").text = name
    _srs(ET.SubElement(ml, "srs"), crs)
    ET.SubElement(ml, "provider", encoding="UTF-8").text = provider
    return ml


def _vector_layer(
    gpkg: Path, folder: Path, name: str, qml: str | None, *, redact: bool
) -> ET.Element:
    info = pyogrio.read_info(gpkg, layer=name)
    layer_id = f"{name}_{uuid.uuid4().hex}"
    source = f"{_relative(gpkg, folder, redact=redact)}|layername={name}"
    ml = _map_layer("vector", layer_id, name, source, "ogr", info["crs"])
    ml.set("geometry", _GEOMETRY.get(str(info["geometry_type"]).removeprefix("Multi"), "Polygon"))
    if qml:  # the GeoPackage's default style: its elements are those of a <maplayer>
        style = ET.fromstring(qml.split("\n", 1)[1] if qml.startswith("<!DOCTYPE") else qml)
        ml.set("labelsEnabled", style.get("labelsEnabled", "0"))
        for child in style:
            if child.tag != "layerGeometryType":
                ml.append(child)
    return ml


def _contrast(parent: ET.Element, tag: str, low: float, high: float) -> None:
    ce = ET.SubElement(parent, tag)
    ET.SubElement(ce, "minValue").text = repr(float(low))
    ET.SubElement(ce, "maxValue").text = repr(float(high))
    ET.SubElement(ce, "algorithm").text = "StretchToMinimumMaximum"


def _raster_layer(
    name: str, source: str, crs: str, bands: Sequence[int], limits: Sequence[np.ndarray]
) -> ET.Element:
    layer_id = f"{name.split(' ', 1)[0]}_{uuid.uuid4().hex}"
    ml = _map_layer("raster", layer_id, name, source, "gdal", crs)
    pipe = ET.SubElement(ml, "pipe")
    renderer = ET.SubElement(
        pipe,
        "rasterrenderer",
        type="multibandcolor",
        opacity="1",
        alphaBand="-1",
        redBand=str(bands[0]),
        greenBand=str(bands[1]),
        blueBand=str(bands[2]),
        nodataColor="",
    )
    for tag, (low, high) in zip(
        ("redContrastEnhancement", "greenContrastEnhancement", "blueContrastEnhancement"),
        limits,
        strict=True,
    ):
        _contrast(renderer, tag, low, high)
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    return ml


def write_qgis_project(
    path: str | os.PathLike[str],
    *,
    gpkg: str | os.PathLike[str],
    images: Sequence[tuple[str, DateSource]],
    title: str,
    overwrite: bool = False,
    redact: bool = False,
) -> list[Path]:
    """Write a ``.qgz`` project showing a run's GeoPackage over its images.

    Parameters
    ----------
    path : path
        The project, ``.qgz`` (see :func:`check_qgis_project`).
    gpkg : path
        The run's GeoPackage (:func:`borderwatch.products.gpkg.write_gpkg`); its
        :data:`PROJECT_LAYERS` are shown with their default styles. The project's CRS
        is that of its ``detections`` layer (the analysis grid's, metres).
    images : sequence of (str, DateSource)
        Layer name and files of each date, bottom layer last (e.g. after, before).
    title : str
        Project title.
    overwrite : bool
        Replace an existing project (and stack VRTs).
    redact : bool
        Name no folder outside the project's own: a file there (an image, a band file
        of a stack VRT) is written by its file name alone, and an image layer that is
        not in the project's folder says so in its name (``after (image not in the
        packet: after.tif)``); QGIS asks where such an image is when it opens.

    Returns
    -------
    list of pathlib.Path
        The project, then any VRT written beside it for a date given as band files.

    Raises
    ------
    InputError
        The GeoPackage has no ``detections`` layer, or a multi-file date's red, green
        and blue files are not in one CRS.
    """
    dest = Path(path)
    folder = dest.parent
    gpkg = Path(gpkg)
    names = [str(n) for n, _ in pyogrio.list_layers(gpkg)]
    if "detections" not in names:
        raise InputError(f"{gpkg}: no 'detections' layer for the QGIS project")
    styles = read_layer_styles(gpkg)
    crs = str(pyogrio.read_info(gpkg, layer="detections")["crs"])
    layers = [
        _vector_layer(gpkg, folder, n, styles.get(n), redact=redact)
        for n in PROJECT_LAYERS
        if n in names
    ]
    vrts: list[tuple[Path, str]] = []
    for name, date in images:
        file, bands, limits = image_style(date)
        away = [Path(p).name for p in date.paths if _outside(p, folder)]
        if len(date.paths) > 1:
            vrt = dest.with_name(f"{dest.stem}.{name}.vrt")
            vrts.append((vrt, _stack_vrt(date, vrt, redact=redact)))
            file = str(vrt)
        with open_raster(date.paths[0]) as src:
            image_crs = src.crs.to_wkt()
        label = name
        if redact and away:
            more = f" and {len(away) - 1} more" if len(away) > 1 else ""
            label = f"{name} (image not in the packet: {away[0]}{more})"
        source = _relative(file, folder, redact=redact)
        layers.append(_raster_layer(label, source, image_crs, bands, limits))

    root = ET.Element("qgis", projectname=title, version=_QGIS_VERSION)
    ET.SubElement(root, "title").text = title
    _srs(ET.SubElement(root, "projectCrs"), crs)
    tree = ET.SubElement(root, "layer-tree-group")
    for ml in layers:
        ET.SubElement(
            tree,
            "layer-tree-layer",
            id=ml.findtext("id") or "",
            name=ml.findtext("layername") or "",
            source=ml.findtext("datasource") or "",
            providerKey=ml.findtext("provider") or "",
            checked="Qt::Checked",
            expanded="1",
        )
    project_layers = ET.SubElement(root, "projectlayers")
    project_layers.extend(layers)
    props = ET.SubElement(root, "properties")
    # QGIS reads <projectCrs> only with this property set.
    spatial = ET.SubElement(props, "SpatialRefSys")
    ET.SubElement(spatial, "ProjectionsEnabled", type="int").text = "1"
    paths = ET.SubElement(props, "Paths")
    ET.SubElement(paths, "Absolute", type="bool").text = "false"
    document = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(
        root, encoding="unicode"
    )
    written = []
    for vrt, text in vrts:
        with atomic_write(vrt, overwrite=overwrite) as tmp:
            tmp.write_text(text, encoding="utf-8")
        written.append(vrt)
    with atomic_write(dest, overwrite=overwrite) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{dest.stem}.qgs", document)
    return [dest, *written]
