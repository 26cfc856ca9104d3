"""The one detection engine: plan -> fit -> apply per block -> objects -> merge -> classify.

:func:`detect` runs one before/after pair at any scene size on any executor; a small
scene is one block. Stages are separate modules so a notebook can call any of them:
:mod:`.plan` (grid, blocks, sample, halo), :mod:`.fit` (co-registration and the
methods' global statistics), :mod:`.apply` (one block), :mod:`.executors` (local
threads, Dask, dask.distributed), :mod:`.run` (the stage sequence) and :mod:`.result`
(the run and its provenance).
"""

from __future__ import annotations

from borderwatch.engine.params import DetectParams
from borderwatch.engine.plan import DEFAULT_BLOCK_SIZE, Plan, make_plan
from borderwatch.engine.result import DetectionRun, run_metadata
from borderwatch.engine.run import detect, run_plan

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DetectParams",
    "DetectionRun",
    "Plan",
    "detect",
    "make_plan",
    "run_metadata",
    "run_plan",
]
