"""Augmented 0.5 m training patches for the structure-change network (NumPy and Pillow only).

:class:`PatchSampler` draws batches from four kinds of example, each resampled to
:data:`~borderwatch.structure.prep.MODEL_PIXEL_M` with a random scale, records drawn
with odds proportional to the square root of their ground area:

* ``change``: a crop of a labelled change pair (LEVIR-CD), centred on a new structure
  half of the time;
* ``stable``: a crop of a pair without new construction (xBD, Ida-BD: damage, flood);
* ``paste``: a background crop of a footprint image before, and the same crop with
  real buildings (image pixels under a footprint component, from any footprint image)
  pasted in after; the label is the pasted footprints (Zheng et al. 2021, "Change is
  Everywhere"). Buildings already in the background are unchanged, label 0;
* ``draw``: a footprint background crop before, and the same crop with roofs (and
  their unlabelled shadows) and fence or wall strips drawn in after
  (:func:`~borderwatch.structure.paint.draw_structures`): no labelled pair shows a new
  fence, and shadows must stay out of the footprint;
* ``synthetic``: a crop of a rendered scene
  (:func:`~borderwatch.structure.data.synthetic_pairs`), centred on a planted
  structure half of the time: new fences, walls and watchtowers, shadows unlabelled;
* ``same``: one footprint crop as both dates (label 0), so that season, illumination
  and misregistration alone are no change.

Every example then gets a joint flip and 90-degree rotation, colour, illumination and
noise jitter drawn per date, a sub-pixel shift of the after date, and with probability
``p_swap`` its dates swapped with the label set to zero (a building that disappears is
not a new structure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from borderwatch.structure.data import ChangePair, Footprints
from borderwatch.structure.paint import draw_structures
from borderwatch.structure.prep import MODEL_PIXEL_M, date_moments, stack_input

__all__ = ["KIND_WEIGHTS", "PatchSampler", "jitter", "swap_dates"]

#: Default share of each kind of example in a batch.
KIND_WEIGHTS = {
    "change": 0.4,
    "stable": 0.13,
    "paste": 0.17,
    "draw": 0.12,
    "synthetic": 0.12,
    "same": 0.06,
}


def _pil(arr: np.ndarray) -> Image.Image:
    """Pillow image of ``(3, r, c)`` uint8 RGB or a ``(r, c)`` bool mask (as 0/255)."""
    if arr.ndim == 3:
        return Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)))
    return Image.fromarray(arr.astype(np.uint8) * 255)


def _resize(im: Image.Image, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Crop ``box`` (x0, y0, x1, y1, pixels) of an image resized to ``size``, bilinear.

    RGB gives ``float32 (3, size, size)`` in 0-255, a mask ``bool (size, size)``.
    """
    out = np.asarray(im.resize((size, size), Image.Resampling.BILINEAR, box=box))
    if out.ndim == 3:
        return out.transpose(2, 0, 1).astype(np.float32)
    return out >= 128


def _box(
    shape: tuple[int, ...],
    pixel_m: float,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float],
    centre: tuple[int, int] | None = None,
) -> tuple[float, float, float, float]:
    """Return a random square window of ``size`` model pixels (times a scale), native pixels."""
    rows, cols = shape[-2:]
    s = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    side = min(size * MODEL_PIXEL_M / pixel_m * s, rows, cols)
    if centre is None:
        y0, x0 = rng.uniform(0, rows - side), rng.uniform(0, cols - side)
    else:
        y0 = float(np.clip(centre[0] - rng.uniform(0.2, 0.8) * side, 0, rows - side))
        x0 = float(np.clip(centre[1] - rng.uniform(0.2, 0.8) * side, 0, cols - side))
    return (x0, y0, x0 + side, y0 + side)


def _sqrt_area_odds(grids: Sequence[tuple[float, tuple[int, ...]]]) -> np.ndarray:
    """Drawing odds of records proportional to the square root of their ground area."""
    w = np.array([m * np.sqrt(shape[-2] * shape[-1]) for m, shape in grids], float)
    return w / w.sum() if len(w) else w


def _inside(box: tuple[slice, slice], shape: tuple[int, ...]) -> bool:
    """Whether a component's bounding box stays off the crop edge (a whole building)."""
    return (
        box[0].start > 0
        and box[1].start > 0
        and box[0].stop < shape[0]
        and (box[1].stop < shape[1])
    )


