"""Book-level checks on chapters/ and _toc.yml.

Chapter notebooks are committed without outputs (the book build and `make test` execute them),
run on the standard ``python3`` kernel, and every page in chapters/ is listed in the table of
contents, which names no missing file; every `{eval}` role uses only names defined above it.
Executing the notebooks is `pytest --nbval-lax chapters/` (see the Makefile), not this file.
"""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
TOC = ROOT / "_toc.yml"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))
PAGES = sorted(CHAPTERS.glob("*.md")) + NOTEBOOKS


def _toc_files(node: object) -> list[str]:
    """Every ``root`` and ``file`` entry of a jb-book toc, in order, without extension."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("root", "file") and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_toc_files(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_toc_files(item))
    return found


def _toc_entries() -> list[str]:
    toc = yaml.safe_load(TOC.read_text(encoding="utf-8"))
    assert toc.get("format") == "jb-book", "_toc.yml must use the jb-book format"
    return _toc_files(toc)


def _entry_path(entry: str) -> Path | None:
    """The file a toc entry names (entries may omit .md/.ipynb), or None if there is none."""
    path = ROOT / entry
    if path.suffix in (".md", ".ipynb"):
        return path if path.is_file() else None
    matches = [p for p in (path.with_suffix(".md"), path.with_suffix(".ipynb")) if p.is_file()]
    return matches[0] if len(matches) == 1 else None


def _id(path: Path) -> str:
    return path.name


def test_toc_entries_exist() -> None:
    entries = _toc_entries()
    assert entries, "_toc.yml lists no page"
    missing = [e for e in entries if _entry_path(e) is None]
    assert not missing, (
        f"_toc.yml names pages that do not exist (or exist as both .md and .ipynb): {missing}. "
        "Add the file or remove its line from _toc.yml."
    )
    duplicates = sorted({e for e in entries if entries.count(e) > 1})
    assert not duplicates, f"_toc.yml lists these pages more than once: {duplicates}"


def test_toc_root_is_the_landing_page() -> None:
    toc = yaml.safe_load(TOC.read_text(encoding="utf-8"))
    assert toc["root"] == "chapters/intro"


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_page_is_in_toc(page: Path) -> None:
    listed = {_entry_path(e) for e in _toc_entries()}
    assert page in listed, (
        f"{page.relative_to(ROOT)} is not in _toc.yml, so the book would not publish it "
        "(only_build_toc_files: true). Add a '- file:' line for it."
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_id)
def test_notebook_has_no_outputs(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{notebook.name}: code cells {dirty} have outputs or execution counts. Commit notebooks "
        "without outputs, e.g. `.venv/bin/jupyter nbconvert --clear-output --inplace "
        f"chapters/{notebook.name}`."
    )
    assert "widgets" not in nb.metadata, (
        f"{notebook.name}: the notebook metadata stores widget state (an output): delete "
        "metadata['widgets'] (JupyterLab: turn off Settings > Save Widget State Automatically)."
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_id)
def test_notebook_kernel_is_python3(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    kernelspec = nb.metadata.get("kernelspec", {})
    assert kernelspec.get("name") == "python3", (
        f"{notebook.name}: kernelspec name is {kernelspec.get('name')!r}; the book build and "
        "nbval start the kernel named in the notebook, which must be 'python3'."
    )
    assert kernelspec.get("language", "python") == "python"


# ------------------------------------------------------------------------------------------
# {eval} roles: myst-nb (inline mode) evaluates each `{eval}`expr`` when it reaches the
# markdown cell, in the kernel's state at that point, so every name the expression uses must be
# bound by a code cell *above* it. A name defined only further down renders as a NameError box
# (and fails the -W build); JupyterLab shows the same after Run All.

_EVAL_ROLE = re.compile(r"\{eval\}`([^`]+)`")


def _bound_names(tree: ast.AST) -> set[str]:
    """Names a code cell binds at top level or anywhere (assignments, imports, defs, loops)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
    return names


