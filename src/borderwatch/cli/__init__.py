"""Command-line interface: one click group, one module per command.

The CLI layer only parses options and prints; algorithms live in the library
modules. Any :class:`~borderwatch.errors.BorderwatchError` becomes one readable
line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from borderwatch import __version__
from borderwatch.errors import BorderwatchError

__all__ = ["main"]


class _Group(click.Group):
    """Click group that turns library errors into one line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BorderwatchError as exc:
            click.echo(f"borderwatch: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="borderwatch")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress or summary.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Find and document new construction in before/after satellite imagery."""
    level = logging.ERROR if quiet else (logging.WARNING - 10 * verbose)
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet


def _register() -> None:
    # Imported here so each command module stays independent of the others.
    from borderwatch.cli import aoi_cmd, demo_cmd, detect_cmd

    main.add_command(aoi_cmd.aoi)
    main.add_command(detect_cmd.detect)
    main.add_command(demo_cmd.demo)
    from borderwatch.cli import batch_cmd  # many AOIs x pairs (issue 4)

    main.add_command(batch_cmd.batch)
    from borderwatch.cli import review_cmd, verify_cmd  # analyst outputs (issue 5)

    main.add_command(review_cmd.review)
    main.add_command(verify_cmd.verify)
    from borderwatch.cli import evaluate_cmd  # accuracy against truth (issue 3)

    main.add_command(evaluate_cmd.evaluate)
    from borderwatch.cli import train_cmd  # optional learned mode (issue 3)

    main.add_command(train_cmd.train)


_register()
