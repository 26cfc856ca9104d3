"""Connected objects across block edges: per-block summaries merged into polygons.

Blockwise detection labels each block's cleaned change mask on its own; an object
that crosses a block edge then has one local label per block. :func:`summarise_block`
records what the merge needs (labels along the four block edges, pixel counts,
score sums and maxima, first pixel in raster order, polygons), and
:func:`merge_blocks` links labels that touch across edges (8-connectivity, diagonal
block corners included) with a graph connected-components pass, applies the
minimum-area rule to the merged objects, and unions their polygons into one.

Two labelings are kept because :func:`borderwatch.objects.morphology.clean_mask` applies the
minimum area to the cleaned mask *before* removing invalid pixels: ``M`` (the cleaned
mask) decides which objects are big enough, ``F = M & valid`` gives the objects
reported. Every ``F`` object lies inside one ``M`` object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely.ops import unary_union

from borderwatch.errors import InputError
from borderwatch.io import Grid
from borderwatch.objects.construction import (
    ClassifyContext,
    ObjectCrop,
    classify_crops,
    may_be_construction,
)
from borderwatch.objects.polygons import OBJECT_COLUMNS, label_objects, trace_labels

__all__ = [
    "BlockSummary",
    "MergeResult",
    "BlockObjects",
    "block_objects",
    "edge_labels",
    "merge_blocks",
    "summarise_block",
]


@dataclass(frozen=True)
class _Edges:
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray) -> _Edges:
        return cls(labels[0].copy(), labels[-1].copy(), labels[:, 0].copy(), labels[:, -1].copy())


@dataclass(frozen=True)
class BlockSummary:
    """What one block contributes to the object merge (small; picklable).

    Attributes
    ----------
    index : tuple of int
        ``(block_row, block_col)`` in the layout.
    m_count : numpy.ndarray
        Pixels per local label of the cleaned mask ``M`` (entry 0 unused).
    f_to_m : numpy.ndarray
        Local ``M`` label of each local ``F`` label (entry 0 unused).
    f_count, f_sum, f_max, f_first : numpy.ndarray
        Per local ``F`` label: pixel count, sum and maximum of the score, and the
        flat grid index ``row * cols + col`` of its first pixel in raster order.
    geoms : list of (int, shapely geometry)
        Polygons of the local ``F`` labels the merge may keep, in the grid CRS: those
        reaching the block edge and, inside the block, those not decided as dropped
        (below the minimum area, or not construction when classifying).
    crops : list of (int, ObjectCrop)
        Pixel mask and direction evidence of the local ``F`` labels still to be
        classified after the merge (grid pixel origin), when the block was summarised
        with a classification context: those touching the block edge.
    v_max : numpy.ndarray or None
        Per local ``F`` label: maximum of the verification score, when given.
    known : dict
        Local ``F`` label -> class columns (or None: not construction) of the objects
        classified inside the block: those not touching its edge, which no merge can
        change (objects dropped for their area are not listed). Only their results are
        kept, so memory does not grow with their pixels.
    """

    index: tuple[int, int]
    m_count: np.ndarray
    m_edges: _Edges = field(repr=False)
    f_to_m: np.ndarray = field(repr=False)
    f_count: np.ndarray = field(repr=False)
    f_sum: np.ndarray = field(repr=False)
    f_max: np.ndarray = field(repr=False)
    f_first: np.ndarray = field(repr=False)
    f_edges: _Edges = field(repr=False)
    geoms: list[tuple[int, Any]] = field(repr=False)
    crops: list[tuple[int, ObjectCrop]] = field(default_factory=list, repr=False)
    v_max: np.ndarray | None = field(default=None, repr=False)
    known: dict[int, dict[str, object] | None] = field(default_factory=dict, repr=False)


def _crops(
    f_lab: np.ndarray,
    boxes: Sequence[tuple[slice, slice] | None],
    direction: np.ndarray,
    row0: int,
    col0: int,
    want: np.ndarray,
) -> list[tuple[int, ObjectCrop]]:
    """Crops (pixel mask and direction) of the local ``F`` labels where ``want`` is set.

    ``boxes`` is ``ndimage.find_objects(f_lab)``.
    """
    crops = []
    for k, sl in enumerate(boxes, start=1):
        if sl is None or not want[k]:
            continue
        mask = f_lab[sl] == k
        d = np.where(mask, direction[sl], np.float32(0)).astype(np.float32)
        crops.append((k, ObjectCrop(row0 + sl[0].start, col0 + sl[1].start, mask, d)))
    return crops


def edge_labels(labels: np.ndarray) -> np.ndarray:
    """``bool (labels.max() + 1,)``: which labels reach the array's edge.

    Only such objects of a block can continue in a neighbouring block; the others
    are complete.
    """
    out = np.zeros(int(labels.max(initial=0)) + 1, bool)
    for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        out[side] = True
    out[0] = False
    return out


def _classify_inside(
    inside: list[tuple[int, ObjectCrop]],
    geoms: list[tuple[int, Any]],
    objs: BlockObjects,
    stats: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    ctx: ClassifyContext,
) -> dict[int, dict[str, object] | None]:
    """Classify the objects inside a block, as :func:`merge_blocks` would present them."""
    if not inside:
        return {}
    f_sum, f_max, v_max = stats
    by_label: dict[int, list[Any]] = {}
    for label, geom in geoms:
        by_label.setdefault(label, []).append(geom)
    labels = np.array([k for k, _ in inside])
    data: dict[str, Any] = {
        "mean_score": f_sum[labels] / objs.f_count[labels],
        "max_score": f_max[labels],
    }
    if v_max is not None:
        data["verify_peak"] = v_max[labels]
    data["geometry"] = [_union(by_label[int(k)]) for k in labels]
    values = classify_crops(data, [c for _, c in inside], ctx)
    return {int(k): v for k, v in zip(labels, values, strict=True)}


def _union(parts: list[Any]) -> Any:
    """One polygon of an object's parts, without the vertices the block edges left.

    A polygon traced whole has a vertex only where its outline turns; the union of
    parts cut at block edges keeps collinear vertices there, which ``simplify(0)``
    removes, so an object's vertices (and its stable id) do not depend on the blocks.
    """
    if len(parts) == 1:
        return parts[0]
    return shapely.simplify(unary_union(parts), 0.0, preserve_topology=True)


def _merge_crops(parts: list[ObjectCrop]) -> ObjectCrop:
    if len(parts) == 1:
        return parts[0]
    r0 = min(p.row0 for p in parts)
    c0 = min(p.col0 for p in parts)
    r1 = max(p.row0 + p.mask.shape[0] for p in parts)
    c1 = max(p.col0 + p.mask.shape[1] for p in parts)
    mask = np.zeros((r1 - r0, c1 - c0), bool)
    direction = np.zeros(mask.shape, np.float32)
    for p in parts:
        sl = (
            slice(p.row0 - r0, p.row0 - r0 + p.mask.shape[0]),
            slice(p.col0 - c0, p.col0 - c0 + p.mask.shape[1]),
        )
        mask[sl] |= p.mask
        direction[sl] += p.direction  # parts are disjoint, 0 outside their pixels
    return ObjectCrop(r0, c0, mask, direction)


@dataclass(frozen=True)
class BlockObjects:
    """The labelled objects of one block core, computed once and shared by its steps.

    Attributes
    ----------
    m_lab, f_lab : numpy.ndarray
        ``int32 (rows, cols)`` 8-connected labels of ``M = clean`` and ``F = clean & valid``.
    nm, nf : int
        Number of ``M`` and ``F`` labels.
    pos : numpy.ndarray
        Flat indexes of the ``F`` pixels in raster order; ``lab`` their ``F`` labels.
    m_count : numpy.ndarray
        Pixels per ``M`` label (entry 0: background).
    f_to_m, f_count : numpy.ndarray
        Per ``F`` label: its ``M`` label and pixel count.
    edge : numpy.ndarray
        ``bool (nf + 1,)``: the ``F`` label reaches the block edge (may continue).
    small : numpy.ndarray
        ``bool (nf + 1,)``: its ``M`` object lies wholly inside the block and is below
        the minimum area, so the merge drops it whatever the neighbours hold.
    """

    m_lab: np.ndarray
    nm: int
    f_lab: np.ndarray
    nf: int
    pos: np.ndarray
    lab: np.ndarray
    m_count: np.ndarray
    f_to_m: np.ndarray
    f_count: np.ndarray
    edge: np.ndarray
    small: np.ndarray

    def per_object_max(self, values: np.ndarray, *, fill: float) -> np.ndarray:
        """``float64 (nf + 1,)`` maximum of ``values`` (block core) per ``F`` label.

        NaN counts as ``fill``; entry 0 and objects without pixels are ``-inf``.
        """
        out = np.full(self.nf + 1, -np.inf)
        vals = np.nan_to_num(values.ravel()[self.pos].astype(np.float64), nan=fill)
        np.maximum.at(out, self.lab, vals)
        return out

    def may_keep(
        self,
        peak: np.ndarray,
        verify_peak: np.ndarray | None,
        mean_direction: np.ndarray,
        method: str,
    ) -> np.ndarray:
        """``bool (nf + 1,)``: labels a classified run may keep after the merge.

        Those reaching the block edge (the merge decides), and those inside that are
        big enough and may pass the peak and direction rules
        (:func:`~borderwatch.objects.construction.may_be_construction`).
        """
        out = self.edge | (
            ~self.small & may_be_construction(peak, verify_peak, mean_direction, method)
        )
        out[0] = False
        return out

    def per_object_mean(self, values: np.ndarray) -> np.ndarray:
        """``float64 (nf + 1,)`` mean of ``values`` over each ``F`` label's pixels."""
        sums = np.bincount(self.lab, weights=values.ravel()[self.pos], minlength=self.nf + 1)
        return sums / np.maximum(self.f_count, 1)


