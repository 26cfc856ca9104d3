"""GeoPackage export: detections, AOI, footprints and coverage, each opening styled in QGIS.

The layers are written with pyogrio (GDAL's GPKG driver). Each gets a default
style in the ``layer_styles`` table, laid out exactly as QGIS creates it when an
analyst picks *Save as Default* (through GDAL, with ``id`` as the feature id and
the table registered in ``gpkg_contents`` as an attributes table), so QGIS applies
the style on opening. Everything is written to a temporary file in the destination
folder and renamed into place only when complete.
"""

from __future__ import annotations

import datetime as _dt
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import pyogrio

from borderwatch.aoi import aoi_caveat
from borderwatch.engine import DetectionRun
from borderwatch.errors import InputError
from borderwatch.products.coverage import aoi_geometry, coverage_frame, mask_polygon
from borderwatch.products.export import atomic_write
from borderwatch.products.schema import analyst_table
from borderwatch.products.styles import style_for_layer

__all__ = [
    "LAYER_STYLES_DDL",
    "footprints_frame",
    "gpkg_metadata",
    "input_hashes",
    "read_layer_styles",
    "run_layers",
    "write_gpkg",
]

#: The ``layer_styles`` table as GDAL creates it for QGIS's "Save as Default".
LAYER_STYLES_DDL = (
    'CREATE TABLE "layer_styles" ( "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
    '"f_table_catalog" TEXT(256), "f_table_schema" TEXT(256), "f_table_name" TEXT(256), '
    '"f_geometry_column" TEXT(256), "styleName" TEXT(30), "styleQML" TEXT, "styleSLD" TEXT, '
    '"useAsDefault" BOOLEAN, "description" TEXT, "owner" TEXT(30), "ui" TEXT(30), '
    "\"update_time\" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
)

_COUNT_TRIGGERS = tuple(
    f'CREATE TRIGGER "trigger_{op}_feature_count_layer_styles" AFTER {op.upper()} ON '
    f'"layer_styles" BEGIN UPDATE gpkg_ogr_contents SET feature_count = feature_count '
    f"{sign} 1 WHERE lower(table_name) = lower('layer_styles'); END"
    for op, sign in (("insert", "+"), ("delete", "-"))
)

_POLYGON_LAYERS = ("detections", "aoi", "footprints", "coverage")


def input_hashes(run: DetectionRun) -> tuple[str, ...]:
    """SHA-256 of every before then after input file of ``run``, in order."""
    return tuple(run.input_sha256.values())


def footprints_frame(run: DetectionRun) -> gpd.GeoDataFrame:
    """Valid-data area of each date on the analysis grid, one polygon per date.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``role`` (``before``/``after``), ``date``, ``source`` (file names),
        ``area_m2``; geometry in the grid CRS (metres).
    """
    rows = []
    for role, scene in (("before", run.before), ("after", run.after)):
        valid, vgrid, count = run.footprint(role)
        geom = mask_polygon(valid, vgrid) if valid.any() else None
        rows.append(
            {
                "role": role,
                "date": scene.source.date or "",
                "source": ";".join(Path(p).name for p in scene.source.paths),
                "area_m2": float(count) * run.grid.pixel_area,
                "geometry": geom,
            }
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=run.grid.crs)


def _aoi_frame(run: DetectionRun) -> gpd.GeoDataFrame | None:
    geom = aoi_geometry(run)
    if run.aoi is None or geom is None:
        return None
    confidence, caveat = aoi_caveat(run.aoi)
    return gpd.GeoDataFrame(
        {
            "id": [run.aoi.id],
            "name": [run.aoi.name],
            "kind": [run.aoi.kind],
            "confidence": [confidence],
            "caveat": [caveat],
        },
        geometry=[geom],
        crs=run.grid.crs,
    )


#: What the layers of a run made from synthetic imagery say in every description.
SYNTHETIC_NOTE = (
    "SYNTHETIC: made from borderwatch's generated sample imagery; no real place, no real finding."
)


def gpkg_metadata(run: DetectionRun) -> dict[str, str]:
    """GDAL metadata items of a run's GeoPackage layers (what QGIS shows per layer).

    ``DESCRIPTION`` becomes the layer's ``gpkg_contents.description``, which QGIS shows
    as the layer's abstract (*Layer Properties > Metadata* and *Information*); it
    begins with :data:`SYNTHETIC_NOTE` for synthetic imagery. The other items
    (``SYNTHETIC`` yes/no, each date's date and credit) are stored in the GeoPackage's
    ``gpkg_metadata`` table.
    """
    synthetic = run.before.source.imagery.synthetic or run.after.source.imagery.synthetic
    dates = []
    items = {"SYNTHETIC": "yes" if synthetic else "no"}
    for role, ref in (("before", run.before), ("after", run.after)):
        meta = ref.source.imagery
        items[f"{role.upper()}_DATE"] = meta.date or "unknown"
        items[f"{role.upper()}_CREDIT"] = meta.credit or "unknown"
        dates.append(f"{role} {meta.date or 'date unknown'} (imagery: {meta.credit or 'unknown'})")
    text = "borderwatch run: " + "; ".join(dates) + "."
    items["DESCRIPTION"] = f"{SYNTHETIC_NOTE} {text}" if synthetic else text
    return items


