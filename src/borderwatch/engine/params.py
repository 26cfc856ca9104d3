"""Detection parameters, validated once where they are made."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from borderwatch.errors import InputError

__all__ = ["DetectParams", "MethodName", "NormaliseName", "ThresholdName"]

MethodName = Literal["auto", "combined", "cva", "irmad", "index", "structure"]
ThresholdName = Literal["ki", "otsu", "chi2"]
NormaliseName = Literal["none", "irmad", "histogram"]

_METHODS: tuple[str, ...] = get_args(MethodName)
_THRESHOLDS: tuple[str, ...] = get_args(ThresholdName)
_NORMALISE: tuple[str, ...] = get_args(NormaliseName)


@dataclass(frozen=True)
class DetectParams:
    """Parameters of a detection run (all distances in metres, areas in m2).

    Attributes
    ----------
    method : {"auto", "combined", "cva", "irmad", "index", "structure"}
        Change score (:mod:`borderwatch.methods`); ignored when ``model`` is given.
        ``structure`` is the shipped structure-change network (a probability);
        ``auto`` (default) is ``structure`` at 2.5 m or finer with red, green and blue
        and ``combined`` otherwise (:func:`borderwatch.methods.choose_method`).
    threshold : {"ki", "otsu", "chi2"} or float
        Threshold rule on the sample's scores, or a fixed score. With ``model`` a
        rule name means the probability 0.5.
    min_area_m2 : float
        Smallest object kept, m2.
    opening_px, closing_px : int or None
        Morphological clean-up radii, pixels; None (default) is the rule of
        :func:`borderwatch.objects.morphology.default_cleanup_px` at the analysis
        pixel size (1 px up to about 13 m pixels, none at coarser ones), resolved when
        the run is planned.
    resolution : float or None
        Analysis pixel size in metres; default the finest input resolution.
    crs : str or None
        Analysis CRS; default the local UTM zone.
    margin_m : float
        Margin read around the AOI, metres.
    align : bool
        Co-register the after date onto the before date (phase correlation,
        :mod:`borderwatch.engine.align`); the residual shift is recorded.
    normalise : {"none", "irmad", "histogram"}
        Relative radiometric normalisation of the after date, fitted on the sample
        (:mod:`borderwatch.methods.normalise`).
    classify : bool
        Keep construction-direction objects only and add ``class``, ``length_m``,
        ``confidence`` (:mod:`borderwatch.objects.classify`).
    p_value : float
        False-alarm rate of the ``chi2`` threshold.
    model : str or None
        Model file from ``borderwatch train``; its change probability is the score
        (an ``.onnx`` file is a structure-change network, :mod:`borderwatch.methods.structure`).
    bands : tuple of str or None
        Names of the inputs' bands in file order (``("blue", "green", "red", "nir")``),
        for both dates, in place of the files' band descriptions: methods and models
        find red, green, blue... by these names (:func:`borderwatch.methods.indices.band_role`).
    reranker : str or None
        Re-ranker file from ``borderwatch train --from-reviews``: each detection's
        confidence becomes the probability an analyst confirms it, and detections below
        0.5 are dropped (:mod:`borderwatch.objects.rerank`).

    Raises
    ------
    InputError
        A value out of range or an unknown name.
    """

    method: MethodName = "auto"
    threshold: ThresholdName | float = "ki"
    min_area_m2: float = 20.0
    opening_px: int | None = None
    closing_px: int | None = None
    resolution: float | None = None
    crs: str | None = None
    margin_m: float = 0.0
    align: bool = True
    normalise: NormaliseName = "none"
    classify: bool = True
    p_value: float = 0.01
    model: str | None = None
    bands: tuple[str, ...] | None = None
    reranker: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.bands, str):
            raise InputError(f"bands must be a sequence of names, got the string {self.bands!r}")
        if self.reranker is not None and not self.classify:
            raise InputError(
                f"{self.reranker}: a re-ranker needs the classes of classification; drop "
                "--no-classify"
            )
        if self.bands is not None:
            names = tuple(str(b).strip() for b in self.bands)
            if not names or any(not n for n in names) or len(set(names)) != len(names):
                raise InputError(f"bands must be distinct non-empty names, got {self.bands!r}")
            object.__setattr__(self, "bands", names)
        if self.method not in _METHODS:
            raise InputError(f"unknown method {self.method!r}; choose one of {list(_METHODS)}")
        if isinstance(self.threshold, str):
            if self.threshold not in _THRESHOLDS:
                raise InputError(
                    f"unknown threshold {self.threshold!r}; use a number or one of "
                    f"{list(_THRESHOLDS)}"
                )
            if self.threshold == "chi2" and self.method != "irmad" and self.model is None:
                # also under auto: chi2 is irmad's test and must be asked for with it
                raise InputError("the chi2 threshold needs a chi-square score: use --method irmad")
        elif isinstance(self.threshold, bool) or not math.isfinite(float(self.threshold)):
            raise InputError(f"threshold must be a finite number, got {self.threshold!r}")
        if self.normalise not in _NORMALISE:
            raise InputError(
                f"unknown normalisation {self.normalise!r}; use one of {list(_NORMALISE)}"
            )
        if not (self.min_area_m2 >= 0 and math.isfinite(self.min_area_m2)):
            raise InputError(f"min_area_m2 must be >= 0 m2, got {self.min_area_m2!r}")
        for name in ("opening_px", "closing_px"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise InputError(f"{name} must be a whole number >= 0, got {v!r}")
        if self.resolution is not None and not (self.resolution > 0):
            raise InputError(f"resolution must be > 0 m, got {self.resolution!r}")
        if not (self.margin_m >= 0):
            raise InputError(f"margin_m must be >= 0 m, got {self.margin_m!r}")
        if not (0 < self.p_value < 1):
            raise InputError(f"p_value must lie in (0, 1), got {self.p_value!r}")
