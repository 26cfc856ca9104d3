"""Regenerate the synthetic sample tiles in this folder.

Usage::

    python data/sample_tiles/generate.py [--out DIR] [--seed N]

The ``borderwatch`` package must be importable (``pip install -e .`` from the
repository root). With the defaults this rewrites ``before.tif``, ``after.tif`` and
``truth.geojson`` next to this script; ``tests/test_synthetic.py`` checks that the
committed files still equal what these defaults produce.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from borderwatch.errors import BorderwatchError
from borderwatch.synthetic import make_pair, write_pair

SEED = 0  # the committed tiles use this seed and make_pair's defaults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="output folder (default: this script's folder)",
    )
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    args = parser.parse_args(argv)
    try:
        paths = write_pair(make_pair(seed=args.seed), args.out, overwrite=True)
    except BorderwatchError as exc:
        print(f"generate.py: {exc}", file=sys.stderr)
        return 1
    for path in paths.values():
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
