"""The default ``combined`` score and its rank-model twin: fitted statistics, per-block apply.

The score is ``sqrt((cva**2 + index**2) / 2)`` of the per-date standardised bands
and the one-sided index score, smoothed by :data:`~borderwatch.methods.smoothing.SMOOTH_SIGMA_M`;
:func:`rank_verification` is the same formula under a normal-score radiometric model.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import special

from borderwatch.methods.arrays import band_moments, by_row_strips, check_pair, pixels_at
from borderwatch.methods.indices import index_score, index_stats
from borderwatch.methods.smoothing import smooth_score_at, smoothed, smoothing_sigma_px
from borderwatch.objects.morphology import square_dilation

__all__ = [
    "CombinedModel",
    "NORMAL_SCORE_QUANTILES",
    "NORMAL_SCORE_SAMPLE_PX",
    "apply_combined",
    "combined",
    "combined_halo_px",
    "fit_combined",
    "normal_score_table",
    "normal_scores",
    "rank_verification",
]


@dataclass(frozen=True)
class CombinedModel:
    """Global statistics of the ``combined`` score, fitted once per scene.

    Small and picklable, so a block-wise or Dask run fits it on a sample of valid
    pixels and applies it to every block (:func:`apply_combined`).

    Attributes
    ----------
    before_mean, before_std, after_mean, after_std : numpy.ndarray
        ``float64 (bands,)`` per-band moments of each date over the valid pixels.
    diff_mean, diff_std : numpy.ndarray
        ``float64 (bands,)`` moments of the difference of the standardised dates.
    before_q, after_q : numpy.ndarray
        ``float64 (bands, NORMAL_SCORE_QUANTILES)`` per-band quantiles of each date at
        the probabilities of :func:`normal_score_table` (for :func:`rank_verification`),
        from at most :data:`NORMAL_SCORE_SAMPLE_PX` valid pixels (every k-th).
    rank_diff : numpy.ndarray
        ``float64 (2, bands)`` mean and standard deviation of the difference of the
        normal scores.
    index_centre, index_scale : dict
        Median and standard deviation of each index difference (after - before).
    band_names : tuple of str
        Band names the indices were chosen from.
    """

    before_mean: np.ndarray
    before_std: np.ndarray
    after_mean: np.ndarray
    after_std: np.ndarray
    diff_mean: np.ndarray
    diff_std: np.ndarray
    before_q: np.ndarray
    after_q: np.ndarray
    rank_diff: np.ndarray
    index_centre: dict[str, float]
    index_scale: dict[str, float]
    band_names: tuple[str, ...]


_ArrayPair = tuple[np.ndarray, np.ndarray]


#: Quantiles per band that :func:`fit_combined` keeps for the normal-score transform.
NORMAL_SCORE_QUANTILES = 1024


#: Most valid pixels (every k-th) :func:`fit_combined` fits the rank model on.
NORMAL_SCORE_SAMPLE_PX = 1 << 20


def normal_score_table(n: int = NORMAL_SCORE_QUANTILES) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(i + 0.5) / n`` and their standard normal quantiles.

    The outermost normal scores are about +-3.3 for the default 1024 quantiles:
    values beyond the first and last quantile are clamped there, so a handful of
    extreme pixels cannot dominate a score.
    """
    probs = (np.arange(n) + 0.5) / n
    return probs, special.ndtri(probs)