def jitter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour, season and illumination jitter of one date, ``float32 (3, r, c)`` in 0-255.

    Per-band gains, a gamma, a saturation change, a linear illumination gradient,
    sensor noise and (sometimes) a slight blur, all drawn at random.
    """
    rows, cols = x.shape[1:]
    y = x / 255.0
    y = y * rng.uniform(0.8, 1.2, size=(3, 1, 1)).astype(np.float32)
    grey = y.mean(axis=0, keepdims=True)
    y = grey + (y - grey) * np.float32(rng.uniform(0.6, 1.4))
    y = np.clip(y, 0, None) ** np.float32(rng.uniform(0.7, 1.4))
    gy, gx = np.meshgrid(
        np.linspace(-1, 1, rows, dtype=np.float32),
        np.linspace(-1, 1, cols, dtype=np.float32),
        indexing="ij",
    )
    a, b = rng.uniform(-0.15, 0.15, size=2)
    y = y * (1 + np.float32(a) * gy + np.float32(b) * gx)
    if rng.random() < 0.2:
        y = ndimage.gaussian_filter(y, (0, rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0)))
    y = y + rng.normal(0, rng.uniform(0, 0.015), size=y.shape).astype(np.float32)
    return (np.clip(y, 0, 1.2) * 255.0).astype(np.float32)


def swap_dates(
    before: np.ndarray, after: np.ndarray, new: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Swap the dates: what was new has gone, so nothing is new (the label is zero)."""
    return after, before, np.zeros_like(new)


