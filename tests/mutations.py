"""Mutation test: plant each slip of the errata appendix and require that a check catches it.

A check that survives a planted slip is not a check. For every entry of :data:`MUTATIONS`:

1. copy ``vaelib`` to a temporary folder and plant the slip there (or in one cell of a chapter);
   the text to replace must occur exactly once, so a refactoring cannot silently disarm a
   mutation;
2. run the unit tests named by the entry against the mutated copy: at least one must fail;
3. execute the chapter, cell by cell, up to the check cell tagged ``errata-N``, with the mutated
   ``vaelib`` first on the kernel's path: the first cell that fails must fail with an
   ``AssertionError``, in the tagged cell or in an earlier check (the report says which).

Run with ``python tests/mutations.py`` (``make mutation-test``; CI runs it after ``make test``).
It prints one line per mutation and exits with status 1 if any slip survives.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"


@dataclass(frozen=True)
class Mutation:
    """One planted slip: replace ``old`` by ``new`` in ``path`` (a vaelib file, or a chapter
    notebook, where the replacement happens in the cell sources)."""

    name: str
    path: str
    old: str
    new: str
    notebook: str  # the chapter whose check must fail
    tag: str  # the tag of that check cell
    unit_tests: tuple[str, ...] = field(default=())
    slip: str = ""  # what the slip is, for the report


MUTATIONS: list[Mutation] = [
    Mutation(
        name="kl-sign",
        slip="the KL without its leading minus sign (errata 1)",
        path="vaelib/distributions.py",
        old="return -0.5 * (1.0 + logvar - mu**2 - torch.exp(logvar))",
        new="return 0.5 * (1.0 + logvar - mu**2 - torch.exp(logvar))",
        notebook="05_kl.ipynb",
        tag="errata-1",
        unit_tests=("tests/test_distributions.py",),
    ),
    Mutation(
        name="kl-symmetric",
        slip="a KL divergence that is symmetric (errata 2)",
        path="vaelib/book/divergences.py",
        old="integrand = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))",
        new="integrand = 0.5 * (p - torch.exp(log_q)) * (log_p - log_q)",
        notebook="04_elbo.ipynb",
        tag="errata-2",
        unit_tests=("tests/test_book_divergences.py",),
    ),
    Mutation(
        name="sigma-for-variance",
        slip="q's covariance sigma*I instead of diag(sigma^2): logvar read as log sigma (errata 3)",
        path="vaelib/distributions.py",
        old="return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar)).sum(-1)",
        new="return -0.5 * (LOG_2PI + 0.5 * logvar + (x - mean) ** 2 * torch.exp(-0.5 * logvar))"
        ".sum(-1)",
        notebook="04_elbo.ipynb",
        tag="errata-3",
        unit_tests=("tests/test_distributions.py",),
    ),
    Mutation(
        name="x4-for-x2",
        slip="the worked example's sample z = x^2 + x^4 eps (errata 4)",
        path="chapters/06_reparameterization.ipynb",
        old="return x**2, x**2",
        new="return x**2, x**4",
        notebook="06_reparameterization.ipynb",
        tag="errata-4",
    ),
    Mutation(
        name="stray-exponent",
        slip="gradient descent with a squared gradient (errata 5)",
        path="vaelib/book/descent.py",
        old="x = x - lr * grad(x)",
        new="x = x - lr * grad(x) ** 2",
        notebook="07_gradient_descent.ipynb",
        tag="errata-5",
        unit_tests=("tests/test_book_descent.py",),
    ),
    Mutation(
        name="gap-subtracted",
        slip="an ELBO above log p(x): the KL to the prior added, not subtracted (errata 6)",
        path="vaelib/book/linear_gaussian.py",
        old="return self.expected_log_likelihood(x, mu, logvar) - kl_normal_standard(mu, logvar)",
        new="return self.expected_log_likelihood(x, mu, logvar) + kl_normal_standard(mu, logvar)",
        notebook="04_elbo.ipynb",
        tag="errata-6",
        unit_tests=("tests/test_book_linear_gaussian.py",),
    ),
    Mutation(
        name="pixel-mean",
        slip="the reconstruction term averaged over pixels instead of summed (errata 7)",
        path="vaelib/distributions.py",
        old='return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)',
        new='return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").mean(-1)',
        notebook="08_vae.ipynb",
        tag="errata-7",
        unit_tests=("tests/test_distributions.py",),
    ),
]


class MutationError(RuntimeError):
    """The mutation could not be planted (its text is missing or ambiguous)."""


def _plant(text: str, mutation: Mutation) -> str:
    count = text.count(mutation.old)
    if count != 1:
        raise MutationError(
            f"{mutation.name}: the text to replace occurs {count} times in {mutation.path} "
            "(it must occur exactly once); update tests/mutations.py after the refactoring."
        )
    return text.replace(mutation.old, mutation.new)


def _mutated_tree(mutation: Mutation, workdir: Path) -> Path:
    """A copy of vaelib (and the chapter) with the slip planted; returns the copy's root."""
    root = workdir / "tree"
    shutil.copytree(ROOT / "vaelib", root / "vaelib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "chapters").mkdir()
    target = root / mutation.path
    if mutation.path.startswith("vaelib/"):
        target.write_text(_plant(target.read_text(encoding="utf-8"), mutation), encoding="utf-8")
    return root


def _run_unit_tests(mutation: Mutation, tree: Path) -> tuple[bool, str]:
    """True when at least one of the entry's unit tests fails with the slip planted."""
    if not mutation.unit_tests:
        return True, "no unit test named"
    env = dict(os.environ, PYTHONPATH=str(tree), MPLBACKEND="Agg")
    args = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
            "--rootdir", str(ROOT), *[str(ROOT / t) for t in mutation.unit_tests]]
    done = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return done.returncode == 1, summary


