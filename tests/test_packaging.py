"""The installed wheel holds the modules, the sample tiles and the AOI catalogue.

pytest imports borderwatch from the checkout's ``src/`` (``pythonpath`` in
pyproject.toml), so the other tests do not see what ``pip install .`` installed;
this one looks at the installed files themselves. It skips for an editable install
(there the installed package is the checkout) and when borderwatch is not installed.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def installed_package() -> Path:
    """Folder of the installed (non-editable) borderwatch package; skip otherwise."""
    try:
        dist = metadata.distribution("borderwatch")
    except metadata.PackageNotFoundError:
        pytest.skip("borderwatch is not installed (pip install .): no wheel to check")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):
        pytest.skip(f"editable install of {direct.get('url')}: the package is a checkout")
    return Path(str(dist.locate_file("borderwatch")))


def test_wheel_holds_modules_sample_tiles_and_aoi_catalogue():
    pkg = installed_package()
    src = REPO / "src" / "borderwatch"
    modules = sorted(p.relative_to(src) for p in src.rglob("*.py"))
    missing = [str(m) for m in modules if not (pkg / m).is_file()]
    assert not missing, f"{pkg}: modules missing from the installed wheel: {missing}"
    for tile in ("before.tif", "after.tif"):
        assert (pkg / "sample_tiles" / tile).is_file(), f"{pkg}: no sample_tiles/{tile}"
    aoi = sorted(p.relative_to(REPO / "aoi") for p in (REPO / "aoi").rglob("*") if p.is_file())
    missing = [str(a) for a in aoi if not (pkg / "aoi_catalogue" / a).is_file()]
    assert aoi and not missing, f"{pkg}: AOI catalogue files missing: {missing}"
