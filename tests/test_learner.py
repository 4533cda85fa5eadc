"""The chapters as a learner meets them: JupyterLab with jupyterlab-myst, in headless Chromium.

Run with ``make learner-test`` (``pytest --learner tests/test_learner.py``, MPLBACKEND unset so
that the kernel keeps its inline backend). The test starts JupyterLab from ``.venv`` on 127.0.0.1
(a free port, a token, the repository as its root, ``--allow-root`` when run as root) with
settings of its own in a temporary folder: notebook windowing mode "none" (every cell stays in the
DOM), no news, no update check, no notification toasts, no autosave, and a kernel shut down when
its notebook is closed. A pre-save hook refuses every save, so the chapters (which colleagues may
be editing) are never written. Before that, ``jupyter labextension list`` must show jupyterlab-myst
enabled and compatible (JupyterLab skips an incompatible extension, and the chapters' MyST then
shows as raw text). JupyterLab is opened in Debian's Chromium (``/usr/bin/chromium``, driven by
Playwright's Python client; never a browser download); every request that leaves the machine is
blocked and counted as a failure, and so is an uncaught script error. JupyterLab and its kernels
are stopped at the end, also on failure.

* ``test_explorer_chapter``: chapter 5 is opened from the file browser, as a learner does, and run
  (Run menu, Run All Cells). Every code cell must run without an error; every ``{eval}``
  expression must show its value (jupyterlab-myst shows the bare expression as inline code until
  the kernel has answered, and ``NameError: ...`` on a red ground for an error); the explorer's
  sliders must exist with the note under them; and moving each slider with the keyboard must
  change the explorer's picture (the ``<img>`` in the widget's Output area).
* ``test_chapter_renders``: each chapter notebook (``chapters/*.ipynb``) is opened, not run. The
  rendered markdown of every markdown cell (jupyterlab-myst's ``.myst`` element: not the code
  cells, not the hidden markdown source) must show no raw MyST: no role text (``{eq}``,
  ``{numref}``, ``{eval}``, ...), no directive fences (```` ```{ ````, ``:::``), no ``(label)=``
  target line, no numref template (``%s``, ``{number}``), no cross-reference that
  jupyterlab-myst could not resolve (it shows the bare label, e.g. ``fig-ch5-parts``, behind a
  warning sign: a figure whose caption and name are in the cell's metadata, or an equation of
  another chapter), no "Unknown Directive" box, no directive that renders as nothing (an empty
  block: ``{bibliography}``), no math that KaTeX could not typeset, no link to a file of the
  repository that does not exist.
* ``test_chapter_link``: in chapter 5, the rendered Markdown link ``[Chapter 4](04_elbo.ipynb)`` is
  clicked, as a learner does: JupyterLab must open ``chapters/04_elbo.ipynb`` as a notebook in a
  new tab of the same JupyterLab page (no page load, no new browser tab, no download), with
  chapter 5 still open. (jupyterlab-myst hands each relative link to JupyterLab's link handler,
  which opens the file with its default viewer on a click; the link's ``href`` is rewritten to
  the raw file, ``/files/chapters/04_elbo.ipynb?_xsrf=...``.) It runs last.

Not counted as failures, because no chapter edit can fix them in JupyterLab without breaking the
website, but reported as warnings and in ``_build/learner-check/report.txt``: citations
(jupyterlab-myst reads no BibTeX file, so it shows each key, e.g. ``ch5-kingma2014autoencoding``,
behind a "Citation Not Found" sign), and the links to other files of the book (what a click does:
a notebook opens in a JupyterLab tab, a ``.md`` page opens in JupyterLab's text editor as Markdown
source, not rendered).

Screenshots go to ``_build/learner-check/``: the top of every chapter, every scrolled view of the
chapters in ``FULL_SHOTS`` (chapter 5 after its run: ``05_kl-run-*.png``) and the explorer before
and after its sliders moved, and JupyterLab after the click on chapter 5's link
(``05_kl-link-04_elbo.png``). Every failure and note is also written to ``report.txt`` there.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
JUPYTER = ROOT / ".venv" / "bin" / "jupyter"
SHOTS = ROOT / "_build" / "learner-check"
CHAPTERS = tuple(p.stem for p in sorted((ROOT / "chapters").glob("*.ipynb")))
EXPLORER_CHAPTER = "05_kl"  # its explorer is vaelib.book.kl.kl_explorer
FULL_SHOTS = ("04_elbo", "05_kl")  # every scrolled view of these; the top view of the others
VIEWPORT = {"width": 1280, "height": 900}
# test_chapter_link: in this chapter, the rendered link with this text must open this notebook.
LINK_CHAPTER, LINK_TEXT, LINK_TARGET = "05_kl", "Chapter 4", "chapters/04_elbo.ipynb"
LINKS_NOTE = "links to other files of the book"

# Timeouts in milliseconds (Playwright) or seconds (the server); the machine has two shared cores.
SERVER_START_S = 120
LAB_LOAD_MS = 120_000
OPEN_MS = 60_000
RENDER_MS = 60_000
KERNEL_MS = 120_000
RUN_MS = 300_000
REDRAW_MS = 60_000

# JupyterLab's own settings, in a temporary JUPYTERLAB_SETTINGS_DIR.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "kernelShutdown": True},
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}
# Server configuration: refuse every save (the chapters must not be written by this test). Only an
# HTTPError from a pre-save hook stops the save; any other exception is logged and the file saved.
SERVER_CONFIG = """
from tornado.web import HTTPError

