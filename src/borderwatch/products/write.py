"""The analyst products of one run, written together: layers, styles, evidence.

:func:`write_products` is what ``borderwatch detect`` and ``borderwatch demo`` call:
it puts the detections in the analyst schema (:mod:`borderwatch.products.schema`), re-applies
stored reviews for the place (:mod:`borderwatch.products.review`), then writes any of a
GeoPackage (:mod:`borderwatch.products.gpkg`), a GeoJSON with a ``.qml`` style beside it,
and an evidence packet (:mod:`borderwatch.products.evidence`) whose manifest also hashes the
GeoPackage and GeoJSON.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd

from borderwatch.engine import DetectionRun, run_metadata
from borderwatch.errors import InputError, OutputExistsError
from borderwatch.products.evidence import EvidencePacket, write_evidence
from borderwatch.products.export import atomic_write, check_writable, write_geojson
from borderwatch.products.gpkg import input_hashes, run_layers, write_gpkg
from borderwatch.products.qgis_project import check_qgis_project, write_qgis_project
from borderwatch.products.review import apply_reviews, load_reviews, place_key
from borderwatch.products.styles import detections_qml

__all__ = ["Products", "analyst_layers", "check_outputs", "write_products", "write_qml"]

_GEOJSON_SUFFIXES = (".geojson", ".json")


@dataclass(frozen=True)
class Products:
    """What :func:`write_products` wrote.

    Attributes
    ----------
    detections : geopandas.GeoDataFrame
        Detections in the analyst schema, reviews applied (grid CRS).
    place : str
        Place key of the run (see :func:`borderwatch.products.review.place_key`).
    reviews_applied : int
        Stored reviews put back on this run's detections.
    files : tuple of pathlib.Path
        Layer files written (GeoPackage, GeoJSON, QML, QGIS project and its VRTs).
    evidence : EvidencePacket or None
        The evidence packet, if one was asked for.
    """

    detections: gpd.GeoDataFrame
    place: str
    reviews_applied: int
    files: tuple[Path, ...]
    evidence: EvidencePacket | None


def write_qml(path: str | os.PathLike[str], qml: str, *, overwrite: bool = False) -> Path:
    """Write a QML style file atomically (QGIS loads ``<layer>.qml`` beside a layer file)."""
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_text(qml, encoding="utf-8")
    return Path(path)


def analyst_layers(
    run: DetectionRun, *, reviews_dir: str | os.PathLike[str] | None = None
) -> tuple[dict[str, gpd.GeoDataFrame], str, int]:
    """GeoPackage layers of a run with stored reviews re-applied.

    Returns
    -------
    layers : dict of str to GeoDataFrame
        See :func:`borderwatch.products.gpkg.run_layers`.
    place : str
        Place key.
    applied : int
        Reviews applied from ``reviews_dir`` (0 without one).
    """
    layers = run_layers(run, hashes=input_hashes(run))
    place = place_key(layers)
    applied = 0
    if reviews_dir is not None:
        layers["detections"], applied = apply_reviews(
            layers["detections"], load_reviews(reviews_dir, place)
        )
    return layers, place, applied


def check_outputs(
    outputs: tuple[Path, ...],
    *,
    evidence: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    qgis_project: Path | None = None,
) -> None:
    """Check every layer output (and the evidence folder) before any work starts.

    Raises
    ------
    InputError
        An output suffix that is neither GeoPackage nor GeoJSON, or a
        ``qgis_project`` without a ``.gpkg`` output
        (:func:`borderwatch.products.qgis_project.check_qgis_project`).
    OutputExistsError
        An output exists and ``overwrite`` is False, its folder is missing, or the
        evidence folder is not empty.
    """
    for out in outputs:
        if out.suffix.lower() not in (".gpkg", *_GEOJSON_SUFFIXES):
            raise InputError(f"{out}: unknown output type; use .gpkg, .geojson or .json")
        check_writable(out, overwrite=overwrite)
        if out.suffix.lower() in _GEOJSON_SUFFIXES:
            check_writable(out.with_suffix(".qml"), overwrite=overwrite)
    if qgis_project is not None:
        check_qgis_project(qgis_project, gpkg=_gpkg_of(outputs), overwrite=overwrite)
    if evidence is not None:
        root = Path(evidence)
        own = {p.resolve() for p in (*outputs, *([qgis_project] if qgis_project else []))}
        if root.exists() and not root.is_dir():
            raise OutputExistsError(f"{root}: evidence path exists and is not a folder")
        if root.exists() and not overwrite and any(p.resolve() not in own for p in root.iterdir()):
            raise OutputExistsError(f"{root}: folder exists and is not empty; pass --overwrite")


def _gpkg_of(outputs: tuple[Path, ...]) -> Path | None:
    """Return the first GeoPackage among the layer outputs (None if there is none)."""
    return next((p for p in outputs if p.suffix.lower() == ".gpkg"), None)


def write_products(
    run: DetectionRun,
    *,
    outputs: tuple[Path, ...] = (),
    evidence: str | os.PathLike[str] | None = None,
    reviews_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    qgis_project: Path | None = None,
) -> Products:
    """Write the layers and evidence of a run.

    Parameters
    ----------
    run : DetectionRun
        A finished run.
    outputs : tuple of path
        Layer files, by suffix: ``.gpkg`` (GeoPackage with styles) or
        ``.geojson``/``.json`` (RFC 7946 GeoJSON, with a ``.qml`` of the same name).
    evidence : path, optional
        Evidence packet folder.
    reviews_dir : path, optional
        Review store to re-apply reviews from.
    overwrite : bool
        Replace existing files.
    qgis_project : path, optional
        A ``.qgz`` QGIS project of the GeoPackage output over both dates' images
        (:func:`borderwatch.products.qgis_project.write_qgis_project`); needs a
        ``.gpkg`` among ``outputs``. Written before the evidence, whose manifest
        hashes it with the layers.

    Returns
    -------
    Products

    Raises
    ------
    InputError
        An output suffix that is neither GeoPackage nor GeoJSON.
    OutputExistsError
        An output exists and ``overwrite`` is False.
    """
    check_outputs(outputs, evidence=evidence, overwrite=overwrite, qgis_project=qgis_project)
    layers, place, applied = analyst_layers(run, reviews_dir=reviews_dir)
    files: list[Path] = []
    for out in outputs:
        if out.suffix.lower() == ".gpkg":
            files.append(write_gpkg(layers, out, overwrite=overwrite))
        else:
            meta = {**run_metadata(run), "place": place}
            det = layers["detections"]
            files.append(write_geojson(det, out, metadata=meta, overwrite=overwrite))
            files.append(write_qml(out.with_suffix(".qml"), detections_qml(), overwrite=overwrite))
    gpkg = _gpkg_of(outputs)
    if qgis_project is not None and gpkg is not None:
        where = run.aoi.id if run.aoi is not None else "input overlap"
        dates = f"{run.before.source.date or '?'} -> {run.after.source.date or '?'}"
        images = [("after", run.after.source), ("before", run.before.source)]
        files += write_qgis_project(
            qgis_project,
            gpkg=gpkg,
            images=images,
            title=f"borderwatch {where} {dates}",
            overwrite=overwrite,
        )
    packet = None
    if evidence is not None:
        packet = write_evidence(
            run, evidence, detections=layers["detections"], other_outputs=files, overwrite=overwrite
        )
    return Products(layers["detections"], place, applied, tuple(files), packet)
