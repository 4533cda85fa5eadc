"""Shared pytest options (the browser tests run only when asked for) and the headless Chromium
that both browser tests, tests/test_site.py and tests/test_learner.py, drive."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Debian's chromium (.ci/run installs it); the tests never download a browser. The flags keep it
# from reaching out to the network, which this machine's closed network refuses.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Chromium driven by Playwright, one per test module."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run); "
                    "the browser tests never download a browser.")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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