def _loaded_roots(expr: str) -> set[str]:
    tree = ast.parse(expr.strip(), mode="eval")
    inner = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    } - inner - set(dir(builtins))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_id)
def test_eval_names_are_defined_above(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    bound: set[str] = set()
    missing: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            # IPython syntax (magics, `x = !cmd`) becomes plain Python first.
            bound |= _bound_names(ast.parse(TransformerManager().transform_cell(cell.source)))
        elif cell.cell_type == "markdown":
            for match in _EVAL_ROLE.finditer(cell.source):
                undefined = sorted(_loaded_roots(match.group(1)) - bound)
                if undefined:
                    missing.append(f"cell {index}: {{eval}}`{match.group(1)}` uses {undefined}")
    assert not missing, (
        f"{notebook.name}: these {{eval}} roles use names no code cell above them defines "
        "(move the defining cell up, or the sentence down):\n" + "\n".join(missing)
    )


# ------------------------------------------------------------------------------------------
# The chapters in JupyterLab: jupyterlab-myst renders MyST without the rest of the book, so a
# role that needs another page (or the .bib file) shows as a warning chip with its raw label.
# tests/test_learner.py looks at the rendered notebooks; this is the quick static version.

_LABEL_DEF = re.compile(r"^\(([\w-]+)\)=|\$\$\s*\(([\w-]+)\)|:name:\s*([\w-]+)", re.M)


def _labels(nb: nbformat.NotebookNode) -> set[str]:
    found: set[str] = set()
    for cell in nb.cells:
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if figure.get("name"):
            found.add(figure["name"])
        for match in _LABEL_DEF.finditer(cell.source):
            found.add(next(g for g in match.groups() if g))
    return found


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_id)
def test_references_resolve_inside_the_notebook(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    labels = _labels(nb)
    problems: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = cell.source
        if "{bibliography}" in text:
            problems.append(f"cell {index}: a {{bibliography}} directive (renders empty; the "
                            "References appendix lists every cited work)")
        for match in re.finditer(r"\{doc\}`[^`]*`", text):
            problems.append(f"cell {index}: {match.group(0)} (write a Markdown link, "
                            "[Chapter 4](04_elbo.ipynb), which also opens in JupyterLab)")
        for match in re.finditer(r"\{numref\}`([^`]*)`", text):
            # JupyterLab shows no figure numbers (its %s stays raw), and Sphinx rejects a numref
            # title without %s ("invalid numfig_format"): a {ref} with its own words works in both
            problems.append(f"cell {index}: {match.group(0)} (write {{ref}}`the figure below "
                            "<fig-...>`: its own words, no number)")
        for match in re.finditer(r"\{(eq|ref|numref)\}`([^`]*)`", text):
            label = re.sub(r".*<([^>]+)>\s*$", r"\1", match.group(2)).strip()
            if label not in labels:
                problems.append(f"cell {index}: {match.group(0)} points outside this notebook "
                                "(link the chapter with Markdown instead)")
        for match in re.finditer(r"\{cite:[a-z]+\}`([^`]*)`", text):
            prefixed = [k for k in match.group(1).split(",") if re.match(r"\s*(ch\d+|howto)-", k)]
            if prefixed:
                problems.append(f"cell {index}: citation keys with a prefix {prefixed} (cite the "
                                "plain keys of references.bib)")
    assert not problems, (
        f"{notebook.name}: MyST that JupyterLab cannot render as the website does:\n"
        + "\n".join(problems)
    )


def test_every_cited_key_is_in_references_bib() -> None:
    """Citations in prose and in figure captions (cell metadata) name keys of references.bib."""
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), re.M))
    missing = []
    for page in PAGES:
        for match in re.finditer(r"\{cite:[a-z]+\}`([^`]*)`", page.read_text(encoding="utf-8")):
            for key in match.group(1).split(","):
                if key.strip() not in keys:
                    missing.append(f"{page.name}: {key.strip()}")
    assert not missing, "cited keys missing from references.bib:\n" + "\n".join(missing)
