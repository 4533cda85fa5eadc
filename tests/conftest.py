"""Shared pytest options: the browser test of the built site runs only when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--site",
        action="store_true",
        help="also run tests/test_site.py, the browser test of _build/html (after 'make book')",
    )
    parser.addoption(
        "--learner",
        action="store_true",
        help="also run tests/test_learner.py, the browser test of the chapters in JupyterLab",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name == "test_site.py" and not config.getoption("--site"):
        return True
    if collection_path.name == "test_learner.py" and not config.getoption("--learner"):
        return True
    return None
