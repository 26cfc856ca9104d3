"""Optional learned mode: a small scikit-learn classifier on per-pixel change features.

Features (:func:`pixel_features`) are the unsupervised scores and their ingredients,
all standardised per image so that a model transfers between scenes: per-band
differences of the per-date standardised bands, the CVA magnitude, the one-sided index
score, the construction direction, and the combined score smoothed at two scales.
:func:`train_model` fits a histogram gradient-boosting classifier on a class-balanced
random sample of labelled pixels; :func:`predict_change` gives a per-pixel change
probability. Models are tied to the band names they were trained with.

Model files are Python pickles: load only files you made or trust.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from borderwatch.errors import InputError
from borderwatch.evaluation.datasets import LabelledPair
from borderwatch.evaluation.metrics import Scores, cleanup_radius_px, evaluate_mask

__all__ = [
    "TrainedModel",
    "leave_one_out",
    "load_model",
    "pixel_features",
    "predict_change",
    "predict_mask",
    "save_model",
    "train_model",
]


@dataclass(frozen=True)
class TrainedModel:
    """A fitted per-pixel change classifier.

    Attributes
    ----------
    estimator : object
        Fitted scikit-learn classifier with ``predict_proba``.
    band_names : tuple of str
        Bands (in order) the model expects.
    feature_names : tuple of str
        Names of the features, for provenance.
    trained_on : tuple of str
        Names of the training pairs.
    """

    estimator: object = field(repr=False)
    band_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    trained_on: tuple[str, ...]


def pixel_features(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    band_names: Sequence[str],
    pixel_m: float,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per-pixel feature stack ``float32 (n_features, rows, cols)`` and feature names.

    The statistics are the whole pair's (:func:`borderwatch.methods.learned.fit_features`),
    the same code ``detect --model`` fits on its sample and applies per block.
    """
    from borderwatch.methods.learned import fit_features

    model = fit_features(before, after, valid, band_names=band_names, pixel_m=pixel_m)
    return model.features(before, after, valid), model.names


def _sample(pair: LabelledPair, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    feats, _ = pixel_features(
        pair.before,
        pair.after,
        pair.valid,
        band_names=pair.band_names,
        pixel_m=float(np.sqrt(pair.pixel_area_m2)),
    )
    ok = pair.valid & pair.labelled
    pos = np.flatnonzero(ok & pair.truth)
    neg = np.flatnonzero(ok & ~pair.truth)
    take = [rng.choice(idx, min(n // 2, idx.size), replace=False) for idx in (pos, neg)]
    idx = np.concatenate(take)
    x = feats.reshape(feats.shape[0], -1)[:, idx].T
    y = np.concatenate([np.ones(take[0].size, bool), np.zeros(take[1].size, bool)])
    return x, y


def train_model(
    pairs: Iterable[LabelledPair],
    *,
    samples_per_pair: int = 20_000,
    seed: int = 0,
    max_iter: int = 150,
) -> TrainedModel:
    """Fit a class-balanced gradient-boosting classifier on labelled pairs.

    Parameters
    ----------
    pairs : iterable of LabelledPair
        Training pairs, all with the same band names.
    samples_per_pair : int
        Labelled pixels drawn per pair (half change, half no change where possible).
    seed : int
        Random seed (sampling and model).
    max_iter : int
        Boosting iterations.

    Raises
    ------
    InputError
        No pairs, different band sets, or no change pixels at all.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    xs, ys, names, bands = [], [], [], None
    for pair in pairs:
        if bands is None:
            bands = tuple(pair.band_names)
        elif tuple(pair.band_names) != bands:
            raise InputError(f"{pair.name}: bands {pair.band_names} differ from {bands}")
        x, y = _sample(pair, samples_per_pair, rng)
        xs.append(x)
        ys.append(y)
        names.append(pair.name)
    if not xs:
        raise InputError("no training pairs")
    y = np.concatenate(ys)
    if not y.any() or y.all():
        raise InputError("training data need both change and no-change pixels")
    est = HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=0.1, max_leaf_nodes=31, random_state=seed
    )
    est.fit(np.concatenate(xs), y)
    _, feat_names = pixel_features(
        np.zeros((len(bands or ()), 4, 4)) + 1,
        np.zeros((len(bands or ()), 4, 4)) + 1,
        np.ones((4, 4), bool),
        band_names=bands or (),
        pixel_m=1.0,
    )
    return TrainedModel(est, bands or (), feat_names, tuple(names))


def predict_change(
    model: TrainedModel,
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    band_names: Sequence[str],
    pixel_m: float,
) -> np.ndarray:
    """Change probability per pixel, ``float32 (rows, cols)``, NaN where invalid.

    Raises
    ------
    InputError
        The bands differ from those the model was trained with.
    """
    if tuple(band_names) != model.band_names:
        raise InputError(f"model expects bands {model.band_names}, got {tuple(band_names)}")
    feats, _ = pixel_features(before, after, valid, band_names=band_names, pixel_m=pixel_m)
    flat = feats.reshape(feats.shape[0], -1).T
    prob = model.estimator.predict_proba(flat)[:, 1]  # type: ignore[attr-defined]
    out = prob.reshape(valid.shape).astype(np.float32)
    out[~valid] = np.nan
    return out


def predict_mask(model: TrainedModel, pair: LabelledPair, *, threshold: float = 0.5) -> np.ndarray:
    """Return the cleaned change mask of a pair (model probability > ``threshold``)."""
    from borderwatch.objects.morphology import clean_mask

    pixel_m = float(np.sqrt(pair.pixel_area_m2))
    prob = predict_change(
        model, pair.before, pair.after, pair.valid, band_names=pair.band_names, pixel_m=pixel_m
    )
    r = cleanup_radius_px(pixel_m)
    raw = pair.valid & (np.nan_to_num(prob) > threshold)
    return clean_mask(raw, pixel_area_m2=pair.pixel_area_m2, opening_px=r, closing_px=r)


def leave_one_out(
    pairs: Sequence[LabelledPair], *, seed: int = 0, **train_options: int
) -> dict[str, Scores]:
    """Train on all pairs but one, score that one; for every pair (e.g. OSCD cities)."""
    out = {}
    for k, held in enumerate(pairs):
        model = train_model([p for j, p in enumerate(pairs) if j != k], seed=seed, **train_options)
        out[held.name] = evaluate_mask(
            predict_mask(model, held), held.truth, valid=held.valid, labelled=held.labelled
        )
    return out


def save_model(model: TrainedModel, path: str | Path) -> Path:
    """Write a model as a pickle file."""
    from borderwatch.products.export import atomic_write

    path = Path(path)
    with atomic_write(path, overwrite=True) as tmp:
        Path(tmp).write_bytes(pickle.dumps(model))
    return path


def load_model(path: str | Path) -> TrainedModel:
    """Read a model written by :func:`save_model` (a pickle: trusted files only).

    Raises
    ------
    InputError
        The file is not a borderwatch model.
    """
    try:
        model = pickle.loads(Path(path).read_bytes())  # noqa: S301 - documented, trusted files
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise InputError(f"{path}: cannot read model ({exc})") from exc
    if not isinstance(model, TrainedModel):
        raise InputError(f"{path}: not a borderwatch model file")
    return model