def normal_scores(image: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Per-band normal-score (Gaussian rank) transform with fitted quantile tables.

    Maps each value through the band's empirical distribution function onto the
    standard normal scale, so any monotone per-band change between dates (gain,
    offset, haze, a non-linear stretch, a seasonal brightening that keeps the order
    of surfaces) cancels. Tied quantiles (discrete data, saturation) map to the mean
    of their normal scores.

    Parameters
    ----------
    image : numpy.ndarray
        ``(bands, rows, cols)``.
    quantiles : numpy.ndarray
        ``(bands, n)`` from :func:`fit_combined` at :func:`normal_score_table`.

    Returns
    -------
    numpy.ndarray
        ``float32 (bands, rows, cols)``; NaN stays NaN.
    """
    _, zq = normal_score_table(quantiles.shape[1])
    out = np.empty(image.shape, np.float32)
    for k in range(image.shape[0]):
        xp, inverse = np.unique(quantiles[k], return_inverse=True)
        fp = np.bincount(inverse, weights=zq) / np.bincount(inverse)
        out[k] = _interp(image[k], xp, fp)
    return out


def _interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp(x, xp, fp)``, through a table of every value for integer data.

    Digital numbers (an unshifted date read from an integer file) take few distinct
    values: interpolating each integer of their range once and looking the pixels up
    gives the same numbers several times faster than a binary search per pixel.
    """
    if x.size >= 1024:
        lo, hi = float(x.min()), float(x.max())  # NaN anywhere: comparisons are False
        exact = -(2.0**24) < lo and hi < 2.0**24  # integers exact in float32 too
        if exact and hi - lo < x.size / 4 and np.array_equal(x, np.floor(x)):
            table = np.interp(np.arange(lo, hi + 1, dtype=np.float64), xp, fp)
            return table[(x - lo).astype(np.intp)]
    return np.interp(x, xp, fp)


def _rank_side(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantile tables ``(bands, n)`` of ``(bands, pixels)`` samples and their normal scores."""
    probs, _ = normal_score_table()
    q = np.quantile(x.astype(np.float64), probs, axis=1).T
    return q, normal_scores(x[:, :, None], q)[:, :, 0]


def fit_combined(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    band_names: Sequence[str] = (),
) -> CombinedModel:
    """Global statistics of the ``combined`` score over the valid pixels.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on the same grid, or ``(bands, n, 1)`` samples of
        valid pixels (block-wise runs fit on a random sample).
    valid : numpy.ndarray
        ``bool (rows, cols)``.
    band_names : sequence of str
        Band names (roles for the indices).

    Returns
    -------
    CombinedModel
    """
    check_pair(before, after, valid)
    b, a = before[:, valid], after[:, valid]
    # The rank model from every k-th valid pixel: 1024 quantiles need no more than
    # about a million, and the cost then stays flat however large the scene.
    step = -(-b.shape[1] // NORMAL_SCORE_SAMPLE_PX)

    # The before date's moments and rank side (at most NORMAL_SCORE_SAMPLE_PX pixels)
    # and the index statistics run on a second thread meanwhile: numpy's reductions,
    # sorting and interpolation release the GIL.
    def before_side() -> tuple[_ArrayPair, _ArrayPair, tuple[dict[str, float], dict[str, float]]]:
        stats = index_stats(before, after, valid, band_names=band_names)
        return band_moments(b), _rank_side(b[:, ::step]), stats

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="borderwatch-fit") as pool:
        pending = pool.submit(before_side)
        am, as_ = band_moments(a)
        aq, a_scores = _rank_side(a[:, ::step])
        (bm, bs), (bq, b_scores), (centre, scale) = pending.result()
    d = (a - am[:, None]) / as_[:, None] - (b - bm[:, None]) / bs[:, None]
    dm, ds = band_moments(d)
    rank_diff = np.stack(band_moments(a_scores - b_scores))
    return CombinedModel(
        bm, bs, am, as_, dm, ds, bq, aq, rank_diff, centre, scale, tuple(band_names)
    )


def combined_halo_px(pixel_m: float | None) -> int:
    """Pixels of context :func:`apply_combined` needs around a block (its smoothing)."""
    sigma_px = smoothing_sigma_px(pixel_m)
    return int(4.0 * sigma_px + 0.5) + 1 if sigma_px >= 0.5 else 0


def apply_combined(
    model: CombinedModel,
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    pixel_m: float | None = None,
) -> np.ndarray:
    """Score a scene or a block with fitted ``combined`` statistics.

    Parameters
    ----------
    model : CombinedModel
        From :func:`fit_combined`.
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on the same grid.
    valid : numpy.ndarray
        ``bool (rows, cols)``.
    pixel_m : float, optional
        Pixel size in metres (for the smoothing); default no smoothing.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``, NaN at invalid pixels. On a block read with
        :func:`combined_halo_px` pixels of halo, the interior equals the whole-scene score.
    """

    def raw(rows: slice) -> np.ndarray:
        b, a = before[:, rows], after[:, rows]
        f32 = np.float32
        d = np.empty(b.shape, f32)
        tmp = np.empty(b.shape[1:], f32)
        for k in range(b.shape[0]):  # band by band, without whole-stack temporaries
            np.subtract(a[k].astype(f32, copy=False), f32(model.after_mean[k]), out=d[k])
            d[k] /= f32(model.after_std[k])
            np.subtract(b[k].astype(f32, copy=False), f32(model.before_mean[k]), out=tmp)
            tmp /= f32(model.before_std[k])
            d[k] -= tmp
            d[k] -= f32(model.diff_mean[k])
            d[k] /= f32(model.diff_std[k])
        return _with_index(model, d, b, a)

    return smoothed(by_row_strips(raw, valid.shape), valid, pixel_m)


def rank_verification(
    model: CombinedModel,
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    pixel_m: float | None = None,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """Score with the ``combined`` formula under a rank (normal-score) radiometric model.

    Same as :func:`apply_combined` but each date is standardised per band by its
    normal scores (:func:`normal_scores`) instead of its mean and standard deviation,
    so any change that keeps the order of surfaces within a band (gain, offset, haze,
    a seasonal brightening of bare roofs that vegetation does not share) cancels.
    Linear standardisation over-scores bright outliers under such changes; the rank
    model over-scores noise where a histogram is dense. The pipeline therefore keeps
    an object only if its peak reaches :data:`borderwatch.objects.classify.MIN_PEAK_SCORE`
    under both (see :func:`borderwatch.objects.classify.classify_objects`).

    Parameters
    ----------
    where : numpy.ndarray, optional
        ``bool (rows, cols)``: only these pixels are needed (the change mask, for
        per-object peaks). The per-pixel transform then runs only within the smoothing
        radius of them, and the result is NaN elsewhere; values at ``where`` equal the
        full computation. Default: every pixel.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``, NaN at invalid pixels; needs the same halo as
        :func:`apply_combined`.
    """
    f32 = np.float32
    if where is not None:
        where = np.asarray(where, dtype=bool)
        radius = max(combined_halo_px(pixel_m) - 1, 0)  # gaussian_filter's reach
        near = square_dilation(where, radius)
        sub = near & valid
        near_raw = np.zeros(valid.shape, f32)
        at = np.flatnonzero(sub)
        if at.size:  # the same formula on the (bands, n, 1) pixels near ``where``
            b, a = pixels_at(before, at)[:, :, None], pixels_at(after, at)[:, :, None]
            part = rank_verification(model, b, a, np.ones((at.size, 1), bool))
            near_raw.ravel()[at] = part[:, 0]
        # Every pixel within ``radius`` of ``where`` holds its full value, so smoothing
        # at ``where`` alone gives the full computation's values there.
        out = np.full(valid.shape, np.nan, f32)
        asked = np.flatnonzero(where)
        sigma_px = smoothing_sigma_px(pixel_m)
        out.ravel()[asked] = smooth_score_at(near_raw, valid, asked, sigma_px=sigma_px)
        return out

    def raw(rows: slice) -> np.ndarray:
        b, a = before[:, rows], after[:, rows]
        d = normal_scores(a, model.after_q) - normal_scores(b, model.before_q)
        d -= model.rank_diff[0][:, None, None].astype(f32)
        d /= model.rank_diff[1][:, None, None].astype(f32)
        return _with_index(model, d, b, a)

    return smoothed(by_row_strips(raw, valid.shape), valid, pixel_m)


def _with_index(
    model: CombinedModel, d: np.ndarray, before: np.ndarray, after: np.ndarray
) -> np.ndarray:
    """``sqrt((cva**2 + index**2) / 2)`` of a standardised difference (unsmoothed)."""
    np.copyto(d, 0.0, where=np.isnan(d))  # invalid pixels; d is this function's own
    c = np.sqrt(np.einsum("brc,brc->rc", d, d) / d.shape[0])
    i = index_score(
        before,
        after,
        centre=model.index_centre,
        scale=model.index_scale,
        band_names=model.band_names,
    )
    return np.sqrt((c * c + i * i) / 2).astype(np.float32, copy=False)


def combined(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    band_names: Sequence[str] = (),
    pixel_m: float | None = None,
) -> np.ndarray:
    """Default score: spectral change magnitude and construction direction together.

    ``sqrt((cva**2 + index**2) / 2)``: the standardised change-vector magnitude
    (:func:`cva` of the per-date standardised bands, any change of any band) and the
    one-sided index score (:func:`borderwatch.methods.indices.index_change`: brightness or
    built-up gain, vegetation loss) on the same standardised scale. Pixels that changed
    *and* changed the way construction changes them score highest; a strong change in
    the other direction (re-greening, shadow) still scores through the CVA term at
    ``1/sqrt(2)`` of its weight. The result is smoothed with a Gaussian of
    :data:`SMOOTH_SIGMA_M` metres.

    IR-MAD is not part of the default: on the shared benchmark data its statistic
    separates change worse than the standardised CVA (see benchmarks/results).

    Equals ``apply_combined(fit_combined(...), ...)``; a block-wise run fits the
    global statistics once (:func:`fit_combined`) and applies them per block.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on the same grid.
    valid : numpy.ndarray
        ``bool (rows, cols)``.
    band_names : sequence of str
        Band names (roles for the indices).
    pixel_m : float, optional
        Pixel size in metres (for the smoothing); default no smoothing.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``, NaN at invalid pixels.
    """
    model = fit_combined(before, after, valid, band_names=band_names)
    return apply_combined(model, before, after, valid, pixel_m=pixel_m)
