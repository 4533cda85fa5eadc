"""The API appendix documents every public module of vaelib (it renders them with autodoc)."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import vaelib
import vaelib.book

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_module_is_on_the_api_page() -> None:
    page = (ROOT / "chapters" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"\.\. automodule:: (\S+)", page))
    modules = {f"vaelib.{m.name}" for m in pkgutil.iter_modules(vaelib.__path__)}
    modules |= {f"vaelib.book.{m.name}" for m in pkgutil.iter_modules(vaelib.book.__path__)}
    public = {m for m in modules if not m.rsplit(".", 1)[1].startswith("_")} - {"vaelib.__main__"}
    public |= {"vaelib.book"}
    missing = sorted(public - documented)
    assert not missing, f"add these modules to chapters/api.md: {missing}"


def test_no_docstring_holds_a_control_character() -> None:
    r"""A backslash in a docstring that is not a raw string turns \t, \b, \f, \v or \a into a
    control character (":math:`\theta`" becomes a tab and "heta" on the API page)."""
    import importlib
    import inspect

    modules = [f"vaelib.{m.name}" for m in pkgutil.iter_modules(vaelib.__path__)]
    modules += [f"vaelib.book.{m.name}" for m in pkgutil.iter_modules(vaelib.book.__path__)]
    bad = []
    for name in modules:
        if name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        objects = [module] + [v for v in vars(module).values()
                              if getattr(v, "__module__", None) == name]
        for obj in list(objects):
            if inspect.isclass(obj):
                objects += [v for v in vars(obj).values() if inspect.isfunction(v)]
        for obj in objects:
            doc = obj.__doc__ or ""  # not inspect.getdoc: it expands tabs
            if re.search(r"[\t\b\f\v\a]", doc):
                bad.append(f"{name}.{getattr(obj, '__qualname__', '')}")
    assert not bad, f"write these docstrings as raw strings (r\"\"\"...\"\"\"): {bad}"