def block_objects(
    clean: np.ndarray, valid: np.ndarray, *, pixel_area: float = 1.0, min_area_m2: float = 0.0
) -> BlockObjects:
    """Label a block core's cleaned mask ``clean`` and its valid part (see :class:`BlockObjects`).

    ``pixel_area`` (m2) and ``min_area_m2`` decide :attr:`BlockObjects.small`.
    """
    m_lab, nm = label_objects(clean)
    if valid.all():  # F = M
        f_lab, nf = m_lab, nm
    else:
        f_lab, nf = label_objects(clean & valid)
    pos = np.flatnonzero(f_lab)
    lab = f_lab.ravel()[pos]
    # Counted over the labelled pixels only (a sparse mask), the background added after.
    m_at = pos if f_lab is m_lab else np.flatnonzero(m_lab)
    m_count = np.bincount(m_lab.ravel()[m_at], minlength=nm + 1)
    m_count[0] = m_lab.size - m_at.size
    f_to_m = np.zeros(nf + 1, np.int64)
    f_to_m[lab] = m_lab.ravel()[pos]
    f_count = np.bincount(lab, minlength=nf + 1)
    m_small = (m_count * pixel_area < min_area_m2) & ~edge_labels(m_lab)
    m_small[0] = False
    small = m_small[f_to_m]
    edge = edge_labels(f_lab)
    return BlockObjects(m_lab, nm, f_lab, nf, pos, lab, m_count, f_to_m, f_count, edge, small)


