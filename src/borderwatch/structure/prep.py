"""Input preparation shared by training and inference: scale and per-date standardisation.

The network sees red, green, blue of each date standardised per band by that date's
mean and standard deviation (per patch in training, per scene sample at inference, so
a block's input does not depend on where the block was cut) at :data:`MODEL_PIXEL_M`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MODEL_PIXEL_M", "date_moments", "stack_input"]

#: Pixel size the network is trained and applied at, metres.
MODEL_PIXEL_M = 0.5
#: Smallest standard deviation a date is divided by (digital numbers).
_MIN_STD = 1e-3


def date_moments(rgb: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation (``float32 (3,)`` each) of one date.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(3, rows, cols)`` red, green, blue (any units).
    valid : numpy.ndarray, optional
        ``bool (rows, cols)``; all pixels when omitted.
    """
    flat = rgb.reshape(rgb.shape[0], -1) if valid is None else rgb[:, valid]
    flat = flat.astype(np.float64, copy=False)
    mean, std = flat.mean(axis=1), flat.std(axis=1)
    return mean.astype(np.float32), np.maximum(std, _MIN_STD).astype(np.float32)


def stack_input(
    before: np.ndarray,
    after: np.ndarray,
    moments: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Return the network input ``float32 (6, rows, cols)``: standardised before, after RGB.

    Non-finite values (invalid pixels) become 0, the standardised mean.
    """
    parts = []
    for x, (mean, std) in zip((before, after), moments, strict=True):
        z = (x.astype(np.float32) - mean[:, None, None]) / std[:, None, None]
        parts.append(z)
    out = np.concatenate(parts)
    out[~np.isfinite(out)] = 0.0
    return out
