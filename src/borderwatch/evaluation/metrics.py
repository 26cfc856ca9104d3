"""Accuracy of what ``detect`` writes against a reference: pixel and object metrics.

:func:`score_run` scores a finished run of the engine: its final detections (the
polygons ``detect`` writes, rasterised on the grid) and, as a second named row, its
cleaned pixel mask before the object filters (minimum area, classification); and the
same detections object by object, with their confidence
(:mod:`borderwatch.evaluation.objects`: match rule, calibration error, area ratio).
:func:`evaluate_pair` runs the engine on a labelled pair given as arrays (the
benchmark datasets) by writing them to GeoTIFFs on the pair's grid first, so every
number comes through the product's own code.

Pixel metrics are computed over the pixels that are both valid and labelled (so
partial reference sampling, e.g. Landsat Taizhou, scores only its samples). The raw
counts ``tp, fp, fn, tn`` are kept so results pool across pairs (:func:`pool`).

References
----------
.. [1] Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
   Psychological Measurement 20(1), 37-46. https://doi.org/10.1177/001316446002000104
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from borderwatch.errors import InputError
from borderwatch.evaluation.objects import UNSCORED, ObjectScores
from borderwatch.objects.morphology import default_cleanup_px

if TYPE_CHECKING:
    from borderwatch.engine import DetectionRun, DetectParams
    from borderwatch.evaluation.datasets import LabelledPair
    from borderwatch.io import Grid

__all__ = [
    "Scores",
    "cleanup_radius_px",
    "evaluate_mask",
    "object_hit_rate",
    "pool",
    "ProductScores",
    "evaluate_files",
    "evaluate_pair",
    "score_run",
    "scores_from_counts",
]


@dataclass(frozen=True)
class Scores:
    """Accuracy of one mask (or pooled over several).

    Attributes
    ----------
    precision, recall, f1, iou, kappa : float
        Pixel metrics of the change class (0 when undefined, e.g. no predicted change
        gives precision 0).
    object_hit_rate : float or None
        Share of 8-connected truth objects with at least one detected pixel; None
        when pooled or when the truth has no objects. (Object precision and recall
        by the match rule are in :class:`~borderwatch.evaluation.objects.ObjectScores`.)
    tp, fp, fn, tn : int
        Pixel counts over the scored pixels.
    """

    precision: float
    recall: float
    f1: float
    iou: float
    kappa: float
    object_hit_rate: float | None
    tp: int
    fp: int
    fn: int
    tn: int

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready dict with the keys of the attributes."""
        return asdict(self)


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


def scores_from_counts(
    tp: int, fp: int, fn: int, tn: int, *, object_hit_rate: float | None = None
) -> Scores:
    """Precision, recall, F1, IoU and Cohen's kappa from confusion counts.

    Examples
    --------
    >>> s = scores_from_counts(8, 2, 2, 88)
    >>> round(s.f1, 3), round(s.kappa, 3)
    (0.8, 0.778)
    """
    tp, fp, fn, tn = int(tp), int(fp), int(fn), int(tn)
    n = tp + fp + fn + tn
    po = _div(tp + tn, n)
    pe = _div((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn), n * n)
    kappa = _div(po - pe, 1.0 - pe) if pe < 1 else 0.0
    return Scores(
        precision=_div(tp, tp + fp),
        recall=_div(tp, tp + fn),
        f1=_div(2 * tp, 2 * tp + fp + fn),
        iou=_div(tp, tp + fp + fn),
        kappa=kappa,
        object_hit_rate=object_hit_rate,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
    )


def object_hit_rate(pred: np.ndarray, truth: np.ndarray) -> float | None:
    """Share of 8-connected truth objects touched by at least one predicted pixel."""
    from borderwatch.objects.polygons import label_objects

    labels, n = label_objects(truth)
    if n == 0:
        return None
    hit = np.unique(labels[pred & (labels > 0)])
    return float(hit.size) / n


