"""``--method structure``: the learned structure-change network as a fit/apply method.

``fit`` loads the ONNX model (:mod:`borderwatch.structure.infer`; the shipped
:data:`~borderwatch.structure.infer.DEFAULT_MODEL` unless another file is given), finds
red, green and blue by band role (:func:`~borderwatch.methods.indices.band_roles`) and
takes each date's per-band mean and standard deviation from the scene sample, so every
block is standardised alike. ``score`` resamples a block to the model's pixel size
(0.5 m) where the grid differs, applies the network and resamples the probability
back; the halo (:func:`structure_halo_px`, 32 m of context) keeps block edges out of
the result, and :meth:`FittedStructure.score_at` (which the engine calls with the
block's position) pads each block so that the network's pooling grid is the same in
every block: a U-Net is not shift-invariant, and blocks cut on another phase of its
32-pixel stride would show seams. The score is the probability of a new structure, 0-1,
thresholded at 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from borderwatch.errors import InputError
from borderwatch.methods.indices import band_roles
from borderwatch.structure.infer import DEFAULT_MODEL, ModelInfo, load_model_info, predict
from borderwatch.structure.prep import date_moments, stack_input

__all__ = [
    "HALO_M",
    "MAX_PIXEL_M",
    "STRUCTURE_ROLES",
    "FittedStructure",
    "StructureMethod",
    "structure_halo_px",
]

#: Context read around every block, metres (64 pixels of the 0.5 m model).
HALO_M = 32.0
#: Coarsest analysis pixel the network is applied at, metres ("about 2 m or finer"):
#: coarser, a building is a few pixels and 0.5 m resampling would only blow up the grid.
MAX_PIXEL_M = 2.5
#: Band roles the shipped model takes (a model file declares its own).
STRUCTURE_ROLES = ("red", "green", "blue")
#: Relative pixel-size difference below which a block is not resampled.
_SAME_SCALE = 0.02


def structure_halo_px(pixel_m: float) -> int:
    """Halo in pixels at ``pixel_m`` metres: :data:`HALO_M` of context."""
    return int(math.ceil(HALO_M / pixel_m))


def _zoom(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample ``(..., rows, cols)`` to ``shape`` (bilinear, pixel-area aligned).

    Downsampling first smooths with a Gaussian of the scale's width (anti-aliasing).
    """
    f = (shape[0] / x.shape[-2], shape[1] / x.shape[-1])
    lead = (0.0,) * (x.ndim - 2)
    if f[0] < 1 or f[1] < 1:
        sigma = tuple(max((1 / s - 1) / 2, 0.0) for s in f)
        x = ndimage.gaussian_filter(x, (*lead, *sigma), mode="nearest")
    zoom = (*(1.0,) * (x.ndim - 2), *f)
    out = ndimage.zoom(x, zoom, order=1, mode="nearest", grid_mode=True)
    return out[..., : shape[0], : shape[1]]


@dataclass(frozen=True)
class FittedStructure:
    """A structure model with the scene's band indexes and per-date moments.

    Attributes
    ----------
    model : ModelInfo
        The model file's declaration.
    bands : tuple of int
        Indexes of red, green, blue in the inputs.
    moments : tuple
        ``((mean, std) before, (mean, std) after)``, ``float32 (3,)`` each.
    pixel_m : float
        Analysis pixel size, metres.
    """

    model: ModelInfo
    bands: tuple[int, ...]
    moments: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    pixel_m: float
    name: str = "structure"
    dof: int | None = None
    #: The score is a probability: rule thresholds mean 0.5.
    probability: bool = True

    @property
    def halo_px(self) -> int:
        """Context the network needs around a block, pixels."""
        return structure_halo_px(self.pixel_m)

    @property
    def model_sha256(self) -> str:
        """SHA-256 of the model file (recorded in the run's metadata)."""
        return self.model.sha256

    @property
    def calibration(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """The model's object calibration (confidence = share of real objects), if any."""
        return self.model.calibration

    @property
    def model_file(self) -> str:
        """The model file."""
        return self.model.path

    def score(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Probability of a new structure per pixel, ``float32``, NaN where invalid."""
        return self.score_at(before, after, valid, origin=(0, 0))

    def score_at(
        self,
        before: np.ndarray,
        after: np.ndarray,
        valid: np.ndarray,
        *,
        origin: tuple[int, int],
    ) -> np.ndarray:
        """:meth:`score` of a block whose first pixel is ``origin`` (row, col) of the grid.

        At the model's pixel size the block is padded (reflection) before its first row
        and column to the network's stride, so that every block is seen on the pooling
        grid of the whole scene and blocks agree where they overlap.
        """
        idx = list(self.bands)
        x = stack_input(before[idx], after[idx], self.moments)
        x[:, ~valid] = 0.0
        rows, cols = valid.shape
        f = self.pixel_m / self.model.pixel_m
        if abs(f - 1) > _SAME_SCALE:
            shape = (max(round(rows * f), 1), max(round(cols * f), 1))
            prob = _zoom(predict(self.model, _zoom(x, shape)), (rows, cols))
        else:
            m = self.model.multiple
            pr, pc = origin[0] % m, origin[1] % m
            if pr or pc:
                pad = ((0, 0), (pr, 0), (pc, 0))
                one = min(rows, cols) == 1
                x = np.pad(x, pad, mode="edge") if one else np.pad(x, pad, mode="reflect")
            prob = predict(self.model, x)[pr:, pc:]
        out = np.clip(prob, 0.0, 1.0).astype(np.float32)
        out[~valid] = np.nan
        return out


@dataclass(frozen=True)
class StructureMethod:
    """The structure-change network (``--method structure``).

    Attributes
    ----------
    model : str or None
        ONNX model file; None for the shipped model.
    """

    model: str | None = None
    name: str = "structure"

    @property
    def path(self) -> Path:
        """The model file used."""
        return Path(self.model) if self.model is not None else DEFAULT_MODEL

    def halo_px(self, pixel_m: float) -> int:
        """Context in pixels at ``pixel_m``: :data:`HALO_M` metres."""
        return structure_halo_px(pixel_m)

    def fit(
        self,
        before: np.ndarray,
        after: np.ndarray,
        valid: np.ndarray,
        *,
        band_names: Sequence[str],
        pixel_m: float,
    ) -> FittedStructure:
        """Load the model, map its band roles, take each date's moments on the sample.

        Raises
        ------
        InputError
            The model file is not a structure model, the inputs lack a band role the
            model takes (red, green, blue), or the pixel is coarser than
            :data:`MAX_PIXEL_M`.
        """
        info = load_model_info(self.path)
        if pixel_m > MAX_PIXEL_M:
            raise InputError(
                f"{info.path}: the structure model is for imagery of {MAX_PIXEL_M:g} m or "
                f"finer; the analysis pixel is {pixel_m:.3g} m (use another --method, or "
                "--resolution)"
            )
        roles = band_roles(band_names, n_bands=before.shape[0])
        missing = [r for r in info.band_roles if r not in roles]
        if missing:
            raise InputError(
                f"{info.path}: the structure model takes bands {list(info.band_roles)}; the "
                f"inputs' bands {list(band_names) or before.shape[0]} have no {missing} "
                "(name the bands red, green, blue, or use another --method)"
            )
        idx = tuple(roles[r] for r in info.band_roles)
        v = valid if valid.any() else None
        moments = (date_moments(before[list(idx)], v), date_moments(after[list(idx)], v))
        return FittedStructure(info, idx, moments, float(pixel_m))
