"""Change-score methods, each a fit/apply pair behind one protocol (:mod:`.base`).

:func:`get_method` makes the method for a ``--method`` name (or a ``--model`` file).
:func:`choose_method` says which one ``auto`` (the default) is for a scene: the
structure-change network where the pixel is
:data:`~borderwatch.methods.structure.MAX_PIXEL_M` (2.5 m) or finer and red, green
and blue are present, the unsupervised ``combined`` score otherwise.
:func:`get_normaliser` makes the normaliser for ``--normalise``. The engine fits them
on the scene sample and applies them per block (:mod:`borderwatch.engine`).
"""

from __future__ import annotations

from collections.abc import Sequence

from borderwatch.errors import InputError
from borderwatch.methods.base import Fitted, FittedNormaliser, Method, Normaliser
from borderwatch.methods.indices import band_role, band_roles
from borderwatch.methods.learned import LearnedMethod
from borderwatch.methods.normalise import NORMALISERS
from borderwatch.methods.scores import CombinedMethod, CvaMethod, IndexMethod, IrmadMethod
from borderwatch.methods.structure import MAX_PIXEL_M, STRUCTURE_ROLES, StructureMethod

__all__ = [
    "Fitted",
    "FittedNormaliser",
    "Method",
    "Normaliser",
    "choose_method",
    "get_method",
    "get_normaliser",
]

_UNSUPERVISED: dict[str, type[CombinedMethod | CvaMethod | IrmadMethod | IndexMethod]] = {
    "combined": CombinedMethod,
    "cva": CvaMethod,
    "irmad": IrmadMethod,
    "index": IndexMethod,
}


#: What ``auto`` falls back to where the structure model does not serve.
UNSUPERVISED_DEFAULT = "combined"


def choose_method(
    name: str,
    *,
    pixel_m: float,
    band_names: Sequence[str],
    n_bands: int,
    model: str | None = None,
    fixed_threshold: bool = False,
) -> tuple[str, str]:
    """Return the method a run uses, and why (recorded as ``method_reason``).

    ``auto`` is ``structure`` where the analysis pixel is :data:`MAX_PIXEL_M` or finer
    and the bands include red, green and blue (by role,
    :func:`~borderwatch.methods.indices.band_roles`); otherwise
    :data:`UNSUPERVISED_DEFAULT`. A ``fixed_threshold`` (a number given as
    ``--threshold``) is a value of the unsupervised score, so ``auto`` then takes that
    score too. Any other name, or a ``model`` file, is used as given.

    Examples
    --------
    >>> choose_method("auto", pixel_m=0.5, band_names=["red", "green", "blue"], n_bands=3)[0]
    'structure'
    >>> choose_method("auto", pixel_m=10.0, band_names=["B02", "B03", "B04"], n_bands=3)[0]
    'combined'
    """
    if model is not None:
        return name, f"the model file {model} (--model)"
    if name != "auto":
        return name, f"{name} (--method)"
    if fixed_threshold:
        return UNSUPERVISED_DEFAULT, (
            f"auto: a fixed --threshold is a value of the {UNSUPERVISED_DEFAULT} score (the "
            "structure model's is a probability, thresholded at 0.5), so that score"
        )
    if pixel_m > MAX_PIXEL_M:
        return UNSUPERVISED_DEFAULT, (
            f"auto: the {pixel_m:.3g} m pixel is coarser than the structure model's "
            f"{MAX_PIXEL_M:g} m, so the unsupervised {UNSUPERVISED_DEFAULT} score"
        )
    roles = band_roles(band_names, n_bands=n_bands)
    missing = [r for r in STRUCTURE_ROLES if r not in roles]
    if missing:
        return UNSUPERVISED_DEFAULT, (
            f"auto: no {'/'.join(missing)} band among {list(band_names) or n_bands} for the "
            f"structure model, so the unsupervised {UNSUPERVISED_DEFAULT} score"
        )
    assumed = not any(band_role(str(b)) for b in band_names)
    how = " (assumed from the band order of an unnamed 3-band image)" if assumed else ""
    return "structure", (
        f"auto: a {pixel_m:.3g} m pixel ({MAX_PIXEL_M:g} m or finer) with red, green and "
        f"blue{how}, so the structure model"
    )


def get_method(name: str, *, model: str | None = None) -> Method:
    """Return the method ``name``, or the learned one when a ``model`` file is given.

    ``structure`` is the shipped structure-change network; a ``model`` file ending in
    ``.onnx`` is a structure-change network too, any other a ``borderwatch train`` pickle.

    Raises
    ------
    InputError
        Unknown method name.
    """
    if model is not None:
        if str(model).lower().endswith(".onnx"):
            return StructureMethod(str(model))
        return LearnedMethod(str(model))
    if name == "structure":
        return StructureMethod()
    if name == "auto":
        raise InputError("'auto' names no method until a scene is known: use choose_method")
    try:
        method: Method = _UNSUPERVISED[name]()
    except KeyError:
        known = sorted(_UNSUPERVISED)
        raise InputError(f"unknown method {name!r}; choose one of {known}") from None
    return method


def get_normaliser(name: str) -> Normaliser | None:
    """Return the normaliser for ``--normalise`` (None for ``none``).

    Raises
    ------
    InputError
        Unknown normalisation.
    """
    if name == "none":
        return None
    try:
        normaliser: Normaliser = NORMALISERS[name]()
    except KeyError:
        raise InputError(
            f"unknown normalisation {name!r}; use 'none', 'irmad' or 'histogram'"
        ) from None
    return normaliser
