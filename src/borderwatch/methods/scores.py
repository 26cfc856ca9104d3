"""The unsupervised scores as fit/apply pairs: ``combined``, ``cva``, ``irmad``, ``index``.

Each ``*Method`` is the unfitted method (options only); its ``fit`` takes the scene
sample and returns a frozen ``Fitted*`` value whose ``score`` runs on any block. On a
block read with ``halo_px`` pixels of context the interior equals the whole-scene
score computed with the same statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from borderwatch.methods.arrays import band_moments, by_row_strips
from borderwatch.methods.combined import (
    CombinedModel,
    apply_combined,
    combined_halo_px,
    fit_combined,
    rank_verification,
)
from borderwatch.methods.cva import cva_score
from borderwatch.methods.indices import index_score, index_stats
from borderwatch.methods.irmad import IRMADModel, apply_irmad, fit_irmad

__all__ = [
    "CombinedMethod",
    "CvaMethod",
    "FittedCombined",
    "FittedCva",
    "FittedIndex",
    "FittedIrmad",
    "IndexMethod",
    "IrmadMethod",
]


def _valid_pixels(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(bands, n)`` values of the valid pixels (no copy when all are valid)."""
    return x.reshape(x.shape[0], -1) if valid.all() else x[:, valid]


# --------------------------------------------------------------------------- combined
@dataclass(frozen=True)
class FittedCombined:
    """Fitted default score (:func:`~.combined.apply_combined`) and its rank twin."""

    model: CombinedModel
    pixel_m: float
    name: str = "combined"
    dof: int | None = None

    @property
    def halo_px(self) -> int:
        """Context of the score's smoothing, pixels."""
        return combined_halo_px(self.pixel_m)

    def score(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Score a block with the combined model: ``float32``, NaN where invalid."""
        return apply_combined(self.model, before, after, valid, pixel_m=self.pixel_m)

    def verify(
        self, before: np.ndarray, after: np.ndarray, valid: np.ndarray, where: np.ndarray
    ) -> np.ndarray:
        """Rank-model score at ``where`` (:func:`~.combined.rank_verification`)."""
        return rank_verification(
            self.model, before, after, valid, pixel_m=self.pixel_m, where=where
        )


@dataclass(frozen=True)
class CombinedMethod:
    """The default score: standardised change magnitude and construction direction."""

    name: str = "combined"

    def halo_px(self, pixel_m: float) -> int:
        """Context of the smoothing (:func:`borderwatch.methods.combined.combined_halo_px`)."""
        return combined_halo_px(pixel_m)

    def fit(
        self,
        before: np.ndarray,
        after: np.ndarray,
        valid: np.ndarray,
        *,
        band_names: Sequence[str],
        pixel_m: float,
    ) -> FittedCombined:
        """Per-date and difference moments, rank tables and index statistics."""
        return FittedCombined(fit_combined(before, after, valid, band_names=band_names), pixel_m)


# --------------------------------------------------------------------------- cva
@dataclass(frozen=True)
class FittedCva:
    """Per-band mean and standard deviation of the difference ``after - before``."""

    mean: np.ndarray
    std: np.ndarray
    name: str = "cva"
    dof: int | None = None
    halo_px: int = 0

    def score(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Standardised change-vector magnitude, ``float32``, NaN where invalid."""

        def part(rows: slice) -> np.ndarray:
            diff = after[:, rows] - before[:, rows]
            return cva_score(self.mean, self.std, diff.astype(np.float32, copy=False), valid[rows])

        return by_row_strips(part, valid.shape)


@dataclass(frozen=True)
class CvaMethod:
    """Change vector analysis of the standardised per-band difference (Malila 1980)."""

    name: str = "cva"

    def halo_px(self, pixel_m: float) -> int:
        """Per-pixel score: no context."""
        return 0

    def fit(
        self,
        before: np.ndarray,
        after: np.ndarray,
        valid: np.ndarray,
        *,
        band_names: Sequence[str],
        pixel_m: float,
    ) -> FittedCva:
        """Moments of the per-band difference over the valid sample pixels."""
        diff = after.astype(np.float32, copy=False) - before.astype(np.float32, copy=False)
        return FittedCva(*band_moments(_valid_pixels(diff, valid)))


# --------------------------------------------------------------------------- irmad
@dataclass(frozen=True)
class FittedIrmad:
    """Fitted IR-MAD statistics (:class:`borderwatch.methods.irmad.IRMADModel`)."""

    model: IRMADModel
    dof: int | None
    name: str = "irmad"
    halo_px: int = 0

    def score(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Chi-square statistic of the standardised MAD variates, NaN where invalid."""
        out = apply_irmad(self.model, before, after)
        out[~valid] = np.nan
        return out


@dataclass(frozen=True)
class IrmadMethod:
    """Iteratively reweighted MAD (Nielsen 2007, doi:10.1109/TIP.2006.888195).

    Attributes
    ----------
    max_iter : int
        Reweighting iterations at most.
    tol : float
        Convergence tolerance of the canonical correlations.
    """

    max_iter: int = 30
    tol: float = 1e-4
    name: str = "irmad"

    def halo_px(self, pixel_m: float) -> int:
        """Per-pixel score: no context."""
        return 0

    def fit(
        self,
        before: np.ndarray,
        after: np.ndarray,
        valid: np.ndarray,
        *,
        band_names: Sequence[str],
        pixel_m: float,
    ) -> FittedIrmad:
        """IR-MAD canonical vectors and robust MAD scales on the sample."""
        model = fit_irmad(
            before, after, valid, max_iter=self.max_iter, tol=self.tol, sample=200_000
        )
        return FittedIrmad(model, model.dof)


# --------------------------------------------------------------------------- index
@dataclass(frozen=True)
class FittedIndex:
    """Median and standard deviation of each index difference (after - before)."""

    centre: dict[str, float]
    scale: dict[str, float]
    band_names: tuple[str, ...]
    name: str = "index"
    dof: int | None = None
    halo_px: int = 0

    def score(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """One-sided construction-direction score, NaN where invalid."""
        out = index_score(
            before, after, centre=self.centre, scale=self.scale, band_names=self.band_names
        )
        out[~valid] = np.nan
        return out


@dataclass(frozen=True)
class IndexMethod:
    """Construction-direction index differences (:func:`~.indices.index_change`)."""

    name: str = "index"

    def halo_px(self, pixel_m: float) -> int:
        """Per-pixel score: no context."""
        return 0

    def fit(
        self,
        before: np.ndarray,
        after: np.ndarray,
        valid: np.ndarray,
        *,
        band_names: Sequence[str],
        pixel_m: float,
    ) -> FittedIndex:
        """Index-difference statistics on the sample."""
        centre, scale = index_stats(before, after, valid, band_names=band_names)
        return FittedIndex(centre, scale, tuple(band_names))
