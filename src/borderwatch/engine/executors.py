"""Executors: who runs the engine's task functions (never a home-made scheduler).

An executor maps a top-level task function over argument tuples and yields the
results *in order*, with a bounded number of tasks in flight, so memory stays bounded
by the blocks in flight whatever the scene size. :func:`executor_for` returns

- ``None`` / ``"local"``: this process, a thread pool with a bounded queue
  (:func:`borderwatch.engine.pool.local_mapper`; reads and numpy release the GIL);
- ``"threads"``, ``"processes"``, ``"synchronous"``: Dask's local schedulers;
- an address (``tcp://host:8786``): a dask.distributed cluster.

Every executor runs the same functions on the same picklable arguments.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from borderwatch.engine.pool import Mapper, local_mapper
from borderwatch.errors import InputError

__all__ = ["DASK_LOCAL", "Executor", "executor_for"]

#: Dask's in-process schedulers accepted by ``--scheduler``.
DASK_LOCAL = ("threads", "processes", "synchronous")


@dataclass(frozen=True)
class Executor:
    """Maps task functions over argument tuples, results in order.

    Attributes
    ----------
    name : str
        ``local``, a Dask scheduler name or a dask.distributed address.
    map : callable
        ``map(fn, args) -> iterator`` of ``fn(*a)`` in order.
    local : bool
        True for the in-process thread pool (it may share a tile reader).
    workers : int
        Threads of the local pool (0 for Dask).
    """

    name: str
    map: Mapper
    local: bool
    workers: int = 0


def _dask_mapper(client: Any, scheduler: str, *, ahead: int) -> Any:
    from dask import delayed

    def run(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]) -> Iterator[Any]:
        for start in range(0, len(args), ahead):
            chunk = [delayed(fn, pure=False)(*a) for a in args[start : start + ahead]]
            if client is None:
                import dask

                yield from dask.compute(*chunk, scheduler=scheduler)
            else:
                yield from client.gather(client.compute(chunk))

    return run


@contextlib.contextmanager
def executor_for(
    scheduler: str | None = None, *, workers: int | None = None, ahead: int = 8
) -> Iterator[Executor]:
    """Yield the executor for ``scheduler`` (see the module docstring).

    Parameters
    ----------
    scheduler : str, optional
        ``None``/``"local"``, a Dask local scheduler name, or a dask.distributed address.
    workers : int, optional
        Local threads (default: CPU count).
    ahead : int
        Dask tasks in flight at most.

    Raises
    ------
    InputError
        A dask.distributed address that cannot be reached.
    """
    import os

    if scheduler in (None, "local"):
        n = workers or os.cpu_count() or 1
        yield Executor("local", local_mapper(workers=n), True, n)
        return
    assert scheduler is not None
    if scheduler in DASK_LOCAL:
        yield Executor(scheduler, _dask_mapper(None, scheduler, ahead=ahead), False)
        return
    from distributed import Client

    try:
        client = Client(scheduler, set_as_default=False, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise InputError(
            f"cannot reach dask scheduler {scheduler!r} ({exc}); give threads, processes, "
            "or the address of a running scheduler such as tcp://host:8786"
        ) from exc
    with client:
        yield Executor(scheduler, _dask_mapper(client, scheduler, ahead=ahead), False)
