"""``borderwatch verify``: check an evidence packet against its manifest."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from borderwatch.products.manifest import verify_packet

__all__ = ["verify"]


@click.command()
@click.argument("packet", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--outputs-only",
    is_flag=True,
    help="Skip the input images (e.g. on a machine that only has the packet).",
)
def verify(packet: Path, outputs_only: bool) -> None:
    """Recompute the SHA-256 of every file in PACKET's manifest.json.

    Exit code 0 when every listed file is present and unchanged and the folder
    holds no unlisted file; 1 otherwise, with each changed, missing or extra file
    named.
    """
    result = verify_packet(packet, inputs=not outputs_only)
    for label, names in (
        ("changed", result.changed),
        ("missing", result.missing),
        ("extra", result.extra),
    ):
        for name in names:
            click.echo(f"{label}: {name}")
    if result.ok:
        click.echo(f"ok: {result.checked} files match {packet / 'manifest.json'}")
        return
    click.echo(
        f"FAILED: {len(result.changed)} changed, {len(result.missing)} missing, "
        f"{len(result.extra)} extra of {result.checked} listed files",
        err=True,
    )
    sys.exit(1)
