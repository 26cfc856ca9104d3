"""Every exception borderwatch raises on purpose is a BorderwatchError (errors.py)."""

from __future__ import annotations

import ast
import builtins
import inspect
import sys
from pathlib import Path

import pytest

import borderwatch
import borderwatch.errors as errors
from borderwatch.errors import BorderwatchError

PACKAGE = Path(borderwatch.__file__).resolve().parent

#: Names of the builtin exception classes (ValueError, OSError, AssertionError, ...).
BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException)
)


def builtin_raises(source: str) -> list[tuple[int, str]]:
    """Line and text of each ``raise`` of a builtin exception class in ``source``.

    ``raise``, ``raise exc`` (a caught exception) and ``raise SomeError(...) from exc``
    of non-builtin classes pass; ``raise ValueError(...)``, ``raise OSError`` and
    ``raise builtins.RuntimeError(...)`` (with or without ``from``) do not. The one
    exception is ``AttributeError`` in a ``__getattr__``, which Python's attribute
    protocol requires (a lazy module attribute).
    """
    tree = ast.parse(source)
    protocol = {
        id(r)
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
        for r in ast.walk(f)
        if isinstance(r, ast.Raise)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        cls = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(cls, ast.Name):
            name = cls.id
        elif (
            isinstance(cls, ast.Attribute)
            and isinstance(cls.value, ast.Name)
            and cls.value.id == "builtins"
        ):
            name = cls.attr
        else:
            continue
        if name == "AttributeError" and id(node) in protocol:
            continue
        if name in BUILTIN_EXCEPTIONS:
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_scan_finds_builtin_raises_only():
    src = """
try:
    x = 1
except KeyError as exc:
    raise InputError("bad") from exc
except OSError as exc:
    raise exc
except Exception:
    raise
if x:
    raise ValueError("bad")
if x:
    raise NotImplementedError
if x:
    raise builtins.RuntimeError("bad") from None
if x:
    raise click.UsageError("bad")
def __getattr__(name):
    raise AttributeError(name)
def other(name):
    raise AttributeError(name)
"""
    assert [line for line, _ in builtin_raises(src)] == [11, 13, 15, 21]


def test_package_raises_no_builtin_exception():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, text in builtin_raises(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, (
        "raise a borderwatch.errors class instead (each also inherits the matching "
        "builtin):\n" + "\n".join(offenders)
    )


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_is_a_borderwatch_error(name):
    cls = getattr(errors, name)
    assert inspect.isclass(cls) and issubclass(cls, BorderwatchError)
    assert cls.__doc__, f"{name} has no docstring"


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.InputError, ValueError),
        (errors.RasterReadError, OSError),
        (errors.OutputExistsError, FileExistsError),
        (errors.CacheIOError, OSError),
        (errors.MissingDependencyError, ImportError),
        (errors.InternalError, RuntimeError),
    ],
)
def test_errors_still_caught_as_builtins(cls, builtin):
    with pytest.raises(builtin, match="what went wrong"):
        raise cls("what went wrong")


def test_missing_folium_is_a_borderwatch_error(monkeypatch):
    from borderwatch.products.webmap import offline_map

    monkeypatch.setitem(sys.modules, "folium", None)  # import folium fails
    with pytest.raises(errors.MissingDependencyError, match=r"borderwatch\[notebook\]"):
        offline_map(location=(42.97, 129.0))
