"""mypy finds no errors in src/borderwatch (configuration: ``[tool.mypy]`` in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_finds_no_errors():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy not installed (it is in the test extra: pip install '.[test]')")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", "src/borderwatch"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0, f"mypy src/borderwatch:\n{report}"
