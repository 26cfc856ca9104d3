"""A place's re-ranker: detections scored again from an analyst's reviews.

``borderwatch train --from-reviews`` fits a small logistic regression on the
detections an analyst confirmed (1) and rejected (0) at one place
(:func:`fit_reranker`); ``detect --reranker FILE`` then gives every detection of a new
run the fitted probability that the analyst would confirm it as its ``confidence``
and drops those below :data:`KEEP_PROBABILITY` (:func:`apply_reranker`). The features
(:data:`FEATURES`) are what every detection carries whatever the method: its mean
score, its area, its elongation and its class. A logistic regression is calibrated on
the data it is fitted on (its mean probability equals the share confirmed), and an L2
penalty (:data:`L2`) keeps a few dozen reviews from over-fitting it. The file is JSON:
readable, small, and no pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

from borderwatch.errors import InputError

__all__ = [
    "FEATURES",
    "KEEP_PROBABILITY",
    "Reranker",
    "apply_reranker",
    "fit_reranker",
    "load_reranker",
    "object_features",
    "save_reranker",
]

#: Per-detection features, in order.
FEATURES = ("score", "log_area_m2", "log_elongation", "is_building", "is_fence_or_wall")
#: Detections whose re-ranked probability is below this are dropped.
KEEP_PROBABILITY = 0.5
#: L2 penalty on the standardised coefficients.
L2 = 1.0
#: Least reviews of each kind (confirmed, rejected) a re-ranker is fitted on.
MIN_EACH = 5
_FORMAT = "borderwatch-reranker/1"


@dataclass(frozen=True)
class Reranker:
    """A fitted re-ranker (see the module notes).

    Attributes
    ----------
    mean, std : tuple of float
        Standardisation of each feature of :data:`FEATURES`.
    coef : tuple of float
        Logistic coefficients of the standardised features.
    intercept : float
        Logistic intercept.
    place : str
        What the reviews were of (file names), for the record.
    confirmed, rejected : int
        Reviews fitted on.
    score_kind : str
        ``"probability"`` (scores in 0-1: a model's) or ``"standardised"`` (the
        unsupervised scores): a re-ranker is applied only to runs of the same kind.
    sha256 : str
        SHA-256 of the file it was read from (empty when fitted in memory).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    place: str
    confirmed: int
    rejected: int
    score_kind: str = "probability"
    sha256: str = ""

    def probability(self, objects: Any) -> np.ndarray:
        """Probability that each detection of ``objects`` is confirmed, ``float (n,)``."""
        x = (object_features(objects) - np.asarray(self.mean)) / np.asarray(self.std)
        return np.asarray(1 / (1 + np.exp(-(x @ np.asarray(self.coef) + self.intercept))))


def object_features(objects: Any) -> np.ndarray:
    """Return the :data:`FEATURES` of every detection, ``float (n, len(FEATURES))``.

    ``objects`` is a detections table: ``score`` or ``mean_score``, ``area_m2``,
    ``length_m`` (optional: elongation 1) and ``class``.

    Raises
    ------
    InputError
        A column the features need is missing.
    """
    cols = set(objects.columns)
    score_col = "score" if "score" in cols else "mean_score"
    missing = [c for c in (score_col, "area_m2", "class") if c not in cols]
    if missing:
        raise InputError(f"detections lack {missing} for the re-ranker")
    n = len(objects)
    area = np.maximum(objects["area_m2"].to_numpy(np.float64), 1e-6)
    if "length_m" in cols:
        length = objects["length_m"].to_numpy(np.float64, na_value=np.nan)
        length = np.where(np.isfinite(length) & (length > 0), length, np.sqrt(area))
    else:
        length = np.sqrt(area)
    cls = objects["class"].astype(str).to_numpy()
    score = objects[score_col].to_numpy(np.float64, na_value=np.nan)
    if not (np.isfinite(score).all() and np.isfinite(area).all()):
        raise InputError("detections with a missing score or area cannot be re-ranked")
    feats = np.column_stack(
        [
            score,
            np.log(area),
            np.log(np.maximum(length * length / area, 1.0)),
            cls == "building",
            cls == "fence_or_wall",
        ]
    ).astype(np.float64)
    return feats.reshape(n, len(FEATURES))


