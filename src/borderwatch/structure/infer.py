"""ONNX inference of the structure-change network with onnxruntime (default install).

A model file is an ONNX graph from :func:`borderwatch.structure.train.export_onnx`:
input ``(n, 6, rows, cols)`` (:func:`~borderwatch.structure.prep.stack_input`), output
the probability of a new structure ``(n, 1, rows, cols)``, and metadata
(:data:`META_KEYS`) saying which band roles it takes, at which pixel size and which
multiple its rows and columns must be. :data:`DEFAULT_MODEL` is the model shipped in
the package (``models/MODEL_CARD.md`` beside it).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from borderwatch.errors import InputError, MissingDependencyError

__all__ = [
    "CALIBRATION_KEY",
    "DEFAULT_MODEL",
    "META_KEYS",
    "ModelInfo",
    "load_model_info",
    "predict",
]

#: The shipped model.
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "structure_v2.onnx"
#: Metadata every structure model carries.
META_KEYS = ("borderwatch_structure", "band_roles", "pixel_m", "input_multiple")
#: Optional metadata: JSON ``{"mean_probability": [...], "share_real": [...], ...}``.
CALIBRATION_KEY = "object_calibration"


@dataclass(frozen=True)
class ModelInfo:
    """What a structure model file declares (it pickles: no session inside).

    Attributes
    ----------
    path : str
        The ONNX file.
    sha256 : str
        Its SHA-256 (recorded in the run's metadata).
    band_roles : tuple of str
        Band roles per date, in input order (``red, green, blue``).
    pixel_m : float
        Pixel size the model is applied at, metres.
    multiple : int
        Input rows and columns must be multiples of this.
    calibration : tuple or None
        ``(mean probabilities, share real)`` of the object calibration the file
        carries (metadata :data:`CALIBRATION_KEY`,
        :mod:`borderwatch.structure.calibrate`); None for none.
    """

    path: str
    sha256: str
    band_roles: tuple[str, ...]
    pixel_m: float
    multiple: int
    calibration: tuple[tuple[float, ...], tuple[float, ...]] | None = None


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - a default dependency
        raise MissingDependencyError(
            "the structure method needs onnxruntime: pip install onnxruntime"
        ) from None
    # offline tool: no telemetry events (and no device id written under ~/.cache)
    onnxruntime.disable_telemetry_events()
    return onnxruntime


@functools.lru_cache(maxsize=4)
def _session(path: str, sha256: str) -> Any:
    """One onnxruntime session per model file and content (``sha256`` keys the cache)."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise InputError(f"{path}: not a readable ONNX model ({exc})") from None


def load_model_info(path: str | Path) -> ModelInfo:
    """Read and check a structure model's metadata.

    Raises
    ------
    InputError
        The file is missing, not ONNX, or not a structure model (metadata missing).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: structure model file not found")
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    meta = _session(str(p), sha).get_modelmeta().custom_metadata_map
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise InputError(f"{p}: not a borderwatch structure model (metadata lacks {missing})")
    return ModelInfo(
        str(p),
        sha,
        tuple(meta["band_roles"].split(",")),
        float(meta["pixel_m"]),
        int(meta["input_multiple"]),
        _calibration(p, meta.get(CALIBRATION_KEY)),
    )


def _calibration(
    path: Path, text: str | None
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Return the calibration knots of a model's metadata (None when it has none)."""
    if text is None:
        return None
    try:
        data = json.loads(text)
        xs = tuple(float(v) for v in data["mean_probability"])
        ys = tuple(float(v) for v in data["share_real"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: unreadable {CALIBRATION_KEY} metadata ({exc})") from None
    ok = len(xs) == len(ys) and bool(xs) and bool(np.isfinite([*xs, *ys]).all())
    ok = ok and all(b > a for a, b in zip(xs, xs[1:], strict=False))
    ok = (
        ok
        and all(0 <= y <= 1 for y in ys)
        and all(b >= a for a, b in zip(ys, ys[1:], strict=False))
    )
    if not ok:
        raise InputError(
            f"{path}: {CALIBRATION_KEY} needs paired finite knots, scores strictly "
            "increasing and shares non-decreasing in [0, 1]"
        )
    return xs, ys


def predict(info: ModelInfo, x: np.ndarray) -> np.ndarray:
    """Probability of a new structure ``float32 (rows, cols)`` of an input ``(6, rows, cols)``.

    The input is padded by reflection to the model's multiple and the output cropped.
    """
    rows, cols = x.shape[1:]
    m = info.multiple
    pr, pc = (-rows) % m, (-cols) % m
    if pr or pc:
        pad = ((0, 0), (0, pr), (0, pc))
        x = np.pad(x, pad, mode="reflect") if min(rows, cols) > 1 else np.pad(x, pad, mode="edge")
    sess = _session(info.path, info.sha256)
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x[None].astype(np.float32)})
    return np.asarray(out[0, 0, :rows, :cols], dtype=np.float32)
