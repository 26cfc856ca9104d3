"""pytest hooks for the docstring examples in src/borderwatch (``--doctest-modules``).

``tests/conftest.py`` holds the fixtures of the tests; this file only makes the
doctests run as the tests do: with ``HOME`` and ``XDG_DATA_HOME`` in a temporary
folder, and skipped with a reason when the optional package they need is missing.
"""

from __future__ import annotations

import importlib.util

import pytest

#: Module -> (package its examples import, the borderwatch extra that installs it).
NEEDS_EXTRA = {
    "borderwatch.methods.training": ("sklearn", "learn"),
    "borderwatch.products.webmap": ("folium", "notebook"),
}


#: Modules that import PyTorch (the ``[train]`` extra) when imported: not collected for
#: their doctests where it is not installed (default installs and CI).
_TORCH_MODULES = ["src/borderwatch/structure/net.py", "src/borderwatch/structure/train.py"]
collect_ignore = [] if importlib.util.find_spec("torch") else _TORCH_MODULES


def _doctest_module(item: pytest.Item) -> str | None:
    """Return the module name of a doctest item, None for other items."""
    dtest = getattr(item, "dtest", None)
    return None if dtest is None else str(dtest.globs.get("__name__", ""))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the doctests of a module whose optional dependency is not installed."""
    for item in items:
        module = _doctest_module(item)
        if module in NEEDS_EXTRA:
            package, extra = NEEDS_EXTRA[module]
            if importlib.util.find_spec(package) is None:
                reason = f"{package} not installed (pip install 'borderwatch[{extra}]')"
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _doctest_home(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """For doctests: ``HOME`` and ``XDG_DATA_HOME`` in a new temporary folder."""
    if _doctest_module(request.node) is None:
        return  # tests/conftest.py's isolated_home does this for the tests
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
    monkeypatch.delenv("BORDERWATCH_REVIEWS", raising=False)
