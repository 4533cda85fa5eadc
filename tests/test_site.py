"""The built website as a reader meets it: every page in headless Chromium, with no network.

Run after ``make book`` with ``make site-test`` (``pytest --site tests/test_site.py``). Each page of
``_build/html`` is served on 127.0.0.1 and opened in Debian's Chromium (``/usr/bin/chromium``,
driven by Playwright's Python client; never a browser download). Every request that leaves the
machine is blocked and counted as a failure. For each page the test asserts:

* no failed request and no HTTP error, no console error, no uncaught script error;
* math is typeset by the local MathJax (``mjx-container`` elements, no raw ``\\(`` left);
* every image has loaded (non-zero natural size);
* no widget placeholder such as "Loading widget..." is left;
* every explorer responds: moving each slider changes the picture.

A full-page screenshot of each page is written to ``_build/site-check/`` (``make screenshots``
serves it with an index page).
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "site-check"
CHAPTERS = (
    "01_learning",
    "02_perceptron",
    "03_autoencoder",
    "04_elbo",
    "05_kl",
    "06_reparameterization",
    "07_gradient_descent",
    "08_vae",
    "notation",
    "errata",
    "api",
    "references",
)
# Pages written by Sphinx itself that are not part of the book's reading path.
SKIP_DIRS = {"_static", "_sources", "_images"}


def _pages() -> list[str]:
    if not (HTML / "index.html").is_file():
        raise FileNotFoundError(f"{HTML / 'index.html'} is missing: run 'make book' first.")
    pages = [
        p.relative_to(HTML).as_posix()
        for p in sorted(HTML.rglob("*.html"))
        if not SKIP_DIRS & set(p.relative_to(HTML).parts)
    ]
    return pages


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class PageLog:
    """What went wrong while a page loaded."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self.failed: list[str] = []
        self.console: list[str] = []


def _open(browser, server: str, page_path: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log = PageLog()

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith("data:") or host == "127.0.0.1":
            r.continue_()
        else:
            log.blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("requestfailed", lambda req: log.failed.append(f"{req.url} ({req.failure})"))
    page.on(
        "response",
        lambda resp: (
            log.failed.append(f"{resp.url} (HTTP {resp.status})") if resp.status >= 400 else None
        ),
    )
    page.on("console", lambda m: log.console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: log.console.append(f"uncaught: {e}"))
    page.goto(f"{server}/{page_path}", wait_until="load")
    return context, page, log


def _wait_for_math(page) -> None:
    page.wait_for_function(
        "() => !window.MathJax || !MathJax.startup || !MathJax.startup.promise ? true :"
        " MathJax.startup.promise.then(() => true)",
        timeout=30_000,
    )


def _load_all_images(page) -> list[str]:
    """Make lazy images load, wait for them, and return the sources that did not load."""
    return page.evaluate(
        """async () => {
            const imgs = Array.from(document.images);
            imgs.forEach(img => img.loading = "eager");
            await Promise.all(imgs.map(img => img.decode().catch(() => null)));
            return imgs.filter(img => !(img.complete && img.naturalWidth > 0))
                       .map(img => (img.currentSrc || img.src).slice(0, 120));
        }"""
    )


def _check_explorers(page) -> tuple[int, list[str]]:
    """Move every slider of every explorer; return the number of sliders and the failures."""
    return page.evaluate(
        """() => {
            const failures = [];
            let count = 0;
            document.querySelectorAll(".vaelib-explorer").forEach((root, k) => {
                const img = root.querySelector("img.vaelib-explorer-frame");
                root.querySelectorAll("input[type=range]").forEach(slider => {
                    count += 1;
                    const before = img.src;
                    const start = slider.value;
                    slider.value = slider.value === slider.min ? slider.max : slider.min;
                    slider.dispatchEvent(new Event("input", {bubbles: true}));
                    if (img.src === before || !img.src.startsWith("data:image/png;base64,")) {
                        failures.push(`explorer ${k}: slider ${slider.dataset.name} did not change the picture`);
                    }
                    slider.value = start;
                    slider.dispatchEvent(new Event("input", {bubbles: true}));
                    if (img.src !== before) {
                        failures.push(`explorer ${k}: slider ${slider.dataset.name} did not restore the picture`);
                    }
                });
            });
            return [count, failures];
        }"""
    )


PAGES = _pages() if (HTML / "index.html").is_file() else ["index.html"]


@pytest.mark.parametrize("page_path", PAGES)
def test_page(browser, server, page_path):
    context, page, log = _open(browser, server, page_path)
    try:
        _wait_for_math(page)
        missing_images = _load_all_images(page)
        has_math = page.evaluate(
            "() => document.querySelectorAll('.math, div.math, span.math').length > 0"
        )
        typeset = page.evaluate("() => document.querySelectorAll('mjx-container').length")
        raw_tex = page.evaluate(
            "() => Array.from(document.querySelectorAll('span.math, div.math'))"
            ".filter(e => !e.querySelector('mjx-container')).length"
        )
        text = page.inner_text("body")
        explorers = page.evaluate("() => document.querySelectorAll('.vaelib-explorer').length")
        sliders, explorer_failures = _check_explorers(page)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / (page_path.replace("/", "__") + ".png")), full_page=True)
    finally:
        context.close()

    assert not log.blocked, f"requests that leave the site: {log.blocked}"
    assert not log.failed, f"failed requests: {log.failed}"
    assert not log.console, f"console errors: {log.console}"
    assert not missing_images, f"images that did not load: {missing_images}"
    if has_math:
        assert typeset > 0 and raw_tex == 0, f"math not typeset ({typeset} typeset, {raw_tex} raw)"
    assert "Loading widget" not in text, "a widget placeholder is left on the page"
    assert not explorer_failures, explorer_failures
    if explorers:
        assert sliders >= explorers, "an explorer without sliders"


