"""Options shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import click

from borderwatch.engine.params import DetectParams, MethodName
from borderwatch.errors import InputError
from borderwatch.imagery import ImageryOptions, parse_date

__all__ = [
    "SIGN_KEY_ENV",
    "detect_options",
    "detect_params",
    "imagery_options",
    "packet_options",
    "parse_threshold",
    "print_packet",
    "scale_options",
    "sign_key_file",
]

#: Environment variable naming the private key that signs evidence packets.
SIGN_KEY_ENV = "BORDERWATCH_SIGN_KEY"
#: ``click.Context.meta`` key of the ``--sign-key`` file (see :func:`sign_key_file`).
_SIGN_KEY_META = "borderwatch.sign_key_file"


def parse_threshold(value: str) -> str | float:
    """Return a threshold name or a float, raising ``click.BadParameter`` otherwise."""
    try:
        return float(value)
    except ValueError:
        if value.replace("-", "_").isidentifier():
            return value
        raise click.BadParameter(f"{value!r} is neither a number nor a method name") from None


def _band_list(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``--bands a,b,c`` as a tuple of names (None when not given)."""
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(","))
    if any(not n for n in names):
        raise click.BadParameter(f"{value!r}: give comma-separated band names")
    return names


def detect_params(*, threshold: str, **options: Any) -> DetectParams:
    """Return the validated :class:`~borderwatch.engine.DetectParams` of the options."""
    return DetectParams(threshold=parse_threshold(threshold), **options)  # type: ignore[arg-type]


def detect_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the detection parameters shared by ``detect``, ``demo`` and ``batch``."""
    return _detect_options(fn, method_default="auto")


def monitor_detect_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`detect_options` for ``monitor``, whose default method is ``combined``.

    The dating rules and their benchmark (``benchmarks/dating.py``) were measured with
    the unsupervised score; ``--method auto`` opts in to the structure model.
    """
    return _detect_options(fn, method_default="combined")