REFUSED = "test_learner refused to save"


def _refuse_save(model, path, contents_manager, **kwargs):
    contents_manager.log.error("%s %s", REFUSED, path)
    raise HTTPError(403, f"{REFUSED} {path}: the chapters must not be written by the test")


c.FileContentsManager.pre_save_hook = _refuse_save
"""
REFUSED_SAVE = "test_learner refused to save"

# What must not be visible in the rendered prose (text of the rendered markdown without KaTeX).
RAW_PATTERNS = (
    (
        "role text",
        re.compile(
            r"\{(?:glue|eq|cite|numref|doc|ref|eval|math|term|abbr|sub|sup|download|dfn|kbd|prf)"
            r"\b[^}\s]*\}?"
        ),
    ),
    ("role text", re.compile(r"\{[A-Za-z][\w:+.-]*\}`")),
    ("directive fence", re.compile(r"```+\s*\{")),
    ("directive fence", re.compile(r":::+")),
    ("target line", re.compile(r"(?m)^[ \t]*\([^\s()]+\)=[ \t]*$")),
    ("numref template", re.compile(r"%s|\{number\}|\{name\}")),
)
ROLE = re.compile(r"\{([A-Za-z][\w:+.-]*)\}`([^`]*)`")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
DIRECTIVE = re.compile(r"(?m)^[ \t]*(?:```+|:::+)[ \t]*\{([^}]+)\}")


# --------------------------------------------------------------------------------------------
# JupyterLab


def _labextension_problem(env: dict[str, str]) -> str | None:
    """Why jupyterlab-myst cannot render the chapters, or None when it is enabled and compatible."""
    run = subprocess.run(
        [str(JUPYTER), "labextension", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    return _myst_problem(re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr))


def _myst_problem(listing: str) -> str | None:
    """Read ``jupyter labextension list``: its line for jupyterlab-myst must say enabled and OK
    (not a cross), and no paragraph may say that jupyterlab-myst "is not compatible"."""
    entries = [line for line in listing.splitlines() if re.match(r"\s*jupyterlab-myst ", line)]
    if not entries:
        return (
            "jupyterlab-myst is not installed in .venv (pip install -r requirements.txt); "
            f"'jupyter labextension list' says:\n{listing}"
        )
    if not re.search(r"\benabled\b", entries[0]):
        return f"jupyterlab-myst is disabled (jupyter labextension enable jupyterlab-myst): {entries[0]}"
    if re.search(r'"jupyterlab-myst@[^"]*" is not compatible', listing) or not re.search(
        r"\bOK\b", entries[0]
    ):
        return (
            "jupyterlab-myst is installed but not compatible with this JupyterLab, which then "
            "does not load it and shows the chapters' MyST as raw text (JupyterLab's "
            "@jupyter/ydoc must match the extension's; see the pins in requirements.txt):\n"
            f"{listing}"
        )
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(parent id, start time) of a process, from /proc (Linux); None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[19]


def _descendants(pid: int) -> dict[int, str]:
    """The processes started by ``pid`` (its kernels), with their start times."""
    stats = {int(p.name): _proc_stat(int(p.name)) for p in Path("/proc").glob("[0-9]*")}
    found: dict[int, str] = {}
    frontier = {pid}
    while frontier:
        children = {p: st[1] for p, st in stats.items() if st and st[0] in frontier}
        found.update(children)
        frontier = set(children)
    return found


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server we started and, if it leaves any, the kernels it started (by their ids,
    each checked against its start time so that a reused id is left alone)."""
    started = _descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for pid, start_time in started.items():
        stat = _proc_stat(pid)
        if stat and stat[1] == start_time:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[dict]:
    """A JupyterLab server of our own on 127.0.0.1: yields its url, token and log file."""
    if not JUPYTER.is_file():
        pytest.fail(f"{JUPYTER} is missing: run 'make venv' (installs requirements.txt).")
    tmp = tmp_path_factory.mktemp("jupyterlab")
    for plugin, values in LAB_SETTINGS.items():
        path = tmp / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    (tmp / "workspaces").mkdir()
    (tmp / "runtime").mkdir()
    config = tmp / "jupyter_server_config.py"
    config.write_text(SERVER_CONFIG)

    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "VAELIB_BOOK_BUILD")}
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
    )
    problem = _labextension_problem(env)
    if problem:
        pytest.fail(problem)

    token = secrets.token_hex(24)
    log = tmp / "jupyterlab.log"
    proc = url = None
    for _attempt in range(3):  # another process may take the free port before the server does
        port = _free_port()
        cmd = [
            str(JUPYTER),
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={ROOT}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.extension_manager=readonly",
            f"--config={config}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(log, "w") as out:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                time.sleep(0.25)
        else:
            if proc.poll() is None:
                _stop(proc)
                pytest.fail(
                    f"JupyterLab did not answer on {url} within {SERVER_START_S} s:\n"
                    f"{_log_tail(log)}"
                )
            if "already in use" in log.read_text(errors="replace"):
                continue
            pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{_log_tail(log)}")
        break
    else:
        pytest.fail(f"JupyterLab found no free port in 3 attempts:\n{_log_tail(log)}")
    try:
        yield {"url": url, "token": token, "log": log}
    finally:
        _stop(proc)
    refused = [
        line for line in log.read_text(errors="replace").splitlines() if REFUSED_SAVE in line
    ]
    assert not refused, f"JupyterLab tried to save (refused): {refused}"


class PageLog:
    """What went wrong in the page: requests that leave the machine, uncaught script errors."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self.errors: list[str] = []

    def take(self) -> tuple[list[str], list[str]]:
        blocked, errors = self.blocked[:], self.errors[:]
        self.blocked.clear()
        self.errors.clear()
        return blocked, errors


@pytest.fixture(scope="module")
def jlab(lab, browser):
    """JupyterLab in one browser page, its file browser showing chapters/."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    log = PageLog()

    def route(r):
        url = r.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).hostname == "127.0.0.1":
            r.continue_()
        else:
            log.blocked.append(url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: log.errors.append(f"uncaught: {e}"))
    page.goto(f"{lab['url']}/lab?token={lab['token']}", wait_until="load")
    try:
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell", timeout=LAB_LOAD_MS
        )
        page.evaluate("() => window.jupyterapp.restored.then(() => true)")
        _dir_item(page, "chapters").wait_for(state="visible", timeout=LAB_LOAD_MS)
    except Exception as exc:
        context.close()
        pytest.fail(f"JupyterLab did not load in the browser: {exc}\n{_log_tail(lab['log'])}")
    _dir_item(page, "chapters").dblclick()
    page.locator("#filebrowser .jp-BreadCrumbs").get_by_text("chapters").wait_for(timeout=OPEN_MS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    yield page, log
    context.close()


# --------------------------------------------------------------------------------------------
# Driving JupyterLab


def _dir_item(page, name: str):
    """The file browser's entry called ``name``."""
    return page.locator("#filebrowser .jp-DirListing-item").filter(
        has=page.locator(".jp-DirListing-itemText", has_text=re.compile(f"^{re.escape(name)}$"))
    )


# JavaScript helpers, defined in the page once: the notebook panel with a given id, and what its
# markdown cells render.
JS_HELPERS = r"""
() => {
  if (window.__learner) return;
  const panel = id => Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.id === id);
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const rendered = cell => cell.node.querySelector('.jp-Cell-inputArea > .myst')
      || cell.node.querySelector('.jp-Cell-inputArea > .jp-RenderedMarkdown');
  const MEDIA = 'img, svg, canvas, video, iframe, math, input, object';
  function markdown(id) {
    return panel(id).content.widgets.map((cell, index) => ({cell, index}))
      .filter(({cell}) => cell.model.type === 'markdown')
      .map(({cell, index}) => {
        const root = rendered(cell);
        const source = cell.model.sharedModel.getSource();
        if (!root) return {index, source, renderer: 'none'};
        const clone = root.cloneNode(true);
        clone.querySelectorAll('.katex, .katex-display').forEach(e => e.remove());
        const all = sel => Array.from(root.querySelectorAll(sel));
        return {
          index, source,
          renderer: root.classList.contains('myst') ? 'myst' : 'jupyterlab',
          text: clone.textContent,
          // jupyterlab-myst's warning sign: a yellow span whose title says what is wrong
          flagged: all('.text-yellow-600[title]').map(e => [e.title, e.textContent.trim()]),
          // display math KaTeX could not typeset: the message in red, then the raw TeX
          mathErrors: all('pre[title]').filter(e => e.querySelector('.text-red-500'))
              .map(e => e.title),
          unknown: all('.myst-exercise-title').map(e => e.textContent.trim())
              .filter(t => /Unknown Directive/.test(t)),
          empty: Array.from(root.children)
              .filter(e => !['HR', 'BR'].includes(e.tagName) && e.textContent.trim() === ''
                           && !e.matches(MEDIA) && !e.querySelector(MEDIA))
              .map(e => e.outerHTML.slice(0, 60)),
          codes: all('code').filter(e => !e.closest('pre')).map(e => e.textContent),
          evalErrors: all('[data-mime-type="application/vnd.jupyter.stderr"]')
              .map(e => e.textContent.trim()),
          // relative links: jupyterlab-myst rewrites their href to the raw file, /files/<path>
          fileLinks: all('a').filter(a => (a.getAttribute('href') || '').includes('/files/'))
              .map(a => [a.textContent.trim(), a.getAttribute('href').split('?')[0]]),
        };
      });
  }
  function signature(id) {  // changes while jupyterlab-myst is still rendering
    const w = panel(id);
    if (!w) return null;
    const cells = w.content.widgets.filter(c => c.model.type === 'markdown');
    if (!cells.every(c => c.rendered && rendered(c))) return null;
    return cells.map(c => rendered(c).innerHTML.length).join(',');
  }
  function run(id) {
    const w = panel(id);
    const code = w.content.widgets.filter(c => c.model.type === 'code');
    const errors = code
      .map(c => [c, c.model.outputs.toJSON().find(o => o.output_type === 'error')])
      .filter(([c, e]) => e)
      .map(([c, e]) => ({index: w.content.widgets.indexOf(c), error: `${e.ename}: ${e.evalue}`,
                         source: c.model.sharedModel.getSource().slice(0, 200)}));
    const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
    return {
      status: kernel ? kernel.status : 'none',
      pending: code.filter(c => c.model.executionCount === null)
          .map(c => w.content.widgets.indexOf(c)),
      running: code.some(c => /\*/.test(c.promptNode ? c.promptNode.textContent : '')),
      errors,
    };
  }
  window.__learner = {panel, frame, markdown, signature, run};
}
"""


def _open_notebook(page, name: str) -> str:
    """Open chapters/<name>.ipynb from the file browser; return its panel's id once rendered."""
    page.evaluate(JS_HELPERS)
    item = _dir_item(page, f"{name}.ipynb")
    item.wait_for(state="visible", timeout=OPEN_MS)
    item.dblclick()
    path = f"chapters/{name}.ipynb"
    try:
        page.wait_for_function(
            """path => { const w = window.jupyterapp.shell.currentWidget;
                         return w && w.context && w.context.path === path && w.context.isReady
                                && w.content && w.content.widgets.length > 0; }""",
            arg=path,
            timeout=OPEN_MS,
        )
    except Exception as exc:
        dialog = page.locator(".jp-Dialog")
        said = dialog.inner_text() if dialog.count() else "no dialog"
        pytest.fail(f"{name}: JupyterLab did not open {path} within {OPEN_MS} ms ({said}): {exc}")
    panel_id = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    _wait_rendered(page, panel_id, name)
    return panel_id


def _wait_rendered(page, panel_id: str, name: str) -> None:
    """Wait until every markdown cell is rendered and the rendering has stopped changing."""
    try:
        page.wait_for_function(
            """id => { const s = window.__learner.signature(id);
                       const same = s !== null && window.__learnerLast === s;
                       window.__learnerLast = s; return same; }""",
            arg=panel_id,
            polling=400,
            timeout=RENDER_MS,
        )
    except Exception as exc:
        pytest.fail(
            f"{name}: the markdown cells were not all rendered within {RENDER_MS} ms: {exc}"
        )


def _close(page, panel_id: str) -> None:
    """Close the notebook's tab (its kernel is shut down: kernelShutdown); discard any changes."""
    page.evaluate(
        "id => { const w = window.__learner.panel(id); if (w) { w.activate(); } }", panel_id
    )
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon")
    tab.click()
    dialog = page.locator(".jp-Dialog")
    discard = dialog.get_by_role("button", name=re.compile("Discard|Don.t Save", re.I))
    page.wait_for_function(
        "id => !window.__learner.panel(id) || document.querySelector('.jp-Dialog')",
        arg=panel_id,
        timeout=OPEN_MS,
    )
    if dialog.count():
        discard.click()
    page.wait_for_function("id => !window.__learner.panel(id)", arg=panel_id, timeout=OPEN_MS)


def _screenshots(page, panel_id: str, stem: str, full: bool) -> list[Path]:
    """Screenshots of the notebook panel: the top view, or every view scrolled through."""
    scroller = page.evaluate_handle(
        """id => { const n = window.__learner.panel(id).content.node;
                   return n.querySelector('.jp-WindowedPanel-outer') || n; }""",
        panel_id,
    )
    page.evaluate("s => { s.scrollTop = 0; }", scroller)
    bottom, view = page.evaluate(
        """s => { const cells = s.querySelectorAll('.jp-Cell');
                  const last = cells[cells.length - 1];
                  const top = s.getBoundingClientRect().top;
                  return [last ? last.getBoundingClientRect().bottom - top : s.scrollHeight,
                          s.clientHeight]; }""",
        scroller,
    )
    step = max(200, int(view * 0.9))  # views overlap by a tenth
    tops = range(0, max(1, int(bottom) - view + step), step) if full else range(0, 1)
    paths = []
    panel = page.locator(f"[id='{panel_id}']")
    for k, top in enumerate(tops, start=1):
        page.evaluate("([s, top]) => { s.scrollTop = top; }", [scroller, top])
        page.evaluate("() => window.__learner.frame()")
        path = SHOTS / f"{stem}-{k:02d}.png"
        panel.screenshot(path=str(path))
        paths.append(path)
    page.evaluate("s => { s.scrollTop = 0; }", scroller)
    return paths


# --------------------------------------------------------------------------------------------
# What the rendered markdown shows


def _sections(sources: dict[int, str]) -> dict[int, list[tuple[int, str]]]:
    """For each markdown cell, the headings in force: (position in the source, heading), the
    first one (at position -1) being the last heading of the cells before it."""
    current, found = "(top)", {}
    for index in sorted(sources):
        found[index] = [(-1, current)] + [
            (m.start(), m.group(1).strip())
            for m in re.finditer(r"(?m)^#{1,6} +(.+)$", sources[index])
        ]
        current = found[index][-1][1]
    return found


def _section(headings: list[tuple[int, str]], position: int) -> str:
    """The heading in force at ``position`` of a cell's source (its start when not found)."""
    return [h for start, h in headings if start <= max(position, 0)][-1]


def _role_source(source: str, label: str) -> tuple[str, int]:
    """The role in the cell's source that refers to ``label``, as written, and its position."""
    for match in ROLE.finditer(source):
        if re.search(rf"(^|<|,){re.escape(label)}(>|,|$)", match.group(2).strip()):
            return match.group(0), match.start()
    return f"`{label}`", source.find(label)


def _excerpt(text: str, start: int, end: int) -> str:
    left = max(0, start - 50)
    return " ".join(text[left : end + 50].split())


def _inspect(cells: list[dict], name: str, after_run: bool) -> tuple[list[str], list[str]]:
    """(failures, notes) for the rendered markdown cells of one chapter."""
    failures, notes = [], []
    sections = _sections({c["index"]: c["source"] for c in cells})
    unrun_evals = 0
    cites: list[str] = []
    links: list[str] = []
    for cell in cells:
        source = cell["source"]

        def where(position: int = -1) -> str:
            heading = _section(sections[cell["index"]], position)
            return f"{name}, cell {cell['index']} (section “{heading}”)"

        if cell["renderer"] == "none":
            if source.strip():
                failures.append(f"{where()}: not rendered")
            continue
        if cell["renderer"] != "myst":
            failures.append(
                f"{where()}: rendered by JupyterLab's own renderer, not jupyterlab-myst"
            )
        text = cell["text"]
        seen: list[tuple[int, int]] = []
        for what, pattern in RAW_PATTERNS:
            for m in pattern.finditer(text):
                if any(m.start() < end and start < m.end() for start, end in seen):
                    continue
                seen.append(m.span())
                failures.append(
                    f"{where(source.find(m.group(0).strip()))}: raw MyST {what} {m.group(0)!r} in "
                    f"“{_excerpt(text, m.start(), m.end())}”"
                )
        xrefs = [text for title, text in cell["flagged"] if title == "Cross Reference Not Found"]
        for label in sorted(set(xrefs), key=xrefs.index):
            role, position = _role_source(source, label)
            times = xrefs.count(label)
            failures.append(
                f"{where(position)}: {role} is not resolved in JupyterLab and shows its label "
                f"“{label}” (Cross Reference Not Found)" + (f", {times} times" if times > 1 else "")
            )
        for title in cell["unknown"]:
            failures.append(f"{where(source.find(title.split()[0]))}: an “{title}” box")
        if cell["empty"]:
            directives = list(DIRECTIVE.finditer(source))
            failures.append(
                f"{where(directives[0].start() if directives else -1)}: "
                f"{len(cell['empty'])} block(s) render as nothing ({', '.join(cell['empty'])}); "
                "the cell's directives: "
                + (", ".join(f"```{{{d.group(1)}}}" for d in directives) or "none")
            )
        for title, text in cell["flagged"]:
            if title not in ("Cross Reference Not Found", "Citation Not Found"):
                failures.append(f"{where(source.find(text))}: “{text}” is flagged: {title}")
        for message in cell["mathErrors"]:
            failures.append(f"{where()}: display math that KaTeX could not typeset: {message}")

        evals = [m for m in ROLE.finditer(source) if m.group(1) == "eval"]
        plain = INLINE_CODE.findall(ROLE.sub("", source))
        unresolved = {}
        for m in evals:
            expr = m.group(2)
            if cell["codes"].count(expr) > plain.count(expr):
                unresolved.setdefault(expr, m.start())
        if after_run:
            for expr, position in unresolved.items():
                failures.append(
                    f"{where(position)}: {{eval}}`{expr}` shows the expression, not its value, "
                    "after the run"
                )
            for err in cell["evalErrors"]:
                failures.append(f"{where()}: an {{eval}} expression shows an error: {err}")
        else:
            unrun_evals += len(unresolved)
        cites += [text for title, text in cell["flagged"] if title == "Citation Not Found"]
        for text, href in cell["fileLinks"]:
            path = unquote(urlparse(href).path).split("/files/", 1)[1]
            links.append(f"“{text}” → {path}")
            if not (ROOT / path).exists():
                failures.append(
                    f"{where(source.find(Path(path).name))}: the link “{text}” leads to "
                    f"{path}, which does not exist"
                )
    if cites:
        notes.append(
            f"{name}: {len(cites)} citation(s) show their BibTeX key with a “Citation Not Found” "
            f"sign (jupyterlab-myst reads no .bib file): {', '.join(sorted(set(cites)))}"
        )
    if links:
        opens = "a click opens a notebook in a new JupyterLab tab (test_chapter_link clicks one)"
        if any(not link.endswith(".ipynb") for link in links):
            opens += ", a .md page in JupyterLab's text editor as Markdown source, not rendered"
        notes.append(
            f"{name}: {LINKS_NOTE}: {opens}; the address behind each link is the raw file "
            "(/files/chapters/<file>), so opening one in a new browser tab leaves JupyterLab: "
            + "; ".join(sorted(set(links)))
        )
    if unrun_evals:
        notes.append(
            f"{name}: {unrun_evals} {{eval}} expression(s) show their names as inline code until "
            "the chapter is run"
        )
    return failures, notes


def _report(name: str, failures: list[str], notes: list[str]) -> None:
    """Add the findings to _build/learner-check/report.txt and warn about the notes."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    with open(SHOTS / "report.txt", "a", encoding="utf-8") as out:
        out.write(f"== {name}: {len(failures)} failure(s), {len(notes)} note(s)\n")
        out.writelines(f"FAIL {f}\n" for f in failures)
        out.writelines(f"NOTE {n}\n" for n in notes)
    for note in notes:
        warnings.warn(note, LearnerNote, stacklevel=2)


class LearnerNote(UserWarning):
    """Something a learner sees in JupyterLab that no chapter edit can fix (not a failure)."""


@pytest.fixture(scope="module", autouse=True)
def _fresh_report(request):
    if request.config.getoption("--learner"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / "report.txt").write_text(
            f"tests/test_learner.py, {time.strftime('%Y-%m-%d %H:%M:%S')}\n", encoding="utf-8"
        )
    yield


# When a notebook is closed while its kernel is still starting (this test closes a chapter as soon
# as it has read it), JupyterLab cancels the requests it had sent to that kernel (the debugger's
# debug_request, a create_subshell_request for widget comms) and their promises are rejected
# uncaught. Harmless: nothing shows, and a learner, who reads before closing, rarely meets it.
HARMLESS_PAGE_ERRORS = (re.compile(r"Canceled future for \w+ message before replies were done"),)


def _check_page_log(log: PageLog, name: str) -> list[str]:
    blocked, errors = log.take()
    errors = [e for e in errors if not any(h.search(e) for h in HARMLESS_PAGE_ERRORS)]
    problems = [f"{name}: a request that leaves the machine: {u}" for u in blocked]
    problems += [f"{name}: {e}" for e in errors]
    return problems


# --------------------------------------------------------------------------------------------
# The tests


def test_explorer_chapter(jlab):
    """Run chapter 5 (Run menu, Run All Cells), check its {eval} values, move its sliders."""
    from vaelib.book.widgets import RERUN_NOTE

    page, log = jlab
    name = EXPLORER_CHAPTER
    panel_id = _open_notebook(page, name)
    panel = page.locator(f"[id='{panel_id}']")
    before_run = page.evaluate("id => window.__learner.markdown(id)", panel_id)
    try:
        page.wait_for_function(
            "id => window.__learner.run(id).status === 'idle'", arg=panel_id, timeout=KERNEL_MS
        )
    except Exception as exc:
        pytest.fail(f"{name}: the kernel did not become idle within {KERNEL_MS} ms: {exc}")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    started = time.monotonic()
    try:
        page.wait_for_function(
            """id => { const r = window.__learner.run(id);
                       return r.status === 'idle' && !r.running
                              && (r.pending.length === 0 || r.errors.length > 0); }""",
            arg=panel_id,
            polling=500,
            timeout=RUN_MS,
        )
    except Exception as exc:
        state = page.evaluate("id => window.__learner.run(id)", panel_id)
        pytest.fail(f"{name}: Run All Cells did not finish within {RUN_MS} ms ({state}): {exc}")
    run_seconds = time.monotonic() - started
    state = page.evaluate("id => window.__learner.run(id)", panel_id)
    assert not state["errors"], f"{name}: cells failed in Run All Cells: {state['errors']}"
    assert not state["pending"], f"{name}: cells that Run All Cells did not run: {state['pending']}"

    # The {eval} values: jupyterlab-myst asks the kernel for them when Run All reaches each
    # markdown cell and keeps the answers in the cell's metadata (user_expressions). Wait for
    # those, then for the rendering; the check below names every expression left without a value.
    try:
        page.wait_for_function(
            """id => window.__learner.panel(id).content.widgets
                 .filter(c => c.model.type === 'markdown'
                              && c.model.sharedModel.getSource().includes('{eval}'))
                 .every(c => Object.keys(c.model.getMetadata('user_expressions') || {}).length)""",
            arg=panel_id,
            timeout=RENDER_MS,
        )
    except Exception:
        pass
    _wait_rendered(page, panel_id, name)
    cells = page.evaluate("id => window.__learner.markdown(id)", panel_id)
    known, _ = _inspect(before_run, name, after_run=False)  # test_chapter_renders reports these
    failures, notes = _inspect(cells, name, after_run=True)
    failures = [f for f in failures if f not in known]
    evals = sum(len(re.findall(r"\{eval\}`", c["source"])) for c in cells)

    # The explorer: sliders, the note under them, a picture that changes when a slider moves.
    explorer = panel.locator(".jp-CodeCell .jp-Cell-outputArea").filter(
        has=page.locator(".widget-slider")
    )
    try:
        explorer.locator(".widget-slider").first.wait_for(timeout=REDRAW_MS)
        explorer.locator(".widget-output img").first.wait_for(timeout=REDRAW_MS)
    except Exception as exc:
        pytest.fail(f"{name}: the explorer's sliders or its picture did not appear: {exc}")
    assert explorer.count() == 1, f"{name}: {explorer.count()} explorers, expected one"
    note = explorer.locator(".jp-OutputArea-output").filter(has_text=RERUN_NOTE[:40])
    assert note.count() == 1, f"{name}: the note under the explorer's sliders is missing"
    explorer.scroll_into_view_if_needed()
    explorer.screenshot(path=str(SHOTS / f"{name}-explorer-before.png"))

    sliders = explorer.locator(".widget-slider")
    assert sliders.count() >= 1, f"{name}: the explorer has no slider"
    moved = []
    for k in range(sliders.count()):
        slider = sliders.nth(k)
        label = slider.locator(".widget-label").inner_text().strip()
        readout = slider.locator(".widget-readout")
        before_value = readout.inner_text().strip()
        before = explorer.locator(".widget-output img").first.get_attribute("src")
        handle = slider.locator(".noUi-handle")
        handle.focus()
        handle.press("ArrowRight")  # noUiSlider's keyboard step; a 'change', so a redraw
        try:
            page.wait_for_function(
                """([id, before]) => Array.from(document.querySelector(`[id='${id}']`)
                       .querySelectorAll('.widget-output img'))
                       .some(img => img.src !== before && img.src.startsWith('data:image/png'))""",
                arg=[panel_id, before],
                timeout=REDRAW_MS,
            )
        except Exception:
            pytest.fail(
                f"{name}: moving the slider {label} ({before_value} → "
                f"{readout.inner_text().strip()}) did not change the explorer's picture within "
                f"{REDRAW_MS} ms"
            )
        moved.append(f"{label} {before_value} → {readout.inner_text().strip()}")
    explorer.screenshot(path=str(SHOTS / f"{name}-explorer-after.png"))
    _screenshots(page, panel_id, f"{name}-run", full=True)

    failures += _check_page_log(log, name)
    notes = [n for n in notes if "citation" not in n and LINKS_NOTE not in n]  # reported before
    notes.append(
        f"{name}: Run All Cells took {run_seconds:.0f} s; {evals} {{eval}} expressions checked; "
        f"sliders moved, picture redrawn: {', '.join(moved)}"
    )
    _report(f"{name} after Run All Cells", failures, notes)
    _close(page, panel_id)
    if failures:
        pytest.fail(f"{name} after Run All Cells:\n" + "\n".join(failures), pytrace=False)


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_renders(jlab, name):
    """Open a chapter without running it: no raw MyST in its rendered prose."""
    page, log = jlab
    panel_id = _open_notebook(page, name)
    try:
        cells = page.evaluate("id => window.__learner.markdown(id)", panel_id)
        _screenshots(page, panel_id, name, full=name in FULL_SHOTS and name != EXPLORER_CHAPTER)
    finally:
        _close(page, panel_id)
    failures, notes = _inspect(cells, name, after_run=False)
    failures += _check_page_log(log, name)
    _report(name, failures, notes)
    if failures:
        pytest.fail(f"{name} shows raw MyST in JupyterLab:\n" + "\n".join(failures), pytrace=False)


def test_chapter_link(jlab):
    """Click chapter 5's link to chapter 4: JupyterLab must open 04_elbo.ipynb in a new tab."""
    page, log = jlab
    name = LINK_CHAPTER
    panel_id = _open_notebook(page, name)
    popups: list[str] = []
    downloads: list[str] = []

    def on_popup(p) -> None:
        popups.append(p.url)

    def on_download(d) -> None:
        downloads.append(d.url)

    page.context.on("page", on_popup)
    page.on("download", on_download)
    opened_id = None
    try:
        links = page.locator(f"[id='{panel_id}'] .myst a").filter(
            has_text=re.compile(f"^{re.escape(LINK_TEXT)}$")
        )
        assert links.count() >= 1, f"{name}: no rendered link “{LINK_TEXT}”"
        link = links.first
        href = link.get_attribute("href") or ""
        assert urlparse(href).path == f"/files/{LINK_TARGET}", (
            f"{name}: the link “{LINK_TEXT}” points at {href!r}, not at /files/{LINK_TARGET}"
        )
        page.evaluate("() => { window.__learnerDocument = true; }")  # gone if the page reloads
        link.scroll_into_view_if_needed()
        link.click()
        try:
            page.wait_for_function(
                """path => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                             return !!(w && w.context && w.context.path === path
                                       && w.context.isReady && w.hasClass('jp-NotebookPanel')
                                       && w.content.widgets.length > 0); }""",
                arg=LINK_TARGET,
                timeout=OPEN_MS,
            )
        except Exception as exc:
            pytest.fail(
                f"{name}: clicking the link “{LINK_TEXT}” did not open {LINK_TARGET} as a notebook "
                f"in JupyterLab within {OPEN_MS} ms (the page is at {page.url}; new browser tabs: "
                f"{popups}; downloads: {downloads}): {exc}"
            )
        assert page.evaluate("() => window.__learnerDocument === true"), (
            f"{name}: the click on “{LINK_TEXT}” reloaded the page (now {page.url})"
        )
        assert not popups, f"{name}: the click on “{LINK_TEXT}” opened a browser tab: {popups}"
        assert not downloads, f"{name}: the click on “{LINK_TEXT}” downloaded {downloads}"
        opened_id = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
        assert page.evaluate("id => !!window.__learner.panel(id)", panel_id), (
            f"{name}: the click on “{LINK_TEXT}” closed {name}"
        )
        _wait_rendered(page, opened_id, Path(LINK_TARGET).stem)
        page.screenshot(path=str(SHOTS / f"{name}-link-{Path(LINK_TARGET).stem}.png"))
        url = page.url
    finally:
        page.context.remove_listener("page", on_popup)
        page.remove_listener("download", on_download)
        if page.evaluate("() => !!window.__learner"):
            for panel in (opened_id, panel_id):
                if panel:
                    _close(page, panel)
    failures = _check_page_log(log, f"{name}, link to {LINK_TARGET}")
    _report(
        f"{name}, link “{LINK_TEXT}”",
        failures,
        [
            f"{name}: a click on “{LINK_TEXT}” opened {LINK_TARGET} as a notebook in a new "
            f"JupyterLab tab, {name} still open (the address bar shows {urlparse(url).path})"
        ],
    )
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