def summarise_block(
    index: tuple[int, int],
    objs: BlockObjects,
    score: np.ndarray,
    *,
    row0: int,
    col0: int,
    grid: Grid,
    direction: np.ndarray | None = None,
    verify: np.ndarray | None = None,
    classify: ClassifyContext | None = None,
) -> BlockSummary:
    """Summarise one block's objects for :func:`merge_blocks`.

    Polygons are traced only for objects the merge can keep: those reaching the block
    edge, and inside ones at least the minimum area (and, when classifying, that can
    still be construction: :func:`~borderwatch.objects.construction.may_be_construction`;
    the others are recorded as not construction).

    Parameters
    ----------
    index : tuple of int
        ``(block_row, block_col)``.
    objs : BlockObjects
        :func:`block_objects` of the block core's cleaned mask (before the minimum-area
        rule and before removing invalid pixels) and valid mask.
    score : numpy.ndarray
        Score of the block core.
    row0, col0 : int
        Offset of the block in the grid, pixels.
    grid : Grid
        The whole analysis grid.
    direction : numpy.ndarray, optional
        Construction-direction evidence of the block core (at the object pixels), for
        ``classify``.
    verify : numpy.ndarray, optional
        Verification score of the block core (:func:`~.combined.rank_verification`)
        at least where objects may pass the peak rule; its per-object maximum becomes
        the ``verify_peak`` column after the merge.
    classify : ClassifyContext, optional
        Classify the objects that do not touch the block edge here
        (:attr:`BlockSummary.known`) and keep crops only of the others; needs
        ``direction``.
    """
    if classify is not None and direction is None:
        raise InputError("classify needs the direction evidence")
    nf, f_lab = objs.nf, objs.f_lab
    v_max = None if verify is None else objs.per_object_max(verify, fill=-np.inf)
    f_max = np.maximum(objs.per_object_max(score, fill=0.0), 0.0)  # NaN counts as 0
    f_sum = np.bincount(
        objs.lab,
        weights=np.nan_to_num(score.ravel()[objs.pos].astype(np.float64), nan=0.0),
        minlength=nf + 1,
    )
    f_first = np.zeros(nf + 1, np.int64)
    want = objs.edge | ~objs.small
    want[0] = False  # the background
    known: dict[int, dict[str, object] | None] = {}
    if classify is not None and nf:
        mean_dir = objs.per_object_mean(direction)  # type: ignore[arg-type]
        keep = objs.may_keep(f_max, v_max, mean_dir, classify.method)
        known = {int(k): None for k in np.flatnonzero(want & ~keep)}  # inside, not construction
        want = keep
    if nf:  # every label 1..nf has pixels; its first is the smallest flat index
        first = np.full(nf + 1, f_lab.size, np.int64)
        np.minimum.at(first, objs.lab, objs.pos)
        rows, cols = np.divmod(first[1:], f_lab.shape[1])
        f_first[1:] = (row0 + rows) * grid.shape[1] + col0 + cols
    boxes = ndimage.find_objects(f_lab) if want.any() else []
    todo = [(k, sl) for k, sl in enumerate(boxes, start=1) if sl is not None and want[k]]
    geoms = trace_labels(f_lab, todo, grid.transform, row0=row0, col0=col0)
    crops: list[tuple[int, ObjectCrop]] = []
    if classify is not None and want.any():
        kept = _crops(f_lab, boxes, direction, row0, col0, want)  # type: ignore[arg-type]
        crops = [(k, c) for k, c in kept if objs.edge[k]]
        inside = [(k, c) for k, c in kept if not objs.edge[k]]
        known |= _classify_inside(inside, geoms, objs, (f_sum, f_max, v_max), classify)
    return BlockSummary(
        index,
        objs.m_count,
        _Edges.of(objs.m_lab),
        objs.f_to_m,
        objs.f_count,
        f_sum,
        f_max,
        f_first,
        _Edges.of(f_lab),
        geoms,
        crops,
        v_max,
        known,
    )