def _detect_options(fn: Callable[..., Any], *, method_default: str) -> Callable[..., Any]:
    opts = [
        click.option(
            "--method",
            type=click.Choice(get_args(MethodName)),
            default=method_default,
            show_default=True,
            help=(
                "Change score method: auto (the structure network at 2.5 m or finer with "
                "red, green and blue, else combined), combined, cva, irmad, index or "
                "structure."
            ),
        ),
        click.option(
            "--reranker",
            type=click.Path(dir_okay=False, path_type=str),
            default=None,
            help=(
                "Re-ranker from `borderwatch train --from-reviews`: confidence becomes the "
                "chance an analyst confirms a detection; below 0.5 it is dropped."
            ),
        ),
        click.option(
            "--bands",
            default=None,
            callback=_band_list,
            metavar="NAMES",
            help=(
                "Names of the inputs' bands in file order, comma-separated (e.g. "
                "blue,green,red,nir), in place of the files' band descriptions."
            ),
        ),
        click.option(
            "--threshold",
            default="ki",
            show_default=True,
            help="Threshold: ki (Kittler-Illingworth), otsu, chi2 (with irmad) or a fixed value.",
        ),
        click.option(
            "--align/--no-align",
            default=True,
            show_default=True,
            help="Co-register the after date onto the before date.",
        ),
        click.option(
            "--normalise",
            type=click.Choice(["none", "irmad", "histogram"]),
            default="none",
            show_default=True,
            help="Relative radiometric normalisation of the after date.",
        ),
        click.option(
            "--classify/--no-classify",
            default=True,
            show_default=True,
            help="Keep construction-direction objects; add class, length, confidence.",
        ),
        click.option(
            "--p-value",
            "p_value",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            default=0.01,
            show_default=True,
            help="False-alarm rate of the chi2 threshold.",
        ),
        click.option(
            "--model",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="Model file from 'borderwatch train' (replaces --method/--threshold).",
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


def grid_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--resolution`` and ``--crs`` (the analysis grid) of ``detect`` and ``monitor``."""
    fn = click.option("--crs", default=None, help="Analysis CRS (default: local UTM zone).")(fn)
    return click.option(
        "--resolution",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Analysis pixel size in metres (default: finest input).",
    )(fn)


def scale_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Block-by-block and dask options shared by ``detect`` and ``batch``."""
    opts = [
        click.option(
            "--block-size",
            type=click.IntRange(min=16),
            default=None,
            help="Block edge in pixels (aligned to the input tiles) [default: 1024].",
        ),
        click.option(
            "--scheduler",
            default=None,
            help="Run the blocks on Dask: threads, processes, or a dask.distributed "
            "address such as tcp://host:8786 [default: a local thread pool].",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _load_sign_key(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Load the signing key while the options are parsed: a bad key stops before any work."""
    if not value:
        return None
    from borderwatch.products.signing import load_private_key

    key = load_private_key(value)
    ctx.meta[_SIGN_KEY_META] = Path(value)
    return key


def sign_key_file() -> Path | None:
    """Return the file the current command's ``--sign-key`` (or its env variable) names.

    The option gives the command the loaded key; its file is kept here so the command
    can refuse a key inside the evidence folder before any work.
    """
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_SIGN_KEY_META) if ctx is not None else None


def packet_options(*, redact: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--sign-key`` and ``--redact/--no-redact`` (default ``redact``) to a command.

    The command receives ``sign_key`` (an Ed25519 private key or None) and ``redact``.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(
            "--redact/--no-redact",
            default=redact,
            show_default=True,
            help="Leave host name, user name and absolute paths out of the evidence packet.",
        )(fn)
        return click.option(
            "--sign-key",
            "sign_key",
            envvar=SIGN_KEY_ENV,
            type=click.Path(dir_okay=False),
            default=None,
            callback=_load_sign_key,
            help=f"Ed25519 private key (from 'borderwatch keygen') to sign the evidence "
            f"packet [env {SIGN_KEY_ENV}].",
        )(fn)

    return decorate


def print_packet(packet: Any, *, label: str = "") -> None:
    """Print the packet's manifest SHA-256 (to record elsewhere) and its signer."""
    if packet is None:
        return
    click.echo(f"  {label}manifest sha256 {packet.manifest_sha256} (record it elsewhere)")
    if packet.signed_by is not None:
        click.echo(f"  {label}signed by key {packet.signed_by}")
    else:
        click.echo(f"  {label}not signed (give --sign-key to sign the packet)")


def _date_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_date(value, where=f"--{param.name.replace('_', '-')}")
    except InputError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[1]) from None


def imagery_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the imagery metadata options of ``detect`` and ``demo``.

    The command receives ``imagery`` (``{"before": ImageryOptions, "after":
    ImageryOptions}``) and ``allow_reversed`` instead of the single options. A
    per-date ``--before-credit``/``--after-credit`` wins over ``--credit`` (one credit
    for both dates); values not given are read from the files
    (:mod:`borderwatch.imagery`).
    """
    roles = ("before", "after")
    opts = [
        *(
            click.option(
                f"--{role}-date",
                default=None,
                callback=_date_option,
                help=f"Acquisition date of the {role} image, YYYY-MM-DD "
                "[default: from the file's tags or product name].",
            )
            for role in roles
        ),
        click.option(
            "--credit",
            default=None,
            help="Imagery credit of both dates, e.g. '© Maxar Technologies 2021' "
            "[default: from the files].",
        ),
        *(
            click.option(
                f"--{role}-credit",
                default=None,
                help=f"Credit of the {role} image (over --credit).",
            )
            for role in roles
        ),
        *(
            click.option(
                f"--{role}-scene-id", default=None, help=f"Provider's scene id of the {role} image."
            )
            for role in roles
        ),
        click.option(
            "--allow-reversed",
            is_flag=True,
            help="Run even when the before date is later than the after date, or both "
            "dates are the same imagery (same files or same bytes); refused by default.",
        ),
    ]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> Any:
        shared = kw.pop("credit")
        kw["imagery"] = {
            role: ImageryOptions(
                date=kw.pop(f"{role}_date"),
                credit=kw.pop(f"{role}_credit") or shared,
                scene_id=kw.pop(f"{role}_scene_id"),
            )
            for role in roles
        }
        return fn(*args, **kw)

    out: Callable[..., Any] = wrapper
    for opt in reversed(opts):
        out = opt(out)
    return out
