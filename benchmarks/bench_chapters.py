"""Run time of every chapter notebook, against its budget.

Each notebook is executed top to bottom in a fresh ``python3`` kernel, the way the book build
runs it (working directory ``chapters/``, ``VAELIB_BOOK_BUILD=1``, the inline figure backend),
and the wall time of its cells is compared with the budget of the developers' guide: 60 s per
chapter; chapter 8: 180 s, chapter 9: 150 s, chapter 10: 120 s. The kernel's start-up and the
imports of the first cell are included. Run on an otherwise idle machine::

    python benchmarks/bench_chapters.py                 # every chapter
    python benchmarks/bench_chapters.py 05_kl 08_vae    # some of them
    python benchmarks/bench_chapters.py --json out.json

The exit status is 1 when a chapter is over its budget or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
BUDGET = {"08_vae": 180.0, "09_paper": 150.0, "10_troubleshooting": 120.0}
DEFAULT_BUDGET = 60.0


def run(path: Path) -> dict[str, object]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": str(CHAPTERS)}})
    start = time.perf_counter()
    slowest = (0.0, -1)
    error = None
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            t = time.perf_counter()
            try:
                client.execute_cell(cell, index)
            except Exception as err:  # noqa: BLE001 - report any failure of the chapter
                error = f"cell {index}: {type(err).__name__}"
                break
            slowest = max(slowest, (time.perf_counter() - t, index))
    seconds = time.perf_counter() - start
    budget = BUDGET.get(path.stem, DEFAULT_BUDGET)
    return {"chapter": path.stem, "seconds": round(seconds, 1), "budget": budget,
            "slowest_cell": slowest[1], "slowest_seconds": round(slowest[0], 1), "error": error}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="notebook names without .ipynb (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    os.environ["VAELIB_BOOK_BUILD"] = "1"
    os.environ.pop("MPLBACKEND", None)  # the kernel must keep its inline backend
    names = args.chapters or sorted(p.stem for p in CHAPTERS.glob("*.ipynb"))
    results = []
    print(f"{'chapter':<22} {'seconds':>8} {'budget':>7}  slowest cell")
    for name in names:
        result = run(CHAPTERS / f"{name}.ipynb")
        results.append(result)
        status = result["error"] or ("over budget" if result["seconds"] > result["budget"] else "")
        print(f"{result['chapter']:<22} {result['seconds']:8.1f} {result['budget']:7.0f}  "
              f"{result['slowest_cell']} ({result['slowest_seconds']} s) {status}", flush=True)
    total = sum(r["seconds"] for r in results)
    print(f"{'total':<22} {total:8.1f}")
    if args.json:
        args.json.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=1))
    return int(any(r["error"] or r["seconds"] > r["budget"] for r in results))


if __name__ == "__main__":
    sys.exit(main())