def _check_cell_fails(mutation: Mutation, tree: Path) -> tuple[bool, str]:
    """Execute the chapter up to its tagged check cell with the mutated vaelib first on the
    path; True when that cell raises AssertionError."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(CHAPTERS / mutation.notebook, as_version=4)
    index = [i for i, c in enumerate(nb.cells) if mutation.tag in c.get("metadata", {})
             .get("tags", [])]
    if len(index) != 1:
        raise MutationError(f"{mutation.name}: {mutation.notebook} must have exactly one cell "
                            f"tagged {mutation.tag!r}, found {len(index)}.")
    last = index[0]
    if mutation.path.startswith("chapters/"):
        sources = [c.source for c in nb.cells[: last + 1]]
        joined = json.dumps(sources)
        planted = json.loads(_plant(joined, Mutation(**{
            **mutation.__dict__, "old": json.dumps(mutation.old)[1:-1],
            "new": json.dumps(mutation.new)[1:-1]})))
        for cell, source in zip(nb.cells, planted):
            cell.source = source
    probe = nbformat.v4.new_code_cell(
        "import vaelib, pathlib\n"
        f"assert pathlib.Path(vaelib.__file__).is_relative_to({str(tree)!r}), vaelib.__file__"
    )
    nb.cells = [probe, *nb.cells[: last + 1]]
    env_setup = f"import sys; sys.path.insert(0, {str(tree)!r})"
    nb.cells.insert(0, nbformat.v4.new_code_cell(env_setup))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(CHAPTERS)}})
    os.environ.pop("MPLBACKEND", None)
    client.execute()
    for cell in nb.cells[:2]:
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if errors:
            raise MutationError(f"{mutation.name}: the kernel did not import the mutated "
                                f"vaelib: {errors[0].evalue}")
    failures = [(i - 2, [o for o in c.get("outputs", []) if o.output_type == "error"][0])
                for i, c in enumerate(nb.cells[2:], start=2)
                if any(o.output_type == "error" for o in c.get("outputs", []))]
    if not failures:
        return False, f"cell {last} passed, and no cell before it failed"
    first, error = failures[0]
    if error.ename != "AssertionError":
        return False, f"cell {first} raised {error.ename}, not AssertionError"
    where = "the tagged cell" if first == last else f"the earlier check cell {first}"
    return True, f"{where} raised AssertionError (tagged cell {last})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only these mutations")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    survivors = 0
    for mutation in chosen:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="vaelib-mutation-") as tmp:
            try:
                tree = _mutated_tree(mutation, Path(tmp))
                units_fail, unit_note = _run_unit_tests(mutation, tree)
                chapter_fails, chapter_note = _check_cell_fails(mutation, tree)
            except MutationError as err:
                print(f"ERROR    {mutation.name}: {err}", flush=True)
                survivors += 1
                continue
        caught = units_fail and chapter_fails
        survivors += not caught
        verdict = "caught  " if caught else "SURVIVED"
        print(f"{verdict} {mutation.name:<20} {mutation.slip}\n"
              f"         unit tests: {'fail' if units_fail else 'PASS'} ({unit_note}); "
              f"{mutation.notebook} [{mutation.tag}]: {chapter_note} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"{len(chosen) - survivors} of {len(chosen)} planted slips caught.")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
