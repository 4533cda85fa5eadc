"""The cloud and local launch paths: one repository address, installable vaelib, Binder.

The repository address lives in one place, ``_config.yml`` (``repository.url``); the chapters'
Colab install cells, ``pyproject.toml`` and the README must use it. vaelib declares lower bounds
only (so ``pip install`` on Colab keeps Colab's torch); the exact pins of ``requirements.txt``
are mirrored in ``binder/requirements.txt``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _repository_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url = config["repository"]["url"]
    assert url.startswith("https://github.com/") and not url.endswith("/")
    return url


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_installs_vaelib_from_the_book_s_repository(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert 'if "google.colab" in sys.modules:' in first.source
    installs = re.findall(r'%pip install -q "vaelib\[book\] @ git\+(\S+)"', first.source)
    assert installs == [_repository_url()], (  # vaelib[book]: with the chapters' extras
        f"{notebook.name}: the first code cell must install vaelib from {_repository_url()} "
        "on Colab (the address in _config.yml)."
    )


def test_pyproject_has_lower_bounds_only_and_the_same_address_and_python() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["urls"]["Homepage"] == _repository_url()
    for requirement in project["dependencies"]:
        assert "==" not in requirement and "<" not in requirement, requirement
    python = re.fullmatch(r">=3\.(\d+)", project["requires-python"])
    assert python, project["requires-python"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Python 3.{python.group(1)} or newer" in readme
    assert _repository_url() in readme


def test_binder_installs_the_pinned_environment_and_vaelib() -> None:
    binder = ROOT / "binder"
    pinned, at_binder = _pins(ROOT / "requirements.txt"), _pins(binder / "requirements.txt")
    for name in ("torch", "numpy", "scipy", "matplotlib", "scikit-learn", "mlxtend", "tqdm",
                 "ipywidgets", "jupyterlab", "jupyterlab-myst"):
        assert at_binder.get(name) == pinned.get(name), name
    assert "download.pytorch.org/whl/cpu" in (binder / "requirements.txt").read_text()
    post_build = (binder / "postBuild").read_text()
    assert "pip install --no-deps ." in post_build
    assert (binder / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"
    python = re.fullmatch(r"python-3\.(\d+)", (binder / "runtime.txt").read_text().strip())
    assert python


def test_launch_links_point_at_the_notebooks() -> None:
    """sphinx-book-theme joins path_to_book and the page name: "." gave ".../main/./chapters"."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["repository"]["path_to_book"].strip("/") == ""
    assert config["repository"]["branch"] == "main"
    assert config["launch_buttons"]["notebook_interface"] == "jupyterlab"
