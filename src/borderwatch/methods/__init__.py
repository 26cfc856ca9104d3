"""Change-score methods, each a fit/apply pair behind one protocol (:mod:`.base`).

:func:`get_method` makes the method for a ``--method`` name (or a ``--model`` file),
:func:`get_normaliser` the one for ``--normalise``. The engine fits them on the scene
sample and applies them per block (:mod:`borderwatch.engine`).
"""

from __future__ import annotations

from borderwatch.errors import InputError
from borderwatch.methods.base import Fitted, FittedNormaliser, Method, Normaliser
from borderwatch.methods.learned import LearnedMethod
from borderwatch.methods.normalise import NORMALISERS
from borderwatch.methods.scores import CombinedMethod, CvaMethod, IndexMethod, IrmadMethod
from borderwatch.methods.structure import StructureMethod

__all__ = [
    "Fitted",
    "FittedNormaliser",
    "Method",
    "Normaliser",
    "get_method",
    "get_normaliser",
]

_UNSUPERVISED: dict[str, type[CombinedMethod | CvaMethod | IrmadMethod | IndexMethod]] = {
    "combined": CombinedMethod,
    "cva": CvaMethod,
    "irmad": IrmadMethod,
    "index": IndexMethod,
}


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
