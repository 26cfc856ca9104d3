"""Deterministic synthetic before/after image pairs with planted new construction.

The scene imitates ~1 m four-band (blue, green, red, NIR) imagery of a peri-urban
valley near Helong, Jilin, on the China--North Korea border: a paved road, dirt
tracks, field strips, a stream, woodland and roadside trees, a village of existing
buildings and an existing walled detention-centre-like compound. The "after" date
can add new buildings, a new fence ring and a watchtower (the truth), and always
carries the confounders a change detector must ignore: illumination and haze,
a seasonal vegetation change, independent sensor noise and a sub-pixel shift.

Everything is drawn from ``numpy.random.default_rng`` streams spawned from one
seed, so the same arguments give identical arrays. Nothing here is real imagery.

The layout is designed in a 512 m x 512 m frame (metres from its top-left corner,
y pointing south) that is centred in the scene; larger scenes extend the roads,
fields and woodland around it.

Modules: :mod:`.frame` (the design frame's CRS and size, :class:`~.frame.Box`
rectangles and the pixel :class:`~.frame.Grid`), :mod:`.ground` (noise, spectra,
land cover, season, sub-pixel shift, quantisation), :mod:`.structures` (existing and
new structures, the fence ring, painting, truth polygons), :mod:`.pair`
(:class:`SyntheticPair`, :func:`make_pair`, :func:`write_pair` and the file writers)
and :mod:`.stack` (:func:`make_stack`: many dates with structures built at known
dates, clouds with masks, seasons, mis-registration and a no-coverage date, planned
and drawn by :mod:`.events`).
"""

from __future__ import annotations

from borderwatch.synthetic.pair import BAND_NAMES, DATES, SyntheticPair, make_pair, write_pair
from borderwatch.synthetic.stack import StackTruth, make_stack

__all__ = [
    "BAND_NAMES",
    "DATES",
    "StackTruth",
    "SyntheticPair",
    "make_pair",
    "make_stack",
    "write_pair",
]
