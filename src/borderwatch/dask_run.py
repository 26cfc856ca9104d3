"""Dask execution of the block functions: one machine's threads or processes, or a cluster.

The block tasks of :mod:`borderwatch.blocktasks` and the reductions that join them
form one ``dask.delayed`` graph per job (:func:`job_graph`): moments of every block
-> score model -> (Otsu: score extremes -> clipping range -> histograms -> threshold)
-> object summaries -> merged objects. :func:`run_jobs` computes the graphs of many
jobs (AOIs x image pairs) *together*, so the scheduler interleaves their blocks.
The functions are exactly those of the local path, so results are identical.

``scheduler`` is ``"threads"``, ``"processes"`` or ``"synchronous"`` (dask's local
schedulers) or the address of a running dask.distributed scheduler, e.g.
``tcp://10.0.0.5:8786``. Workers must have borderwatch installed and read the input
paths under the same names (a shared file system or object store URL). Results come
back to the calling process, which writes the reports and rasters.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

from borderwatch.blockpass import task_align, task_block, task_block_raster, task_sample
from borderwatch.blocks import (
    BlockJob,
    BlockRun,
    clean_params,
    finish_run,
    fit_job,
    fit_plan,
    resolve_threshold,
    write_rasters,
)
from borderwatch.blockstats import BandMoments, Extremes, merge_histograms
from borderwatch.blocktasks import (
    fit_model,
    merge_extremes,
    otsu_bounds,
    task_histogram,
    task_moments,
    task_objects,
    task_raster,
    task_score,
    threshold_from_histogram,
)
from borderwatch.errors import InputError

__all__ = ["LOCAL_SCHEDULERS", "client_for", "job_graph", "run_job_dask", "run_jobs"]

#: dask's in-process schedulers accepted by ``--scheduler``.
LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


def _needed_k(moments: BandMoments) -> int:
    return Extremes.needed_k(moments.n)


def _sampled_graph(job: BlockJob, scheduler: str) -> tuple[Any, Any, Any]:
    """Graph of a single-pass job: align -> samples -> fit -> blocks -> merge."""
    from dask import delayed

    src = job.source
    align_win, wins, score_halo = fit_plan(job)
    align = delayed(task_align)(src, align_win)
    samples = [delayed(task_sample)(src, w, align, score_halo) for w in wins]
    scene = delayed(fit_job)(job, align, samples)
    summaries = [delayed(task_block)(src, scene, ij, w) for ij, w in job.blocks]
    value = delayed(getattr)(scene, "threshold")
    graph = delayed(finish_run, nout=2)(job, value, summaries, scheduler, scene)
    return graph, scene, None


def job_graph(job: BlockJob, *, scheduler: str = "dask") -> Any:
    """``dask.delayed`` graph of one job, computing ``(BlockRun, keep)``.

    ``keep`` maps each block to the surviving local labels (for the raster pass).
    Returns the graph, the score model and the clean-up parameters (delayed).
    """
    from dask import delayed

    if job.stats == "sample":
        return _sampled_graph(job, scheduler)

    src, wins = job.source, [w for _, w in job.blocks]
    moments = delayed(BandMoments.total)([delayed(task_moments)(src, w) for w in wins])
    model = delayed(fit_model)(job.params.method, moments)
    fixed = resolve_threshold(job)
    if fixed is None:
        k = delayed(_needed_k)(moments)
        ext = delayed(merge_extremes)([delayed(task_score)(src, model, w, k) for w in wins])
        bounds = delayed(otsu_bounds, nout=2)(ext)
        hist = delayed(merge_histograms)(
            [delayed(task_histogram)(src, model, w, bounds[0], bounds[1]) for w in wins]
        )
        value: Any = delayed(threshold_from_histogram)(hist, bounds)
    else:
        value = fixed
    cp = delayed(clean_params)(job, value)
    summaries = [delayed(task_objects)(src, model, ij, w, cp) for ij, w in job.blocks]
    return delayed(finish_run, nout=2)(job, value, summaries, scheduler), model, cp


def client_for(scheduler: str) -> AbstractContextManager[Any]:
    """Return a dask.distributed ``Client`` for an address, or a null context for local ones.

    Raises
    ------
    InputError
        The address cannot be reached.
    """
    if scheduler in LOCAL_SCHEDULERS:
        return nullcontext(None)
    from distributed import Client

    try:
        return Client(scheduler, set_as_default=False, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise InputError(
            f"cannot reach dask scheduler {scheduler!r} ({exc}); give threads, processes, "
            "or the address of a running scheduler such as tcp://host:8786"
        ) from exc


def _compute(client: Any, scheduler: str, graphs: Sequence[Any]) -> list[Any]:
    if client is None:
        import dask

        return list(dask.compute(*graphs, scheduler=scheduler))
    return list(client.gather(client.compute(list(graphs))))


def run_jobs(jobs: Sequence[BlockJob], *, scheduler: str) -> list[BlockRun]:
    """Compute many jobs as one dask graph; one :class:`BlockRun` per job, in order."""
    if not scheduler:
        raise InputError("a dask scheduler is required: threads, processes or an address")
    with client_for(scheduler) as client:
        graphs = [job_graph(job, scheduler=scheduler)[0] for job in jobs]
        return [run for run, _ in _compute(client, scheduler, graphs)]


def _map(
    client: Any,
    scheduler: str,
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    *,
    ahead: int = 8,
) -> Iterator[Any]:
    """Yield ``fn(*a)`` for each ``a`` in order, at most ``ahead`` tasks at a time."""
    from dask import delayed

    for start in range(0, len(args), ahead):
        chunk = [delayed(fn)(*a) for a in args[start : start + ahead]]
        yield from _compute(client, scheduler, chunk)


def run_job_dask(
    job: BlockJob,
    *,
    scheduler: str,
    score_out: str | os.PathLike[str] | None = None,
    mask_out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> BlockRun:
    """Run one job on dask; stream rasters back block by block when asked."""
    with client_for(scheduler) as client:
        graph, model, cp = job_graph(job, scheduler=scheduler)
        (run, keep), model_v, cp_v = _compute(client, scheduler, [graph, model, cp])
        if score_out is None and mask_out is None:
            return run
        if job.stats == "sample":
            fn: Callable[..., Any] = task_block_raster
            args = [(job.source, model_v, w, keep[ij]) for ij, w in job.blocks]
        else:
            fn = task_raster
            args = [(job.source, model_v, w, cp_v, keep[ij]) for ij, w in job.blocks]
        outputs = write_rasters(
            job.source.grid,
            [w for _, w in job.blocks],
            _map(client, scheduler, fn, args),
            score_out=score_out,
            mask_out=mask_out,
            overwrite=overwrite,
        )
    return replace(run, outputs=outputs)
