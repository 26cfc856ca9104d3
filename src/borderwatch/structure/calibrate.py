"""Object confidence calibration of a structure model (isotonic, from held-out objects).

A detection's raw score is its mean probability. :func:`fit_calibration` fits the
share of detections that are real (match a true object, IoU >= 0.5) as a
non-decreasing function of it (``scipy.optimize.isotonic_regression``) on detections
of places the model did not train on (the cross-validation folds of
``benchmarks/structure_cv.py``), and keeps at most :data:`MAX_KNOTS` knots.
:func:`embed_calibration` stores them in the model file's metadata
(:data:`~borderwatch.structure.infer.CALIBRATION_KEY`); the engine then gives every
detection of that model the calibrated share as its ``confidence``
(:func:`borderwatch.objects.classify.calibrated_confidence`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from scipy.optimize import isotonic_regression

from borderwatch.errors import InputError
from borderwatch.structure.infer import CALIBRATION_KEY

__all__ = ["MAX_KNOTS", "embed_calibration", "fit_calibration"]

#: Most knots kept (equal-count groups of the sorted scores).
MAX_KNOTS = 12
#: Least detections a calibration is fitted on.
MIN_OBJECTS = 30


def fit_calibration(
    score: np.ndarray, real: np.ndarray, *, knots: int = MAX_KNOTS
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Isotonic share of real detections as a function of their mean score.

    Parameters
    ----------
    score : numpy.ndarray
        ``float (n,)`` raw scores (mean probability) of held-out detections.
    real : numpy.ndarray
        ``bool (n,)``: the detection matches a true object.
    knots : int
        Knots kept: the detections are sorted by score and cut into this many groups
        of equal count; each knot is a group's mean score and fitted share.

    Returns
    -------
    tuple
        ``(scores, shares)``, scores strictly increasing, shares non-decreasing in [0, 1].

    Raises
    ------
    InputError
        Fewer than :data:`MIN_OBJECTS` detections, a non-finite score, or arrays of
        different lengths.

    Examples
    --------
    >>> s = np.linspace(0.5, 1.0, 100)
    >>> xs, ys = fit_calibration(s, s > 0.75, knots=4)
    >>> [round(y, 2) for y in ys]
    [0.0, 0.0, 0.96, 1.0]
    """
    x = np.asarray(score, np.float64).ravel()
    y = np.asarray(real, bool).ravel().astype(np.float64)
    if x.shape != y.shape:
        raise InputError(f"{x.size} scores but {y.size} outcomes")
    if not np.isfinite(x).all():
        raise InputError("a calibration needs finite scores (NaN or infinite given)")
    if x.size < MIN_OBJECTS:
        raise InputError(f"{x.size} detections: a calibration needs at least {MIN_OBJECTS}")
    # ties: one point per distinct score, its share real weighted by its count
    ux, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    share = np.bincount(inv, weights=y) / counts
    fitted = np.clip(isotonic_regression(share, weights=counts).x, 0.0, 1.0)
    # knots: consecutive distinct scores in groups of about equal count
    edges = np.searchsorted(np.cumsum(counts), np.linspace(0, x.size, knots + 1)[1:-1])
    xs, ys = [], []
    for g in np.split(np.arange(ux.size), np.unique(edges)):
        if g.size:
            w = counts[g]
            xs.append(float(np.average(ux[g], weights=w)))
            ys.append(float(np.average(fitted[g], weights=w)))
    return tuple(xs), tuple(ys)


def embed_calibration(
    path: Path,
    calibration: tuple[tuple[float, ...], tuple[float, ...]],
    *,
    fitted_on: str,
) -> str:
    """Write ``calibration`` into the ONNX model ``path``'s metadata; its new SHA-256.

    Needs the ``onnx`` package (the ``[train]`` extra). The file is replaced atomically
    (:func:`borderwatch.products.export.atomic_write`).
    """
    import onnx

    from borderwatch.products.export import atomic_write

    xs, ys = calibration
    proto = onnx.load(str(path))
    keep = [p for p in proto.metadata_props if p.key != CALIBRATION_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    entry = proto.metadata_props.add()
    entry.key = CALIBRATION_KEY
    entry.value = json.dumps(
        {
            "mean_probability": list(xs),
            "share_real": list(ys),
            "fitted_on": fitted_on,
            "match_rule": "IoU >= 0.5, one-to-one",
        }
    )
    with atomic_write(path, overwrite=True) as tmp:
        onnx.save(proto, str(tmp))
    return hashlib.sha256(path.read_bytes()).hexdigest()
