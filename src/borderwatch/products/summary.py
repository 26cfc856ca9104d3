"""The figures of a reviewed detections table: what every total of a run is built on.

A run's finding is its table of detections in the analyst schema
(:mod:`borderwatch.products.schema`) with the stored reviews applied, not the engine's
raw object count: rejected detections are left out of every area, and once any
detection is reviewed the confirmed figures come first. The terminal summary, the
manifest's ``summary``, ``batch.json`` and the report headline all take their numbers
from :func:`detection_figures`, so they never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np

__all__ = ["detection_figures", "figures_line"]


def detection_figures(detections: gpd.GeoDataFrame) -> dict[str, Any]:
    """Count the detections by review and sum their area, rejected ones excluded.

    Parameters
    ----------
    detections : geopandas.GeoDataFrame
        Analyst schema: ``review`` (one of
        :data:`borderwatch.products.schema.REVIEW_VALUES`) and ``area_m2`` (m²).

    Returns
    -------
    dict
        ``detections`` (all), ``confirmed``, ``rejected``, ``unreviewed`` (review
        ``unreviewed``), ``area_m2_excluding_rejected`` and ``confirmed_area_m2``
        (m², NaN areas counted as 0). JSON-ready.
    """
    n = len(detections)
    review = detections["review"].astype(str).to_numpy() if n else np.zeros(0, str)
    area = detections["area_m2"].to_numpy(dtype=float) if n else np.zeros(0)
    rejected = review == "rejected"
    confirmed = review == "confirmed"
    return {
        "detections": n,
        "confirmed": int(confirmed.sum()),
        "rejected": int(rejected.sum()),
        "unreviewed": int((review == "unreviewed").sum()),
        "area_m2_excluding_rejected": float(np.nansum(area[~rejected])),
        "confirmed_area_m2": float(np.nansum(area[confirmed])),
    }


def figures_line(figures: Mapping[str, Any]) -> str:
    """One line of :func:`detection_figures`' figures, for the terminal.

    Examples
    --------
    >>> figures_line({"detections": 8, "confirmed": 2, "rejected": 1, "unreviewed": 5,
    ...               "area_m2_excluding_rejected": 3058.4, "confirmed_area_m2": 900.0})
    '8 detections (2 confirmed, 1 rejected), 3,058 m2 excluding rejected'
    >>> figures_line({"detections": 1, "confirmed": 0, "rejected": 0, "unreviewed": 1,
    ...               "area_m2_excluding_rejected": 120.0, "confirmed_area_m2": 0.0})
    '1 detection (0 confirmed, 0 rejected), 120 m2 excluding rejected'
    """
    n = figures["detections"]
    return (
        f"{n} detection{'' if n == 1 else 's'} ({figures['confirmed']} confirmed, "
        f"{figures['rejected']} rejected), "
        f"{figures['area_m2_excluding_rejected']:,.0f} m2 excluding rejected"
    )