def fit_reranker(objects: Any, confirmed: np.ndarray, *, place: str = "") -> Reranker:
    """Fit the re-ranker on reviewed detections.

    Parameters
    ----------
    objects : geopandas.GeoDataFrame or pandas.DataFrame
        The reviewed detections (see :func:`object_features`).
    confirmed : numpy.ndarray
        ``bool (n,)``: True where the analyst confirmed, False where rejected.
    place : str
        What was reviewed (recorded).

    Raises
    ------
    InputError
        Fewer than :data:`MIN_EACH` confirmed or rejected detections.
    """
    y = np.asarray(confirmed, bool)
    n_yes, n_no = int(y.sum()), int((~y).sum())
    if min(n_yes, n_no) < MIN_EACH:
        raise InputError(
            f"{place or 'reviews'}: {n_yes} confirmed and {n_no} rejected detections; a "
            f"re-ranker needs at least {MIN_EACH} of each"
        )
    x = object_features(objects)
    mean = x.mean(axis=0)
    std = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
    z = (x - mean) / std
    t = y.astype(np.float64)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        logit = z @ w[1:] + w[0]
        p = 1 / (1 + np.exp(-logit))
        nll = float(np.sum(np.logaddexp(0, logit) - t * logit)) + 0.5 * L2 * float(w[1:] @ w[1:])
        grad = np.concatenate([[np.sum(p - t)], z.T @ (p - t) + L2 * w[1:]])
        return nll, grad

    w0 = np.zeros(len(FEATURES) + 1)
    w0[0] = math.log(n_yes / n_no)
    res = minimize(loss, w0, jac=True, method="L-BFGS-B")
    w = res.x
    kind = "probability" if 0 <= x[:, 0].min() and x[:, 0].max() <= 1 else "standardised"
    return Reranker(
        tuple(float(v) for v in mean),
        tuple(float(v) for v in std),
        tuple(float(v) for v in w[1:]),
        float(w[0]),
        place,
        n_yes,
        n_no,
        kind,
    )


def apply_reranker(objects: Any, reranker: Reranker) -> Any:
    """Re-rank detections: ``confidence`` = probability, drop those below the keep level.

    The heuristic or calibrated confidence is kept as ``confidence_before_rerank``.
    """
    out = objects.copy()
    out["confidence_before_rerank"] = (
        out["confidence"] if "confidence" in out.columns else np.full(len(out), np.nan)
    )
    if not len(out):
        return out
    p = reranker.probability(objects)
    out["confidence"] = p
    out = out[p >= KEEP_PROBABILITY].reset_index(drop=True)
    if "object_id" in out.columns:
        out["object_id"] = np.arange(1, len(out) + 1)
    return out


def save_reranker(reranker: Reranker, path: Path, *, overwrite: bool = False) -> str:
    """Write ``reranker`` as JSON, atomically; return its SHA-256."""
    from borderwatch.products.export import atomic_write

    data = {"format": _FORMAT, "features": list(FEATURES), **asdict(reranker)}
    data.pop("sha256")
    text = json.dumps(data, indent=1) + "\n"
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_reranker(path: str | Path) -> Reranker:
    """Read a re-ranker file.

    Raises
    ------
    InputError
        Missing, not JSON, or not a re-ranker of these features.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: re-ranker file not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: not a re-ranker file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise InputError(f"{p}: not a borderwatch re-ranker ({_FORMAT})")
    if tuple(data.get("features", ())) != FEATURES:
        raise InputError(f"{p}: re-ranker features {data.get('features')} are not {FEATURES}")
    try:
        return Reranker(
            tuple(float(v) for v in data["mean"]),
            tuple(float(v) for v in data["std"]),
            tuple(float(v) for v in data["coef"]),
            float(data["intercept"]),
            str(data.get("place", "")),
            int(data["confirmed"]),
            int(data["rejected"]),
            str(data.get("score_kind", "probability")),
            hashlib.sha256(raw).hexdigest(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{p}: incomplete re-ranker file ({exc})") from None
