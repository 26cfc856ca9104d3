"""Monitoring over time: a stack of dates through the one engine, dated per structure.

:func:`monitor` streams the dates of a stack (:mod:`borderwatch.monitor.stack`) through
the detection engine (:mod:`borderwatch.monitor.run`), links the objects found on each
date into structures with a bracketed date and a status (:mod:`borderwatch.monitor.track`)
and accounts for every pixel of the area on every date (:mod:`borderwatch.monitor.ledger`).
"""

from borderwatch.monitor.run import MonitorRun, monitor
from borderwatch.monitor.stack import StackEntry, entries_from_dates, read_stack_csv

__all__ = ["MonitorRun", "StackEntry", "entries_from_dates", "monitor", "read_stack_csv"]