def evaluate_mask(
    pred: np.ndarray,
    truth: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    labelled: np.ndarray | None = None,
) -> Scores:
    """Score a predicted change mask against a truth mask.

    Parameters
    ----------
    pred, truth : numpy.ndarray
        ``bool (rows, cols)`` predicted and reference change.
    valid : numpy.ndarray, optional
        ``bool (rows, cols)``: pixels with data in both dates (default all).
    labelled : numpy.ndarray, optional
        ``bool (rows, cols)``: pixels carrying a reference label (default all).

    Returns
    -------
    Scores

    Raises
    ------
    InputError
        Shapes differ or no pixel is scored.
    """
    if pred.shape != truth.shape:
        raise InputError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    scored = np.ones(truth.shape, bool)
    for m in (valid, labelled):
        if m is not None:
            if m.shape != truth.shape:
                raise InputError(f"mask {m.shape} does not match truth {truth.shape}")
            scored &= m
    if not scored.any():
        raise InputError("no valid labelled pixels to score")
    p, t = pred.astype(bool) & scored, truth.astype(bool) & scored
    tp = int((p & t).sum())
    fp = int((p & ~t).sum())
    fn = int((~p & t).sum())
    tn = int(scored.sum()) - tp - fp - fn
    full = labelled is None or bool(labelled.all())
    hits = object_hit_rate(pred.astype(bool) & scored, t) if full else None
    return scores_from_counts(tp, fp, fn, tn, object_hit_rate=hits)


def pool(scores: Iterable[Scores]) -> Scores:
    """Pool confusion counts of several results (all pixels together)."""
    tp = fp = fn = tn = 0
    for s in scores:
        tp, fp, fn, tn = tp + s.tp, fp + s.fp, fn + s.fn, tn + s.tn
    return scores_from_counts(tp, fp, fn, tn)


def cleanup_radius_px(pixel_m: float) -> int:
    """Morphological opening/closing radius for a pixel size (the benchmark rule).

    One metre of clean-up on the ground (2 px at 0.5 m, 1 px at 1 m), at least one
    pixel while a 3 x 3 pixel kernel still fits inside a small building (<= 40 m, so
    up to ~13 m pixels, e.g. Sentinel-2), and none at coarser pixels (Landsat 30 m),
    where an opening would erase whole buildings.
    """
    if default_cleanup_px(pixel_m) == 0:
        return 0
    return max(1, int(round(1.0 / pixel_m)))