def run_layers(
    run: DetectionRun,
    *,
    detections: gpd.GeoDataFrame | None = None,
    hashes: Sequence[str] | None = None,
) -> dict[str, gpd.GeoDataFrame]:
    """Build the GeoPackage layers of one run, all in the grid CRS.

    Parameters
    ----------
    run : DetectionRun
        A finished run.
    detections : geopandas.GeoDataFrame, optional
        Detections already in the analyst schema (e.g. with reviews applied);
        default :func:`borderwatch.products.schema.analyst_table` of ``run.objects``.
    hashes : sequence of str, optional
        Input file digests (default :func:`input_hashes`), used for stable ids.

    Returns
    -------
    dict of str to GeoDataFrame
        ``detections``, ``footprints``, ``coverage`` (the AOI's assessed and
        not-assessed parts, :func:`borderwatch.products.coverage.coverage_frame`) and,
        when the run had an AOI, ``aoi``.
    """
    if detections is None:
        detections = analyst_table(
            run.objects,
            input_hashes=input_hashes(run) if hashes is None else hashes,
            before_date=run.before.source.date,
            after_date=run.after.source.date,
        )
    layers = {"detections": detections}
    aoi = _aoi_frame(run)
    if aoi is not None:
        layers["aoi"] = aoi
    layers["footprints"] = footprints_frame(run)
    layers["coverage"] = coverage_frame(run)
    return layers


def _add_styles(path: Path, styles: Mapping[str, str]) -> None:
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    con = sqlite3.connect(path)
    try:
        geometry_columns = dict(
            con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns").fetchall()
        )
        with con:
            con.execute(LAYER_STYLES_DDL)
            con.execute(
                "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                "last_change, srs_id) VALUES ('layer_styles', 'attributes', 'layer_styles', '', "
                "?, 0)",
                (now,),
            )
            has_ogr_contents = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='gpkg_ogr_contents'"
            ).fetchone()
            if has_ogr_contents:  # GDAL's feature-count cache, kept current by triggers
                con.execute(
                    "INSERT INTO gpkg_ogr_contents (table_name, feature_count) "
                    "VALUES ('layer_styles', 0)"
                )
                for sql in _COUNT_TRIGGERS:
                    con.execute(sql)
            con.executemany(
                "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, "
                "owner, ui, update_time) VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', NULL, ?)",
                [
                    (name, geometry_columns[name], name, qml, f"borderwatch {name} style", now)
                    for name, qml in styles.items()
                ],
            )
    finally:
        con.close()


def write_gpkg(
    layers: Mapping[str, gpd.GeoDataFrame],
    path: str | os.PathLike[str],
    *,
    styles: Mapping[str, str] | None = None,
    metadata: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write polygon layers and their default QGIS styles to one GeoPackage, atomically.

    Parameters
    ----------
    layers : mapping of str to GeoDataFrame
        Layer name to polygons (any CRS; stored as is, multi-polygons).
    path : path
        Output ``.gpkg`` file.
    styles : mapping of str to str, optional
        Layer name to QML; default :func:`borderwatch.products.styles.style_for_layer` for
        ``detections``, ``aoi``, ``footprints`` and ``coverage``. Layers without a style get none.
    metadata : mapping of str to str, optional
        GDAL metadata items of every layer (:func:`gpkg_metadata`). Not of the file:
        GDAL keeps file-level items of a GeoPackage in a ``.aux.xml`` beside it that
        it writes on every open, which would add a file to an evidence packet.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    InputError
        A layer has no CRS, or ``path`` does not end in ``.gpkg``.
    """
    dest = Path(path)
    if dest.suffix.lower() != ".gpkg":
        raise InputError(f"{dest}: a GeoPackage name must end in .gpkg")
    if styles is None:
        styles = {name: style_for_layer(name) for name in layers if name in _POLYGON_LAYERS}
    for name, gdf in layers.items():
        if gdf.crs is None:
            raise InputError(f"layer {name!r} has no CRS")
    with atomic_write(dest, overwrite=overwrite) as tmp:
        # GDAL wants a .gpkg name; build the file there, then move it onto ``tmp``.
        work = tmp.with_name(tmp.name + ".gpkg")
        try:
            for i, (name, gdf) in enumerate(layers.items()):
                pyogrio.write_dataframe(
                    gdf,
                    work,
                    layer=name,
                    driver="GPKG",
                    geometry_type="MultiPolygon",
                    promote_to_multi=True,
                    append=i > 0,
                    layer_metadata=dict(metadata) if metadata else None,
                    # GeoPackage 1.2 opens in every GDAL and QGIS still in use.
                    dataset_options=None if i else {"VERSION": "1.2"},
                )
            _add_styles(work, {k: v for k, v in styles.items() if k in layers})
            os.replace(work, tmp)
        finally:
            work.unlink(missing_ok=True)
    return dest


def read_layer_styles(path: str | os.PathLike[str]) -> dict[str, str]:
    """Default QML per layer from a GeoPackage's ``layer_styles`` table (empty if none)."""
    con = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        if not con.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='layer_styles'"
        ).fetchone():
            return {}
        rows = con.execute(
            "SELECT f_table_name, styleQML FROM layer_styles WHERE useAsDefault ORDER BY id"
        ).fetchall()
    finally:
        con.close()
    return {name: qml for name, qml in rows}
