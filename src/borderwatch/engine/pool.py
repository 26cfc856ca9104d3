"""Local execution of block tasks: a thread pool with a bounded queue, and progress hooks.

:func:`local_mapper` runs one task function over many blocks on a thread pool with at
most ``prefetch`` blocks in flight: while one block is being computed the next ones are
being read (rasterio/GDAL and numpy release the GIL), and memory stays bounded by the
blocks in flight. :mod:`borderwatch.dask_run` is the Dask counterpart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

__all__ = ["Mapper", "Progress", "each", "local_mapper"]


class Mapper(Protocol):
    """Runs ``fn(*args)`` for every argument tuple, yielding results in order."""

    def __call__(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]) -> Iterator[Any]:
        """Yield ``fn(*a)`` for each ``a`` in ``args``, in order."""
        ...


def local_mapper(*, workers: int | None = None, prefetch: int | None = None) -> Mapper:
    """Thread-pool mapper with at most ``prefetch`` blocks in flight (a bounded queue).

    Parameters
    ----------
    workers : int, optional
        Threads (default: CPU count). Reads release the GIL, so decoding overlaps
        the numpy work of other blocks.
    prefetch : int, optional
        Blocks submitted ahead of the one being consumed (default ``workers + 1``).
    """
    n = workers or os.cpu_count() or 1
    ahead = prefetch or n + 1

    def run(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]) -> Iterator[Any]:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="borderwatch-block") as pool:
            pending: list[Future[Any]] = []
            it = iter(args)
            for a in it:
                pending.append(pool.submit(fn, *a))
                if len(pending) >= ahead:
                    break
            while pending:
                result = pending.pop(0).result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(fn, *nxt))
                yield result

    return run


class Progress(Protocol):
    """Progress sink: ``stage(description, total)`` returns an ``advance()`` callable."""

    def stage(self, description: str, total: int) -> Callable[[], None]:
        """Start a stage of ``total`` blocks; return the callable that advances it."""
        ...


def each(
    mapper: Mapper,
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    progress: Progress | None,
    label: str,
) -> Iterator[Any]:
    """Map ``fn`` over ``args`` with ``mapper``, advancing a progress stage per result."""
    advance = progress.stage(label, len(args)) if progress is not None else None
    for result in mapper(fn, args):
        if advance is not None:
            advance()
        yield result