def _touching(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label pairs ``(a[i], b[j])`` with ``|i - j| <= 1``, both non-zero (8-connectivity)."""
    pairs = []
    n = a.size
    for d in (-1, 0, 1):
        lo, hi = max(0, -d), min(n, n - d)
        pa, pb = a[lo:hi], b[lo + d : hi + d]
        ok = (pa > 0) & (pb > 0)
        pairs.append(np.stack([pa[ok], pb[ok]], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)


def _components(
    summaries: Mapping[tuple[int, int], BlockSummary],
    counts: Mapping[tuple[int, int], int],
    which: str,
) -> tuple[dict[tuple[int, int], int], np.ndarray]:
    """Global component id of every (block, local label) node for labeling ``which``."""
    offsets: dict[tuple[int, int], int] = {}
    total = 0
    for key in sorted(summaries):
        offsets[key] = total
        total += counts[key] + 1
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []

    def link(ka: tuple[int, int], kb: tuple[int, int], pairs: np.ndarray) -> None:
        if pairs.size:
            src.append(pairs[:, 0].astype(np.int64) + offsets[ka])
            dst.append(pairs[:, 1].astype(np.int64) + offsets[kb])

    for (i, j), s in summaries.items():
        e = getattr(s, f"{which}_edges")
        right, down = summaries.get((i, j + 1)), summaries.get((i + 1, j))
        if right is not None:
            link((i, j), (i, j + 1), _touching(e.right, getattr(right, f"{which}_edges").left))
        if down is not None:
            link((i, j), (i + 1, j), _touching(e.bottom, getattr(down, f"{which}_edges").top))
        for dj, mine, theirs in ((1, -1, 0), (-1, 0, -1)):
            diag = summaries.get((i + 1, j + dj))
            if diag is not None:
                a, b = e.bottom[mine], getattr(diag, f"{which}_edges").top[theirs]
                if a > 0 and b > 0:
                    link((i, j), (i + 1, j + dj), np.array([[a, b]]))
    if src:
        s_all, d_all = np.concatenate(src), np.concatenate(dst)
    else:
        s_all = d_all = np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(s_all.size, np.int8), (s_all, d_all)), shape=(total, total))
    _, comp = connected_components(graph, directed=False)
    return offsets, comp


@dataclass(frozen=True)
class MergeResult:
    """Merged objects and, per block, which local ``F`` labels survived.

    Attributes
    ----------
    objects : geopandas.GeoDataFrame
        As :func:`borderwatch.objects.polygons.mask_to_objects` would give on the whole mask,
        less the objects their block classified as not construction (``known`` None).
    keep : dict
        ``(block_row, block_col) -> bool array`` indexed by local ``F`` label.
    crops : list of ObjectCrop or None
        One per row of ``objects`` when the blocks carried crops, else empty; None
        where the object was classified in its block (see ``known``).
    known : list of dict or None
        One per row when ``crops`` is not empty: the in-block class columns where
        ``crops`` is None (None there too: not construction).
    """

    objects: gpd.GeoDataFrame
    keep: dict[tuple[int, int], np.ndarray]
    crops: list[ObjectCrop | None] = field(default_factory=list)
    known: list[dict[str, object] | None] = field(default_factory=list)


def merge_blocks(
    summaries: Sequence[BlockSummary],
    grid: Grid,
    *,
    min_area_m2: float,
    attrs: Mapping[str, Any] | None = None,
) -> MergeResult:
    """Merge block summaries into one polygon per object across block edges.

    Parameters
    ----------
    summaries : sequence of BlockSummary
        One per block of a regular layout.
    grid : Grid
        The analysis grid (metric CRS, so areas are m2).
    min_area_m2 : float
        Minimum area (m2) of a cleaned-mask object, as in
        :func:`borderwatch.objects.morphology.clean_mask`.
    attrs : mapping, optional
        Constant attributes for every row.

    Returns
    -------
    MergeResult
    """
    by_key = {s.index: s for s in summaries}
    m_off, m_comp = _components(by_key, {k: s.m_count.size - 1 for k, s in by_key.items()}, "m")
    f_off, f_comp = _components(by_key, {k: s.f_to_m.size - 1 for k, s in by_key.items()}, "f")
    n_m = int(m_comp.max()) + 1 if m_comp.size else 0
    m_size = np.zeros(n_m, np.int64)
    for key, s in by_key.items():
        nodes = m_comp[m_off[key] + np.arange(1, s.m_count.size)]
        np.add.at(m_size, nodes, s.m_count[1:])
    keep_m = (m_size * grid.pixel_area >= min_area_m2) if min_area_m2 > 0 else np.ones(n_m, bool)

    n_f = int(f_comp.max()) + 1 if f_comp.size else 0
    f_keep = np.zeros(n_f, bool)
    count = np.zeros(n_f, np.int64)
    total = np.zeros(n_f, np.float64)
    peak = np.full(n_f, -np.inf)
    vpeak = np.full(n_f, -np.inf)
    has_verify = False
    first = np.full(n_f, np.iinfo(np.int64).max)
    keep: dict[tuple[int, int], np.ndarray] = {}
    parts: dict[int, list[Any]] = {}
    crop_parts: dict[int, list[ObjectCrop]] = {}
    known: dict[int, dict[str, object] | None] = {}
    carried = False
    for key in sorted(by_key):
        s = by_key[key]
        local = np.arange(1, s.f_to_m.size)
        nodes = f_comp[f_off[key] + local]
        kept = keep_m[m_comp[m_off[key] + s.f_to_m[1:]]]
        f_keep[nodes] |= kept
        keep[key] = np.concatenate([[False], kept])
        np.add.at(count, nodes, s.f_count[1:])
        np.add.at(total, nodes, s.f_sum[1:])
        np.maximum.at(peak, nodes, s.f_max[1:])
        if s.v_max is not None:
            has_verify = True
            np.maximum.at(vpeak, nodes, s.v_max[1:])
        np.minimum.at(first, nodes, s.f_first[1:])
        for label, geom in s.geoms:
            parts.setdefault(int(f_comp[f_off[key] + label]), []).append(geom)
        for label, crop in s.crops:
            crop_parts.setdefault(int(f_comp[f_off[key] + label]), []).append(crop)
        for label, value in s.known.items():  # inside one block: never merged
            known[int(f_comp[f_off[key] + label])] = value
        carried |= bool(s.crops or s.known)
    # Objects their block already classified as not construction carry no polygon;
    # the classification drops them anyway.
    f_keep[[c for c, v in known.items() if v is None]] = False
    chosen = np.flatnonzero(f_keep & (count > 0))
    chosen = chosen[np.argsort(first[chosen], kind="stable")]
    extra = dict(attrs or {})
    columns = [*OBJECT_COLUMNS, *extra]
    if chosen.size == 0:
        empty = gpd.GeoDataFrame(
            {c: [] for c in columns}, geometry=gpd.GeoSeries([], crs=grid.crs), crs=grid.crs
        )
        return MergeResult(empty, keep)
    geoms = [_union(parts[int(c)]) for c in chosen]
    n = chosen.size
    data: dict[str, Any] = {
        "object_id": np.arange(1, n + 1),
        "area_m2": count[chosen] * grid.pixel_area,
        "mean_score": total[chosen] / count[chosen],
        "max_score": peak[chosen],
        "n_pixels": count[chosen],
    }
    for k, v in extra.items():
        data[k] = [v] * n
    crops: list[ObjectCrop | None] = []
    values: list[dict[str, object] | None] = []
    if carried:
        for c in map(int, chosen):
            crops.append(_merge_crops(crop_parts[c]) if c in crop_parts else None)
            values.append(known.get(c))
    frame = gpd.GeoDataFrame(data, geometry=geoms, crs=grid.crs)
    if has_verify:  # last, where the classification expects it
        frame["verify_peak"] = vpeak[chosen]
    return MergeResult(frame, keep, crops, values)
