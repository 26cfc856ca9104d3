"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["detect_options", "parse_threshold"]


def parse_threshold(value: str) -> str | float:
    """Return a threshold name or a float, raising ``click.BadParameter`` otherwise."""
    try:
        return float(value)
    except ValueError:
        if value.replace("-", "_").isidentifier():
            return value
        raise click.BadParameter(f"{value!r} is neither a number nor a method name") from None


def detect_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Detection parameters shared by ``detect`` and ``demo``."""
    opts = [
        click.option("--method", default="cva", show_default=True, help="Change score method."),
        click.option(
            "--threshold",
            default="otsu",
            show_default=True,
            help="Threshold: a method name (otsu) or a fixed score value.",
        ),
        click.option(
            "--min-area",
            "min_area_m2",
            type=click.FloatRange(min=0),
            default=20.0,
            show_default=True,
            help="Smallest detection kept, in m2.",
        ),
        click.option("--overwrite", is_flag=True, help="Replace existing output files."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn
