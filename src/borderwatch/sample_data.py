"""The embedded demo tiles (synthetic; made by ``data/make_sample_tiles.py``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from borderwatch.errors import InputError

__all__ = ["sample_tiles_dir"]


def sample_tiles_dir() -> Path:
    """Folder of the embedded demo tiles (packaged copy, else the repository's).

    Raises
    ------
    InputError
        Neither the packaged nor the repository copy exists.
    """
    packaged = Path(str(resources.files("borderwatch"))) / "sample_tiles"
    repo = Path(__file__).resolve().parents[2] / "data" / "sample_tiles"
    for candidate in (packaged, repo):
        if (candidate / "before.tif").exists() and (candidate / "after.tif").exists():
            return candidate
    raise InputError(f"sample tiles not found in {packaged} or {repo}; reinstall borderwatch")
