"""``borderwatch keygen``: a new Ed25519 key pair for signing evidence packets."""

from __future__ import annotations

from pathlib import Path

import click

from borderwatch.products.signing import generate_keys

__all__ = ["keygen"]


@click.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the key files (created if missing; existing keys are never replaced).",
)
def keygen(out_dir: Path) -> None:
    """Write a private signing key (mode 0600) and its public key; print the fingerprint.

    Keep the private key off any packet and any shared drive; give the public key
    (and its fingerprint, through another channel) to whoever checks the packets
    with 'borderwatch verify --key'.
    """
    pair = generate_keys(out_dir)
    click.echo(f"wrote private key {pair.private} (keep it secret)")
    click.echo(f"wrote public key  {pair.public}")
    click.echo(f"fingerprint {pair.fingerprint}")
