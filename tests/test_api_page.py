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
