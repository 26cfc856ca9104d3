"""``borderwatch verify``: check an evidence packet against its manifest and signature."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from borderwatch.products.manifest import verify_packet
from borderwatch.products.signing import load_public_key

__all__ = ["verify"]


@click.command()
@click.argument("packet", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Trusted public key (from 'borderwatch keygen'): the packet must be signed by it.",
)
@click.option(
    "--outputs-only",
    is_flag=True,
    help="Check the packet's own files only, not the inputs or layers outside it "
    "(e.g. on a machine that only has the packet).",
)
def verify(packet: Path, key_file: Path | None, outputs_only: bool) -> None:
    """Check PACKET: every file's SHA-256, no symbolic links, the custody log, the signature.

    Exit code 0 when every listed file is present and unchanged, the folder holds no
    unlisted file or link, the custody chain is intact and the signature (if any, and
    by --key if given) is good; 1 otherwise, one line per problem; 2 when the
    manifest or a key cannot be read.
    """
    key = load_public_key(key_file) if key_file is not None else None
    result = verify_packet(packet, inputs=not outputs_only, key=key)
    for label, names in (
        ("changed", result.changed),
        ("missing", result.missing),
        ("extra", result.extra),
    ):
        for name in names:
            click.echo(f"{label}: {name}")
    for line in result.problems:
        click.echo(line)
    for line in result.notes:
        click.echo(line)
    if result.ok:
        if result.signed_by is not None:
            trust = "the given key" if key is not None else "give --key to check it is trusted"
            click.echo(f"signed by key {result.signed_by} ({trust})")
        click.echo(f"ok: {result.checked} files match {packet / 'manifest.json'}")
        return
    click.echo(
        f"FAILED: {len(result.changed)} changed, {len(result.missing)} missing, "
        f"{len(result.extra)} extra of {result.checked} listed files, "
        f"{len(result.problems)} other problems",
        err=True,
    )
    sys.exit(1)