@dataclass(frozen=True)
class ProductScores:
    """Scores of one run: the final detections and the pixel mask before object filters.

    Attributes
    ----------
    detections : Scores
        The detections ``detect`` writes, rasterised on the grid.
    pixels : Scores
        The thresholded, cleaned pixel mask before minimum area and classification.
    n_detections : int
        Number of detections.
    objects : ObjectScores or None
        The detections scored object by object; None where the reference labels only
        a sample of pixels (true objects are then unknown).
    """

    detections: Scores
    pixels: Scores
    n_detections: int
    objects: ObjectScores | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"detections": {...}, "pixels": {...}, "n_detections": n}``.

        Beside them the object metrics of :meth:`ObjectScores.as_dict`
        (``object_precision``, ``object_recall``, ``object_f1``,
        ``false_objects_per_km2``, ``ece``, ``median_area_ratio``, their counts, the
        ``calibration`` table and ``object_match_rule``), all None when not scored.
        """
        return {
            "detections": self.detections.as_dict(),
            "pixels": self.pixels.as_dict(),
            "n_detections": self.n_detections,
            **(UNSCORED if self.objects is None else self.objects.as_dict()),
        }


def score_run(
    run: DetectionRun,
    truth: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    labelled: np.ndarray | None = None,
) -> ProductScores:
    """Score a run's detections and pixel mask against ``truth`` on the run's grid.

    The detections are the run's objects (what ``detect`` writes), scored pixel by
    pixel and object by object with their ``confidence`` column (NaN where absent,
    e.g. without classification); the object scores are left out (None) when
    ``labelled`` does not cover every pixel.

    Parameters
    ----------
    run : DetectionRun
        From :func:`borderwatch.engine.detect` with ``raw_mask=True``.
    truth : numpy.ndarray
        ``bool (rows, cols)`` reference change on the run's grid.
    valid, labelled : numpy.ndarray, optional
        Scored pixels (see :func:`evaluate_mask`).

    Raises
    ------
    InputError
        ``truth`` is not on the run's grid, or the run kept no pixel mask.
    """
    from borderwatch.engine.run import rasterise_objects
    from borderwatch.evaluation.objects import label_objects_on_grid, object_scores

    rows, cols = run.grid.shape
    if truth.shape != (rows, cols):
        raise InputError(f"truth {truth.shape} is not on the run's grid {(rows, cols)}")
    if run.raw_mask is None:
        raise InputError("the run kept no pixel mask; run detect(..., raw_mask=True)")
    # the pixel row: the mask detect writes (--mask-out), by detect's own code
    final = rasterise_objects(run.objects, run.grid, (0, 0, rows, cols)).astype(bool)
    objects = None
    if labelled is None or bool(labelled.all()):
        ids = label_objects_on_grid(run.objects, run.grid)
        conf = (
            run.objects["confidence"].to_numpy(np.float64, na_value=np.nan)
            if "confidence" in run.objects.columns
            else np.full(len(run.objects), np.nan)
        )
        objects = object_scores(ids, conf, truth, pixel_area_m2=run.grid.pixel_area, scored=valid)
    return ProductScores(
        evaluate_mask(final, truth, valid=valid, labelled=labelled),
        evaluate_mask(run.raw_mask, truth, valid=valid, labelled=labelled),
        len(run.objects),
        objects,
    )


def synthetic_grid(shape: tuple[int, int], pixel_m: float) -> Grid:
    """Return a north-up UTM 52N grid of ``pixel_m`` metres for inputs without georeferencing."""
    from affine import Affine
    from rasterio.crs import CRS

    from borderwatch.io import Grid

    return Grid(CRS.from_epsg(32652), Affine(pixel_m, 0, 500_000, 0, -pixel_m, 4_700_000), shape)


def evaluate_pair(
    pair: LabelledPair, *, params: DetectParams | None = None, workdir: str | None = None
) -> tuple[ProductScores, DetectionRun]:
    """Run the engine on a labelled pair held as arrays and score the product.

    The dates are written as GeoTIFFs on the pair's grid (a synthetic UTM grid of
    the pair's pixel size when it has none or it is geographic) in a temporary folder, and
    :func:`borderwatch.engine.detect` runs on them on that grid.

    Returns
    -------
    scores : ProductScores
    run : DetectionRun
    """
    from borderwatch.engine import detect
    from borderwatch.products.export import write_float_raster

    shape = (int(pair.truth.shape[0]), int(pair.truth.shape[1]))
    grid = pair.grid
    if grid is None or grid.crs.is_geographic:  # pixels of the truth, metric sizes
        grid = synthetic_grid(shape, float(np.sqrt(pair.pixel_area_m2)))
    with tempfile.TemporaryDirectory(prefix="borderwatch-eval-", dir=workdir) as tmp:
        paths = []
        for role in ("before", "after"):
            data = getattr(pair, role).copy()
            data[:, ~pair.valid] = np.nan
            paths.append(
                write_float_raster(
                    Path(tmp) / f"{role}.tif", data, grid, band_names=pair.band_names
                )
            )
        run = detect(paths[0], paths[1], params=params, grid=grid, raw_mask=True)
    return score_run(run, pair.truth, valid=pair.valid, labelled=pair.labelled), run


def evaluate_files(
    before: Any,
    after: Any,
    truth: str | Path,
    *,
    params: DetectParams | None = None,
    change_value: float | None = None,
) -> tuple[ProductScores, DetectionRun]:
    """Run the engine on the input files on the truth raster's own grid and score it.

    For a truth raster in a projected CRS: the analysis grid is the truth's grid, so
    the detections are rasterised exactly on the truth's pixels.

    Raises
    ------
    InputError
        The truth raster is not georeferenced in a projected CRS.
    """
    from borderwatch.engine import detect
    from borderwatch.io import Grid, open_raster

    with open_raster(truth) as ds:
        if ds.crs is None or ds.crs.is_geographic or ds.transform.is_identity:
            raise InputError(f"{truth}: truth raster has no projected georeferencing")
        grid = Grid(ds.crs, ds.transform, (ds.height, ds.width))
        label = ds.read(1)
    mask = label != 0 if change_value is None else label == float(change_value)
    labelled = np.ones(label.shape, bool)
    if change_value is not None and float(change_value) != 0:
        labelled = label != 0
    run = detect(before, after, params=params, grid=grid, raw_mask=True)
    return score_run(run, mask, valid=run.valid, labelled=labelled), run
