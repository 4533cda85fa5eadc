"""The README's "Using vaelib" examples run as written (in a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_examples_run(tmp_path, monkeypatch) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert len(blocks) >= 2, "the README should show vaelib in use and a custom model"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:  # later blocks use the names of earlier ones, as a reader would
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "mnist-z2.pt").exists()
    assert len(namespace["history"]) == 5
