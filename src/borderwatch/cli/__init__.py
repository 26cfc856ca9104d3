"""Command-line interface: one click group, one module per command.

The CLI layer only parses options and prints; algorithms live in the library
modules. Any :class:`~borderwatch.errors.BorderwatchError` becomes one readable
line on stderr and exit code 2. Exit code 1 means the command ran but found a
problem it reports: ``verify`` when files changed, ``batch`` when a job failed (the
other jobs' outputs and ``batch.json`` are written).

``-v`` logs borderwatch's stages, ``-vv`` its debug lines; libraries (rasterio, GDAL,
fiona, dask.distributed, ...) log only warnings and errors (:mod:`borderwatch.cli.logs`).
``-q`` leaves errors only: no progress bars, no summary.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from borderwatch import __version__
from borderwatch.cli.logs import configure_logging
from borderwatch.errors import BorderwatchError

__all__ = ["main"]


#: Command name -> (module, attribute). Each command's module is imported only when
#: that command runs (or help lists them all), so ``detect`` does not pay for the
#: imports of ``evaluate`` or ``train``.
_COMMANDS = {
    "aoi": ("borderwatch.cli.aoi_cmd", "aoi"),
    "detect": ("borderwatch.cli.detect_cmd", "detect_command"),
    "demo": ("borderwatch.cli.demo_cmd", "demo"),
    "batch": ("borderwatch.cli.batch_cmd", "batch"),  # many AOIs x pairs (issue 4)
    "review": ("borderwatch.cli.review_cmd", "review"),  # analyst outputs (issue 5)
    "verify": ("borderwatch.cli.verify_cmd", "verify"),
    "keygen": ("borderwatch.cli.keygen_cmd", "keygen"),  # packet signing keys (issue 14)
    "evaluate": ("borderwatch.cli.evaluate_cmd", "evaluate"),  # accuracy (issue 3)
    "train": ("borderwatch.cli.train_cmd", "train"),  # optional learned mode (issue 3)
    "monitor": ("borderwatch.cli.monitor_cmd", "monitor_command"),  # stacks (issue 15)
}


class _Group(click.Group):
    """Click group that loads commands on demand and turns library errors into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS and cmd_name not in self.commands:
            module, attr = _COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BorderwatchError as exc:
            click.echo(f"borderwatch: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="borderwatch")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log borderwatch's stages (-vv: its debug lines too; libraries: warnings only).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress or summary.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Find and document new construction in before/after satellite imagery."""
    ctx.call_on_close(configure_logging(verbose=verbose, quiet=quiet))
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