def test_site_has_every_chapter_and_explorer():
    """The pages that must exist, and the explorers the chapters promise."""
    pages = set(_pages())
    for required in ("index.html", "search.html", "chapters/intro.html"):
        assert required in pages
    explorers = {
        p: (HTML / p).read_text(encoding="utf-8").count('class="vaelib-explorer"') for p in pages
    }
    for chapter in CHAPTERS:
        assert f"chapters/{chapter}.html" in pages, f"chapter {chapter} is not on the site"
    for chapter in ("05_kl", "06_reparameterization", "07_gradient_descent", "08_vae"):
        assert explorers[f"chapters/{chapter}.html"] >= 1, f"{chapter} has no explorer"


def test_search_works_offline(browser, server):
    context, page, log = _open(browser, server, "search.html?q=reparameterization")
    try:
        page.wait_for_selector("#search-results li", timeout=30_000)
        hits = page.eval_on_selector_all("#search-results li", "els => els.length")
    finally:
        context.close()
    assert hits > 0
    assert not log.blocked and not log.failed


def test_launch_links_name_the_chapter_notebooks() -> None:
    """Every Binder and Colab button of a built chapter page opens that chapter's notebook, with
    no "/./" in the path (sphinx-book-theme joins path_to_book and the page's path)."""
    checked = 0
    for page in sorted((HTML / "chapters").glob("*.html")):
        source = ROOT / "chapters" / f"{page.stem}.ipynb"
        links = re.findall(r'href="(https://(?:colab\.research\.google\.com|mybinder\.org)[^"]+)"',
                           page.read_text(encoding="utf-8"))
        if not source.is_file():
            assert not links, f"{page.name}: launch buttons on a page that is not a notebook"
            continue
        assert links, f"{page.name}: no Binder or Colab button"
        for link in links:
            assert "/./" not in link and "%2F.%2F" not in link, link
            assert f"chapters/{source.name}" in link or f"chapters%2F{source.name}" in link, link
            checked += 1
    assert checked
