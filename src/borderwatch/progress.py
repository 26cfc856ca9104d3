"""Progress bars on stderr for long work, silent when quiet or not on a terminal.

:func:`progress_reporter` returns an object with ``stage(description, total)``
(the :class:`borderwatch.blocks.Progress` protocol) that opens one rich progress bar
per stage and returns its ``advance()``, ``activity(description)`` for work whose
size is unknown (an elapsed-time bar) and ``note(text)`` for a line above the bars;
or ``None`` when progress must stay silent (``--quiet``, or stderr redirected to a
file or pipe), so log files and CI output carry no control characters.
:func:`activity` is the one-call form for a run that reports no steps.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["RichProgress", "activity", "progress_reporter", "wants_progress"]


def wants_progress(*, quiet: bool, stream: IO[str] | None = None) -> bool:
    """Whether to show progress: not quiet and ``stream`` (default stderr) is a terminal."""
    stream = stream if stream is not None else sys.stderr
    return not quiet and bool(getattr(stream, "isatty", lambda: False)())


@dataclass(frozen=True)
class RichProgress:
    """Rich progress bars on a stderr console (one task per stage)."""

    progress: Progress

    def stage(self, description: str, total: int) -> Callable[[], None]:
        """Start a bar for ``total`` blocks; return the function that advances it by one."""
        task = self.progress.add_task(description, total=total)
        return lambda: self.progress.advance(task)

    @contextlib.contextmanager
    def activity(self, description: str) -> Iterator[None]:
        """Show a bar of unknown length with the elapsed time while the block runs."""
        task = self.progress.add_task(description, total=None)
        try:
            yield
        finally:
            self.progress.update(task, total=1, completed=1)

    def note(self, text: str) -> None:
        """Print one line above the bars (kept when the bars are gone)."""
        self.progress.console.print(text, markup=False, highlight=False)


@contextlib.contextmanager
def progress_reporter(
    *, quiet: bool, stream: IO[str] | None = None
) -> Iterator[RichProgress | None]:
    """Context manager yielding a :class:`RichProgress`, or ``None`` when silent.

    Parameters
    ----------
    quiet : bool
        ``--quiet`` given.
    stream : file, optional
        Where bars go (default ``sys.stderr``).
    """
    stream = stream if stream is not None else sys.stderr
    if not wants_progress(quiet=quiet, stream=stream):
        yield None
        return
    # Imported only when bars are shown: a quiet or piped run does not pay for rich.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bars = Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(file=stream),
    )
    with bars:
        yield RichProgress(bars)


@contextlib.contextmanager
def activity(description: str, *, quiet: bool, stream: IO[str] | None = None) -> Iterator[None]:
    """Show ``description`` with the elapsed time while the block runs (a terminal only).

    For work that reports no steps, such as an in-memory detection.

    Parameters
    ----------
    description : str
        What is being done (``"detecting"``).
    quiet : bool
        ``--quiet`` given.
    stream : file, optional
        Where the bar goes (default ``sys.stderr``).
    """
    with progress_reporter(quiet=quiet, stream=stream) as progress:
        if progress is None:
            yield
            return
        with progress.activity(description):
            yield
