r"""Numbers for the prose: values that read as plain text wherever a chapter shows them.

A chapter computes a number in a code cell and writes it into a sentence with the ``{eval}``
role, as in ``the ELBO is {eval}`elbo_text` nats``. The book build (myst-nb, inline execution)
and JupyterLab (jupyterlab-myst) both show the value's plain-text representation; a Python
``str`` would show with quotes (``'−166.7'``), so :func:`number` and :func:`percent` return a
:class:`Text`, a ``str`` whose representation is itself.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["Text", "inline_png", "number", "percent"]

MINUS = "\N{MINUS SIGN}"


class Text(str):
    """A string that shows without quotes in IPython, Jupyter and the book build."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def number(value: float, spec: str = ".1f", unit: str = "") -> Text:
    """``value`` formatted with ``spec`` (a format specification such as ``".2f"`` or ``","``),
    with a typographic minus sign and an optional unit after a space."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"number() formats finite values, got {value}.")
    if spec.endswith("d"):  # an integer format: the value must be a whole number
        if value != int(value):
            raise ValueError(f"number({value}, {spec!r}): an integer format needs a whole number.")
        value = int(value)
    text = format(value, spec)
    if text.lstrip("-").strip("0.,") == "" and text.startswith("-"):
        text = text[1:]  # no "-0.0"
    text = text.replace("-", MINUS)
    return Text(f"{text} {unit}" if unit else text)


def percent(fraction: float, digits: int = 0) -> Text:
    """A fraction as a percentage: ``percent(0.904, 1)`` is ``90.4%``."""
    return Text(f"{format(100.0 * float(fraction), f'.{digits}f')}%")


def inline_png(fig: Any, alt: str, dpi: int = 100) -> Any:
    """A matplotlib figure as an HTML ``<img>`` with the PNG inside (a data URL), for a figure
    that another page of the book shows (a glued image file is not copied across pages). The
    figure is closed."""
    import base64
    import html
    import io

    import matplotlib.pyplot as plt
    from IPython.display import HTML

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return HTML(f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">')
