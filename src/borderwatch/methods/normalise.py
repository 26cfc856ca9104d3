"""Relative radiometric normalisation of the after date, fitted on the scene sample.

``--normalise histogram`` maps each band of the after date onto the before date's
value distribution (quantile mapping, :func:`borderwatch.engine.align.histogram_match`);
``--normalise irmad`` maps it linearly by orthogonal regression on the IR-MAD
invariant (no-change) pixels (Canty & Nielsen 2008,
doi:10.1016/j.rse.2007.07.013). Both are fitted on the sample's valid pixels and
applied per pixel, so they need no halo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from borderwatch.errors import InputError

__all__ = [
    "FittedHistogram",
    "FittedLinear",
    "HistogramNormaliser",
    "IrmadNormaliser",
    "NORMALISERS",
]

_QUANTILES = np.linspace(0, 100, 1001)


@dataclass(frozen=True)
class FittedHistogram:
    """Per-band quantile tables ``(after_q, before_q)`` (1001 quantiles each)."""

    tables: tuple[tuple[np.ndarray, np.ndarray], ...]
    name: str = "histogram"

    def apply(self, after: np.ndarray) -> np.ndarray:
        """Quantile-mapped after date, ``float32``; NaN stays NaN."""
        out = np.empty(after.shape, np.float32)
        for i, (src, ref) in enumerate(self.tables):
            out[i] = np.interp(after[i], src, ref)
        out[:, ~np.isfinite(after).all(axis=0)] = np.nan
        return out


@dataclass(frozen=True)
class HistogramNormaliser:
    """Histogram matching of the after date onto the before date."""

    name: str = "histogram"

    def fit(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> FittedHistogram:
        """Quantiles of both dates over the sample's valid pixels."""
        tables = []
        for i in range(after.shape[0]):
            src = np.percentile(after[i][valid], _QUANTILES)
            ref = np.percentile(before[i][valid], _QUANTILES)
            src, idx = np.unique(src, return_index=True)
            tables.append((src, ref[idx]))
        return FittedHistogram(tuple(tables))


@dataclass(frozen=True)
class FittedLinear:
    """Per-band ``after' = slope * after + intercept``."""

    slope: np.ndarray
    intercept: np.ndarray
    invariant_pixels: int
    name: str = "irmad"

    def apply(self, after: np.ndarray) -> np.ndarray:
        """Linearly normalised after date, ``float32``."""
        out = np.empty(after.shape, np.float32)
        for i in range(after.shape[0]):
            out[i] = after[i] * np.float32(self.slope[i]) + np.float32(self.intercept[i])
        return out


@dataclass(frozen=True)
class IrmadNormaliser:
    """Orthogonal regression of each band on the IR-MAD invariant pixels.

    Attributes
    ----------
    no_change_prob : float
        A pixel is invariant when its IR-MAD probability of no change exceeds this.
    """

    no_change_prob: float = 0.95
    name: str = "irmad"

    def fit(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> FittedLinear:
        """Fit IR-MAD on the sample, then one orthogonal regression per band.

        Raises
        ------
        InputError
            Fewer than 100 invariant pixels in the sample.
        """
        from borderwatch.methods.irmad import apply_irmad, change_probability, fit_irmad

        model = fit_irmad(before, after, valid, sample=200_000)
        p_change = change_probability(apply_irmad(model, before, after), model.dof)
        inv = valid & (p_change < 1.0 - self.no_change_prob)
        n = int(inv.sum())
        if n < 100:
            raise InputError(
                f"only {n} invariant pixels in the sample; cannot normalise with irmad "
                "(use --normalise histogram or none)"
            )
        slope = np.ones(after.shape[0])
        intercept = np.zeros(after.shape[0])
        for i in range(after.shape[0]):
            x = after[i][inv].astype(np.float64)
            y = before[i][inv].astype(np.float64)
            cov = np.cov(x, y)
            sxx, syy, sxy = cov[0, 0], cov[1, 1], cov[0, 1]
            if sxy != 0:
                slope[i] = (syy - sxx + np.hypot(syy - sxx, 2 * sxy)) / (2 * sxy)
            intercept[i] = y.mean() - slope[i] * x.mean()
        return FittedLinear(slope, intercept, n)


#: ``--normalise`` value -> normaliser (``none``: no normalisation).
NORMALISERS: dict[str, type[HistogramNormaliser] | type[IrmadNormaliser]] = {
    "histogram": HistogramNormaliser,
    "irmad": IrmadNormaliser,
}