@dataclass
class PatchSampler:
    """Draws augmented training batches (see the module docstring).

    Attributes
    ----------
    change, stable : sequence of ChangePair
        Labelled change pairs, and pairs without new construction.
    footprints : sequence of Footprints
        Single-date building footprints (backgrounds and pasted buildings).
    size : int
        Patch side, model pixels (0.5 m).
    weights : dict
        Share of each kind (:data:`KIND_WEIGHTS`); kinds without data are dropped.
    p_swap : float
        Probability of a date swap (label zero).
    scale : tuple of float
        Range of the random scale factor.
    shift_px : float
        Largest sub-pixel misregistration of the after date, model pixels.
    """

    change: Sequence[ChangePair]
    stable: Sequence[ChangePair]
    footprints: Sequence[Footprints]
    size: int = 128
    synthetic: Sequence[ChangePair] = ()
    weights: dict[str, float] = field(default_factory=lambda: dict(KIND_WEIGHTS))
    p_swap: float = 0.2
    scale: tuple[float, float] = (0.8, 1.25)
    shift_px: float = 0.8
    _positives: dict[int, np.ndarray] = field(init=False, repr=False)
    _images: dict[int, Image.Image] = field(init=False, repr=False)
    _odds: dict[str, np.ndarray] = field(init=False, repr=False)
    _kinds: list[str] = field(init=False, repr=False)
    _p: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._positives = {id(p): np.argwhere(p.new) for p in [*self.change, *self.synthetic]}
        pairs = [*self.change, *self.stable, *self.synthetic]
        arrays = [a for p in pairs for a in (p.before, p.after, p.new)]
        arrays += [a for f in self.footprints for a in (f.image, f.building)]
        self._images = {id(a): _pil(a) for a in arrays}
        self._odds = {
            k: _sqrt_area_odds(
                [
                    (r.pixel_m, r.before.shape if isinstance(r, ChangePair) else r.image.shape)
                    for r in recs
                ]
            )
            for k, recs in (
                ("change", self.change),
                ("stable", self.stable),
                ("synthetic", self.synthetic),
                ("footprints", self.footprints),
            )
        }
        have = {
            "change": self.change,
            "stable": self.stable,
            "synthetic": self.synthetic,
            "paste": self.footprints,
        }
        have["same"] = have["draw"] = self.footprints
        self._kinds = [k for k, w in self.weights.items() if w > 0 and len(have[k])]
        w = np.array([self.weights[k] for k in self._kinds], float)
        self._p = w / w.sum()

    # ----------------------------------------------------------------- kinds
    def _from_pair(
        self, kind: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pairs = {"change": self.change, "stable": self.stable, "synthetic": self.synthetic}[kind]
        p = pairs[int(rng.choice(len(pairs), p=self._odds[kind]))]
        centre = None
        pos = self._positives.get(id(p))
        if pos is not None and len(pos) and rng.random() < 0.5:
            centre = tuple(pos[rng.integers(len(pos))])
        box = _box(p.new.shape, p.pixel_m, self.size, rng, self.scale, centre)
        im = self._images
        return (
            _resize(im[id(p.before)], box, self.size),
            _resize(im[id(p.after)], box, self.size),
            _resize(im[id(p.new)], box, self.size),
        )

    def _footprint_crop(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        f = self.footprints[int(rng.choice(len(self.footprints), p=self._odds["footprints"]))]
        box = _box(f.building.shape, f.pixel_m, self.size, rng, self.scale)
        im = self._images
        return _resize(im[id(f.image)], box, self.size), _resize(im[id(f.building)], box, self.size)

    def _paste(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        before, occupied = self._footprint_crop(rng)
        after = before.copy()
        new = np.zeros_like(occupied)
        n_min, n_max = 4, (self.size // 4) ** 2
        for _ in range(int(rng.integers(1, 6))):
            src, mask = self._footprint_crop(rng)
            lab, n = ndimage.label(mask)
            if n == 0:
                continue
            sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
            boxes = ndimage.find_objects(lab)
            inside = np.array([_inside(b, mask.shape) for b in boxes])
            ok = np.flatnonzero((sizes >= n_min**2) & (sizes <= n_max) & inside)
            if not len(ok):
                continue
            k = int(ok[rng.integers(len(ok))]) + 1
            sl = boxes[k - 1]
            comp = lab[sl] == k
            pix = src[:, sl[0], sl[1]]
            rot = int(rng.integers(4))
            comp, pix = np.rot90(comp, rot), np.rot90(pix, rot, axes=(1, 2))
            h, w = comp.shape
            for _try in range(5):
                y0 = int(rng.integers(0, self.size - h + 1))
                x0 = int(rng.integers(0, self.size - w + 1))
                at = (slice(y0, y0 + h), slice(x0, x0 + w))
                if ((occupied[at] | new[at]) & comp).mean() < 0.05:
                    alpha = ndimage.gaussian_filter(comp.astype(np.float32), 0.6)
                    alpha = np.maximum(alpha, comp * 0.9)
                    after[:, at[0], at[1]] = after[:, at[0], at[1]] * (1 - alpha) + pix * alpha
                    new[at] |= comp
                    break
        return before, after, new

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        before, occupied = self._footprint_crop(rng)
        after, new = draw_structures(before, occupied, rng, pixel_m=MODEL_PIXEL_M)
        return before, after, new

    def _same(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        img, building = self._footprint_crop(rng)
        return img, img.copy(), np.zeros_like(building)

    def example(
        self, rng: np.random.Generator, kind: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One augmented example: ``before, after`` ``float32 (3, s, s)`` 0-255, ``new`` bool."""
        kind = kind or str(self._kinds[rng.choice(len(self._kinds), p=self._p)])
        if kind in ("change", "stable", "synthetic"):
            before, after, new = self._from_pair(kind, rng)
        elif kind == "paste":
            before, after, new = self._paste(rng)
        elif kind == "draw":
            before, after, new = self._draw(rng)
        else:
            before, after, new = self._same(rng)
        k, flip = int(rng.integers(4)), bool(rng.integers(2))

        def geo(a: np.ndarray) -> np.ndarray:
            a = np.rot90(a, k, axes=(-2, -1))
            return np.ascontiguousarray(a[..., ::-1] if flip else a)

        before, after, new = geo(before), geo(after), geo(new)
        shift = rng.uniform(-self.shift_px, self.shift_px, size=2)
        after = ndimage.shift(after, (0, *shift), order=1, mode="nearest")
        before, after = jitter(before, rng), jitter(after, rng)
        if rng.random() < self.p_swap:
            before, after, new = swap_dates(before, after, new)
        return before, after, new

    def batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``x float32 (n, 6, s, s)`` (per-date per-patch standardised) and ``y (n, 1, s, s)``."""
        xs, ys = [], []
        for _ in range(n):
            before, after, new = self.example(rng)
            xs.append(stack_input(before, after, (date_moments(before), date_moments(after))))
            ys.append(new[None].astype(np.float32))
        return np.stack(xs), np.stack(ys)
