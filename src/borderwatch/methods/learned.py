"""``--model``: a trained per-pixel change classifier as a fit/apply method.

:func:`borderwatch.methods.training.pixel_features` computes the classifier's features from
per-scene statistics (band moments, the standardised difference, index and direction
statistics, the ``combined`` model). Here those statistics are fitted on the scene
sample and the features computed per block, so a model runs at any scene size; the
score is the model's change probability (0-1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from borderwatch.errors import InputError
from borderwatch.methods.arrays import band_moments
from borderwatch.methods.combined import (
    CombinedModel,
    apply_combined,
    combined_halo_px,
    fit_combined,
)
from borderwatch.methods.indices import index_score, index_stats, match_bands
from borderwatch.objects.construction import DirectionModel, apply_direction, fit_direction

__all__ = [
    "FEATURE_NAMES",
    "FeatureModel",
    "FittedLearned",
    "LearnedMethod",
    "features_halo_px",
    "fit_features",
    "wide_sigma_px",
]

#: Names of the features after the per-band differences.
FEATURE_NAMES = ("cva", "index", "direction", "combined", "combined_5m")


def wide_sigma_px(pixel_m: float) -> float:
    """Sigma (pixels) of the 5 m context feature (``combined_5m``)."""
    return max(5.0 / pixel_m, 1.0)


def _moments(x: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return band_moments(x.reshape(x.shape[0], -1) if valid.all() else x[:, valid])


def _z(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    f32 = np.float32
    return (x.astype(f32) - mean[:, None, None].astype(f32)) / std[:, None, None].astype(f32)


@dataclass(frozen=True)
class FeatureModel:
    """Scene statistics of the classifier's per-pixel features (fitted once, applied per block).

    The features (:data:`FEATURE_NAMES` after one ``dz_<band>`` per band): each band's
    difference of the per-date standardised values, the CVA of that difference, the
    one-sided index score, the construction direction, the ``combined`` score and its
    5 m Gaussian context.
    """

    band_names: tuple[str, ...]
    pixel_m: float
    before_moments: tuple[np.ndarray, np.ndarray]
    after_moments: tuple[np.ndarray, np.ndarray]
    zdiff_moments: tuple[np.ndarray, np.ndarray]
    index: tuple[dict[str, float], dict[str, float]]
    direction: DirectionModel
    combined: CombinedModel

    @property
    def halo_px(self) -> int:
        """The combined score's smoothing plus the 5 m context filter, pixels."""
        return features_halo_px(self.pixel_m)

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names, in stack order."""
        return (*(f"dz_{n}" for n in self.band_names), *FEATURE_NAMES)

    def features(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Feature stack ``float32 (n_features, rows, cols)``; 0 at invalid pixels."""
        zb = _z(before, *self.before_moments)
        za = _z(after, *self.after_moments)
        zb[:, ~valid] = np.nan
        za[:, ~valid] = np.nan
        diff = za - zb
        dz = _z(diff, *self.zdiff_moments)
        c = np.sqrt(np.einsum("brc,brc->rc", np.nan_to_num(dz), np.nan_to_num(dz)) / dz.shape[0])
        centre, scale = self.index
        i = index_score(before, after, centre=centre, scale=scale, band_names=self.band_names)
        d = apply_direction(self.direction, before, after, valid)
        comb = np.nan_to_num(
            apply_combined(self.combined, before, after, valid, pixel_m=self.pixel_m)
        )
        wide = ndimage.gaussian_filter(comb, wide_sigma_px(self.pixel_m))
        i = np.where(valid, i, 0.0)
        c = np.where(valid, c, 0.0)
        return np.concatenate([np.nan_to_num(diff), np.stack([c, i, d, comb, wide])]).astype(
            np.float32
        )


def features_halo_px(pixel_m: float) -> int:
    """Context (pixels) of the features: the combined smoothing plus the 5 m filter."""
    return combined_halo_px(pixel_m) + int(4.0 * wide_sigma_px(pixel_m) + 0.5)


def fit_features(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    band_names: Sequence[str],
    pixel_m: float,
) -> FeatureModel:
    """Fit the feature statistics on a scene or its sample (``(bands, n, 1)`` pixels)."""
    bm, am = _moments(before, valid), _moments(after, valid)
    zb, za = _z(before, *bm), _z(after, *am)
    return FeatureModel(
        tuple(band_names),
        pixel_m,
        bm,
        am,
        _moments(za - zb, valid),
        index_stats(before, after, valid, band_names=band_names),
        fit_direction(before, after, valid, band_names=band_names),
        fit_combined(before, after, valid, band_names=band_names),
    )


@dataclass(frozen=True)
class FittedLearned:
    """A trained classifier with the scene statistics of its features."""

    estimator: Any = field(repr=False)
    feature_model: FeatureModel
    model_sha256: str
    name: str = "model"
    dof: int | None = None
    #: Indexes of the inputs' bands in the model's band order.
    bands: tuple[int, ...] | None = None

    @property
    def halo_px(self) -> int:
        """Context of the features, pixels."""
        return self.feature_model.halo_px

    def score(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Change probability per pixel, ``float32``, NaN where invalid."""
        if self.bands is not None:
            before, after = before[list(self.bands)], after[list(self.bands)]
        feats = self.feature_model.features(before, after, valid)
        flat = feats.reshape(feats.shape[0], -1).T
        prob = self.estimator.predict_proba(flat)[:, 1]
        out = prob.reshape(valid.shape).astype(np.float32)
        out[~valid] = np.nan
        return out


@dataclass(frozen=True)
class LearnedMethod:
    """A model file written by ``borderwatch train`` (:func:`~.training.save_model`).

    Attributes
    ----------
    path : str
        The model file (a pickle: trusted files only).
    """

    path: str
    name: str = "model"

    def halo_px(self, pixel_m: float) -> int:
        """Return the context in pixels: the smoothing plus the 5 m context filter."""
        return features_halo_px(pixel_m)

    def fit(
        self,
        before: np.ndarray,
        after: np.ndarray,
        valid: np.ndarray,
        *,
        band_names: Sequence[str],
        pixel_m: float,
    ) -> FittedLearned:
        """Load the model, match its bands, fit the feature statistics on the sample.

        The inputs' bands are matched to the model's by name, else by role
        (:func:`~borderwatch.methods.indices.match_bands`), and taken in the model's
        order; extra input bands are left out.

        Raises
        ------
        InputError
            The file is not a model, or a band the model was trained on is not among
            the inputs' (``--bands`` names them).
        """
        from borderwatch.methods.training import load_model

        model = load_model(self.path)
        idx = match_bands(model.band_names, band_names)
        if idx is None:
            raise InputError(
                f"{self.path}: model was trained on bands {list(model.band_names)}, the inputs "
                f"have {list(band_names)} and no match by name or role; give imagery with "
                "the model's bands, or name the inputs' bands with --bands"
            )
        sel = list(idx)
        return FittedLearned(
            model.estimator,
            fit_features(
                before[sel], after[sel], valid, band_names=model.band_names, pixel_m=pixel_m
            ),
            hashlib.sha256(Path(self.path).read_bytes()).hexdigest(),
            bands=None if idx == tuple(range(len(band_names))) else idx,
        )
