"""Change vector analysis (Malila 1980): the one CVA arithmetic for whole arrays and blocks.

References
----------
.. [1] Malila, W. A. (1980). Change vector analysis: an approach for detecting forest
   changes with Landsat. LARS Symposia, 385.
"""

from __future__ import annotations

import numpy as np

from borderwatch.methods.arrays import band_moments, check_pair

__all__ = [
    "cva",
    "cva_score",
    "standardise_bands",
]


def standardise_bands(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each band centred on its valid mean and divided by its valid standard deviation.

    Returns
    -------
    numpy.ndarray
        ``float32 (bands, rows, cols)``; NaN at invalid pixels.
    """
    img = image.astype(np.float32)
    vals = img[:, valid].astype(np.float64)
    mean = vals.mean(axis=1)
    std = vals.std(axis=1)
    std[std == 0] = 1.0
    out = (img - mean[:, None, None].astype(np.float32)) / std[:, None, None].astype(np.float32)
    out[:, ~valid] = np.nan
    return out


def cva(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Change vector magnitude of the standardised difference.

    Returns the Euclidean norm over bands of the per-band difference standardised
    over the valid pixels (:func:`cva_score`),
    divided by ``sqrt(bands)`` so the score's scale does not depend on band count.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on the same grid.
    valid : numpy.ndarray
        ``bool (rows, cols)``.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)`` score, NaN at invalid pixels.

    Examples
    --------
    >>> import numpy as np
    >>> b = np.zeros((2, 4, 4)); a = b.copy(); a[:, 0, 0] = 10
    >>> s = cva(b, a, np.ones((4, 4), bool))
    >>> int(np.nanargmax(s))
    0
    """
    check_pair(before, after, valid)
    diff = after.astype(np.float32) - before.astype(np.float32)
    mean, std = band_moments(diff[:, valid])
    return cva_score(mean, std, diff, valid)


def cva_score(mean: np.ndarray, std: np.ndarray, diff: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """CVA of a difference ``after - before`` (``float32``, overwritten) with given moments.

    The one CVA arithmetic: :func:`cva` (whole arrays) and the engine's blocks
    (:class:`borderwatch.methods.scores.FittedCva`) both call it, so scores are
    bit-identical.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``, NaN where not ``valid``.
    """
    z = diff
    z -= mean[:, None, None].astype(np.float32)
    z /= std[:, None, None].astype(np.float32)
    if valid.all():
        return np.sqrt(np.einsum("brc,brc->rc", z, z) / z.shape[0]).astype(np.float32)
    np.copyto(z, 0.0, where=np.isnan(z))
    score = np.sqrt(np.einsum("brc,brc->rc", z, z) / z.shape[0]).astype(np.float32)
    score[~valid] = np.nan
    return score
