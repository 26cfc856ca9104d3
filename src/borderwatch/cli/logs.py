"""Log output of the CLI: borderwatch's own stages, not its libraries' debug chatter.

``-v`` shows borderwatch's INFO lines (the stages of a run), ``-vv`` its DEBUG lines;
``-q`` only errors. Libraries stay at WARNING whatever the count, so ``-vv`` does not
bury the stages under GDAL environment and PROJ messages from rasterio, fiona or pyogrio:
their warnings and errors still show. Lines go to stderr as
``HH:MM:SS LEVEL logger: message``, through whatever ``sys.stderr`` is when they are
written, so they print above progress bars instead of through them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable

__all__ = [
    "LIBRARY_LOGGERS",
    "borderwatch_level",
    "configure_logging",
    "quiet_libraries",
    "quiet_scheduler",
]

#: Third-party loggers pinned to WARNING (some set a lower level of their own:
#: ``distributed`` sets INFO when imported, so :func:`quiet_libraries` runs again after).
LIBRARY_LOGGERS = (
    "rasterio",
    "pyogrio",
    "fiona",
    "distributed",
    "asyncio",
    "PIL",
    "matplotlib",
    "fsspec",
    "urllib3",
    "numba",
    "tornado",
    "bokeh",
)

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Stream handler writing to the ``sys.stderr`` of the moment it writes."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # type: ignore[no-untyped-def]
        pass


class _OwnOrWarning(logging.Filter):
    """Pass borderwatch's records at any level, everyone else's from WARNING up."""

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == "borderwatch" or record.name.startswith("borderwatch.")
        return own or record.levelno >= logging.WARNING


def borderwatch_level(*, verbose: int, quiet: bool) -> int:
    """Level of the ``borderwatch`` logger for ``-v`` count and ``-q``.

    Examples
    --------
    >>> [logging.getLevelName(borderwatch_level(verbose=v, quiet=False)) for v in (0, 1, 2)]
    ['WARNING', 'INFO', 'DEBUG']
    >>> logging.getLevelName(borderwatch_level(verbose=2, quiet=True))
    'ERROR'
    """
    if quiet:
        return logging.ERROR
    return max(logging.DEBUG, logging.WARNING - 10 * verbose)


def quiet_libraries() -> None:
    """Set every logger of :data:`LIBRARY_LOGGERS` to WARNING."""
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def quiet_scheduler(scheduler: str | None) -> None:
    """Before a run on a dask.distributed address: import it, then quiet its loggers.

    ``distributed`` sets its loggers to INFO when it is imported; importing it here
    first keeps its connection chatter out of ``-v``. Local schedulers: nothing to do.
    """
    if scheduler in (None, "local", "threads", "processes", "synchronous"):
        return
    with contextlib.suppress(ImportError):
        import distributed  # noqa: F401
    quiet_libraries()


def configure_logging(*, verbose: int, quiet: bool) -> Callable[[], None]:
    """Route log records to stderr for one CLI run.

    Parameters
    ----------
    verbose : int
        Number of ``-v``: 0 warnings, 1 borderwatch's stages (INFO), 2 and more DEBUG.
    quiet : bool
        ``-q``: errors only.

    Returns
    -------
    callable
        Undoes the configuration (handler, levels); the CLI calls it when the command
        ends, so runs in one process (tests) do not stack handlers.
    """
    root, own = logging.getLogger(), logging.getLogger("borderwatch")
    libs = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    saved = (root.level, own.level)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(_OwnOrWarning())
    root.addHandler(handler)
    root.setLevel(logging.ERROR if quiet else logging.WARNING)
    own.setLevel(borderwatch_level(verbose=verbose, quiet=quiet))
    quiet_libraries()

    def restore() -> None:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        own.setLevel(saved[1])
        for name, level in libs.items():
            logging.getLogger(name).setLevel(level)

    return restore
