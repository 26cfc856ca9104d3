"""The analyst products of one run, written together: layers, styles, evidence.

:func:`write_products` is what ``borderwatch detect`` and ``borderwatch demo`` call:
it puts the detections in the analyst schema (:mod:`borderwatch.products.schema`), re-applies
stored reviews for the place (:mod:`borderwatch.products.review`), then writes any of a
GeoPackage (:mod:`borderwatch.products.gpkg`), a GeoJSON with a ``.qml`` style beside it,
and an evidence packet (:mod:`borderwatch.products.evidence`) whose manifest also hashes the
GeoPackage and GeoJSON. Nothing is half-written: every path is checked before work
starts, each file is renamed into place when complete, and the packet (with any
layers inside its folder) is built in a temporary folder and renamed as a whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from borderwatch.engine import DetectionRun, run_metadata
from borderwatch.errors import InputError
from borderwatch.products.evidence import EvidencePacket, moved_packet, packet_stage, write_packet
from borderwatch.products.export import (
    atomic_write,
    check_folder,
    check_sign_key_outside,
    check_writable,
    lies_in,
    write_geojson,
)
from borderwatch.products.gpkg import gpkg_metadata, input_hashes, run_layers, write_gpkg
from borderwatch.products.qgis_project import check_qgis_project, write_qgis_project
from borderwatch.products.redact import redact_record
from borderwatch.products.review import apply_reviews, load_reviews, place_key
from borderwatch.products.styles import detections_qml
from borderwatch.products.summary import detection_figures

__all__ = [
    "Products",
    "analyst_layers",
    "check_outputs",
    "write_products",
    "write_qml",
]

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


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and lies_in(path, folder)


def check_outputs(
    outputs: tuple[Path, ...],
    *,
    evidence: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    qgis_project: Path | None = None,
    sign_key_file: str | os.PathLike[str] | None = None,
) -> None:
    """Check every layer output (and the evidence folder) before any work starts.

    Layers inside the evidence folder are written into the packet (see
    :func:`write_products`), so only the evidence folder's own checks apply to them.
    With ``overwrite`` an existing evidence folder must be empty or a packet holding
    only its listed files (:func:`borderwatch.products.export.check_replaceable`).
    ``sign_key_file``, the private key's file, must not lie in the evidence folder
    (:func:`borderwatch.products.export.check_sign_key_outside`).

    Raises
    ------
    InputError
        An output suffix that is neither GeoPackage nor GeoJSON, or a
        ``qgis_project`` without a ``.gpkg`` output
        (:func:`borderwatch.products.qgis_project.check_qgis_project`).
        The signing key lies in the evidence folder.
    OutputExistsError
        An output exists and ``overwrite`` is False, its folder is missing, or the
        evidence folder is a file, not empty, or holds files that are not its packet's.
    OutputWriteError
        An output's folder (or the evidence folder's) is read-only or not writable.
    """
    root = Path(evidence) if evidence is not None else None
    if root is not None and sign_key_file is not None:
        check_sign_key_outside(sign_key_file, root)
    for out in outputs:
        if out.suffix.lower() not in (".gpkg", *_GEOJSON_SUFFIXES):
            raise InputError(f"{out}: unknown output type; use .gpkg, .geojson or .json")
        if _inside(out, root):
            continue
        check_writable(out, overwrite=overwrite)
        if out.suffix.lower() in _GEOJSON_SUFFIXES:
            check_writable(out.with_suffix(".qml"), overwrite=overwrite)
    if qgis_project is not None:
        check_qgis_project(qgis_project, gpkg=_gpkg_of(outputs))
        if not _inside(qgis_project, root):
            check_writable(qgis_project, overwrite=overwrite)
    if root is not None:
        check_folder(root, overwrite=overwrite)


def _write_layers(
    run: DetectionRun,
    layers: dict[str, gpd.GeoDataFrame],
    place: str,
    targets: list[Path],
    *,
    overwrite: bool,
    redact: bool,
) -> list[Path]:
    files: list[Path] = []
    for out in targets:
        if out.suffix.lower() == ".gpkg":
            files.append(write_gpkg(layers, out, metadata=gpkg_metadata(run), overwrite=overwrite))
        else:
            det = layers["detections"]
            meta = {**run_metadata(run), "place": place, "summary": detection_figures(det)}
            meta = redact_record(meta) if redact else meta
            files.append(write_geojson(det, out, metadata=meta, overwrite=overwrite))
            files.append(write_qml(out.with_suffix(".qml"), detections_qml(), overwrite=overwrite))
    return files


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
    sign_key: Ed25519PrivateKey | None = None,
    redact: bool = False,
    command: str = "borderwatch",
    qgis_project: Path | None = None,
) -> Products:
    """Write the layers and evidence of a run.

    Layers inside the evidence folder are written into the packet while it is built
    in its temporary folder, so they appear together with it or not at all.

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
    sign_key : Ed25519PrivateKey, optional
        Sign the packet's manifest (see :mod:`borderwatch.products.signing`).
    redact : bool
        No host name, user name or absolute path in the packet (and the GeoJSON metadata).
    command : str
        What ran, for the packet's custody log.
    qgis_project : path, optional
        A ``.qgz`` QGIS project of the GeoPackage output over both dates' images
        (:func:`borderwatch.products.qgis_project.write_qgis_project`); needs a
        ``.gpkg`` among ``outputs``. Written before the evidence, whose manifest
        hashes it with the layers.

    Returns
    -------
    Products
        Paths at their final places.

    Raises
    ------
    InputError
        An output suffix that is neither GeoPackage nor GeoJSON.
    OutputExistsError
        An output exists and ``overwrite`` is False.
    OutputWriteError
        An output could not be written (read-only folder, full disk, GDAL error).
    """
    check_outputs(outputs, evidence=evidence, overwrite=overwrite, qgis_project=qgis_project)
    layers, place, applied = analyst_layers(run, reviews_dir=reviews_dir)
    root = Path(evidence) if evidence is not None else None
    gpkg = _gpkg_of(outputs)
    outside = [out for out in outputs if not _inside(out, root)]
    files = _write_layers(run, layers, place, outside, overwrite=overwrite, redact=redact)
    # A project outside the packet over a GeoPackage outside it is written now, so the
    # manifest hashes it; over a GeoPackage in the packet, once the packet is in place.
    project_now = gpkg is not None and not _inside(gpkg, root)
    if qgis_project is not None and gpkg is not None and project_now:
        if not _inside(qgis_project, root):
            files += _write_project(run, qgis_project, gpkg, overwrite=overwrite, redact=redact)
    if root is None:
        return Products(layers["detections"], place, applied, tuple(files), None)
    with packet_stage(root, overwrite=overwrite, redact=redact, sign_key=sign_key) as (
        stage,
        prior,
    ):
        staged = [_staged(out, root, stage) for out in outputs if _inside(out, root)]
        for p in staged:
            p.parent.mkdir(parents=True, exist_ok=True)
        inner = _write_layers(run, layers, place, staged, overwrite=False, redact=redact)
        if qgis_project is not None and gpkg is not None and _inside(qgis_project, root):
            # Paths relative to the staged project hold after the rename: the staging
            # folder is a sibling of the packet folder.
            in_stage = _staged(gpkg, root, stage) if _inside(gpkg, root) else gpkg
            target = _staged(qgis_project, root, stage)
            inner += _write_project(run, target, in_stage, overwrite=False, redact=redact)
        packet = write_packet(
            run,
            stage,
            detections=layers["detections"],
            other_outputs=[*files, *inner],
            sign_key=sign_key,
            redact=redact,
            command=command,
            prior_custody=prior,
        )
    files += [root / p.relative_to(stage) for p in inner]
    if qgis_project is not None and gpkg is not None and not project_now:
        if not _inside(qgis_project, root):
            files += _write_project(run, qgis_project, gpkg, overwrite=overwrite, redact=redact)
    return Products(layers["detections"], place, applied, tuple(files), moved_packet(packet, root))


def _staged(path: Path, root: Path, stage: Path) -> Path:
    """Where ``path`` (inside the packet folder ``root``) is written in the staging folder."""
    return stage / Path(os.path.abspath(path)).relative_to(os.path.abspath(root))


def _write_project(
    run: DetectionRun, path: Path, gpkg: Path, *, overwrite: bool, redact: bool
) -> list[Path]:
    """Write the run's QGIS project over ``gpkg`` and both dates' images."""
    where = run.aoi.id if run.aoi is not None else "input overlap"
    dates = f"{run.before.source.date or '?'} -> {run.after.source.date or '?'}"
    images = [("after", run.after.source), ("before", run.before.source)]
    return write_qgis_project(
        path,
        gpkg=gpkg,
        images=images,
        title=f"borderwatch {where} {dates}",
        overwrite=overwrite,
        redact=redact,
    )
