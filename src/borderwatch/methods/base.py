"""The method protocol: every score is a fit/apply pair with a declared halo.

Modelled on scikit-learn's estimators: :meth:`Method.fit` takes the scene sample and
returns a small frozen *fitted* value (it pickles, so Dask workers receive it) whose
:meth:`Fitted.score` is applied to every block. :meth:`Method.halo_px` declares the
context in pixels a block needs around it so that the block's scores equal the
whole-scene ones; the engine (:mod:`borderwatch.engine`), not the method, cuts blocks.

Two optional members of a fitted score: ``probability`` (True: the score is a
probability, and a threshold rule name means 0.5) and ``score_at(before, after, valid,
*, origin)``, which the engine calls instead of ``score`` with the block's first pixel
``(row, col)`` on the grid (a network that is not shift-invariant keeps every block
on the scene's pooling grid, :mod:`borderwatch.methods.structure`).

Arrays are ``(bands, rows, cols)`` for images and ``(rows, cols)`` for ``valid`` and
scores; a sample of pixels is ``(bands, n, 1)`` with ``valid`` ``(n, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Fitted", "Method", "Normaliser", "FittedNormaliser"]


@runtime_checkable
class Fitted(Protocol):
    """A fitted score: global statistics plus the per-block arithmetic.

    Attributes
    ----------
    name : str
        Method name (``combined``, ``cva``, ``irmad``, ``index``, ``model``).
    dof : int or None
        Degrees of freedom of a chi-square distributed score (``chi2`` threshold).
    halo_px : int
        Context in pixels the score needs around a block.
    """

    @property
    def name(self) -> str:
        """Method name."""
        ...

    @property
    def dof(self) -> int | None:
        """Degrees of freedom of a chi-square score, else None."""
        ...

    @property
    def halo_px(self) -> int:
        """Context in pixels the score needs around a block."""
        ...

    def score(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Score one block: ``float32 (rows, cols)``, NaN exactly where not ``valid``."""
        ...


class Method(Protocol):
    """An unfitted score method (its options are validated when it is made)."""

    @property
    def name(self) -> str:
        """Method name."""
        ...

    def halo_px(self, pixel_m: float) -> int:
        """Context in pixels its score needs around a block at ``pixel_m`` metres."""
        ...

    def fit(
        self,
        before: np.ndarray,
        after: np.ndarray,
        valid: np.ndarray,
        *,
        band_names: Sequence[str],
        pixel_m: float,
    ) -> Fitted:
        """Global statistics from the scene sample (or the whole scene)."""
        ...


class FittedNormaliser(Protocol):
    """A fitted relative radiometric normalisation of the after date (per pixel)."""

    @property
    def name(self) -> str:
        """Normalisation name."""
        ...

    def apply(self, after: np.ndarray) -> np.ndarray:
        """Return the normalised after date, ``float32 (bands, rows, cols)``."""
        ...


class Normaliser(Protocol):
    """An unfitted normalisation: fit on sample pixels, apply per block (no halo)."""

    @property
    def name(self) -> str:
        """Normalisation name."""
        ...

    def fit(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> FittedNormaliser:
        """Fit on the sample's valid pixels."""
        ...
