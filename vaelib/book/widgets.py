"""Explorers: move sliders, see a figure change — live in Jupyter, kernel-free on the website.

One call, :func:`explorer`, serves both audiences:

* in a running kernel (JupyterLab, Notebook, VS Code, Colab) it returns live ``ipywidgets``
  sliders that re-draw the figure through Python;
* when the book is built (``VAELIB_BOOK_BUILD=1``, set by ``make book``) or when asked with
  ``static=True``, it pre-renders one frame per point of the slider grid and returns a small
  self-contained HTML view: a picture, ``<input type="range">`` sliders and a few lines of plain
  JavaScript that swap the picture. No kernel, no widget manager, no CDN. The same inputs give
  byte-identical HTML on every run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

Render = Callable[..., "Figure | np.ndarray"]
BOOK_BUILD_ENV = "VAELIB_BOOK_BUILD"
MAX_FRAMES = 400


def _png_bytes(frame: Figure | np.ndarray, dpi: int, colors: int) -> bytes:
    """Encode a figure, or a grey image with values in [0, 1], as a compact PNG."""
    from PIL import Image

    if isinstance(frame, Figure):
        buf = io.BytesIO()
        frame.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
        plt.close(frame)
        image = Image.open(buf).convert("RGB")
        # an adaptive palette keeps line plots crisp at a third of the size
        image = image.quantize(
            colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    else:
        arr = np.asarray(frame, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(f"an image frame must be 2-D (H, W), got shape {arr.shape}.")
        image = Image.fromarray(np.round(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8), mode="L")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _format(value: float) -> str:
    return f"{value:.3g}"


@dataclass(frozen=True)
class StaticExplorer:
    """A pre-rendered explorer: sliders over a grid of parameter values, one PNG per point."""

    names: tuple[str, ...]
    labels: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]
    initial: tuple[int, ...]
    frames: Mapping[str, str]  # "i,j,..." -> base64 PNG
    description: str = ""
    pixelated: bool = False
    width: int | None = None

    @property
    def uid(self) -> str:
        """A stable id derived from the content, so repeated builds give identical HTML."""
        digest = hashlib.sha256(
            json.dumps([self.names, self.values, sorted(self.frames.items())]).encode()
        )
        return "vaelib-explorer-" + digest.hexdigest()[:12]

    @property
    def nbytes(self) -> int:
        """Size of the embedded frames in bytes (the page weight this view adds)."""
        return sum(len(v) for v in self.frames.values())

    def _repr_html_(self) -> str:
        uid = self.uid
        style = "max-width:100%;height:auto;"
        if self.pixelated:
            style += "image-rendering:pixelated;"
        if self.width:
            style += f"width:{self.width}px;"
        rows = "".join(
            _slider_html(name, label, values, self.initial[k])
            for k, (name, label, values) in enumerate(zip(self.names, self.labels, self.values))
        )
        desc = f"<p>{html.escape(self.description)}</p>" if self.description else ""
        alt = html.escape(self.description or "explorer")
        src = self.frames[",".join(map(str, self.initial))]
        frames_json = json.dumps(dict(sorted(self.frames.items())))
        return (
            f'<div class="vaelib-explorer" id="{uid}">{desc}{rows}'
            f'<img class="vaelib-explorer-frame" alt="{alt}" style="{style}" '
            f'src="data:image/png;base64,{src}">'
            f'<script type="application/json" class="vaelib-explorer-frames">{frames_json}</script>'
            f"<script>{_SCRIPT.replace('UID', uid)}</script></div>"
        )


def _slider_html(name: str, label: str, values: Sequence[float], index: int) -> str:
    shown = html.escape(json.dumps([_format(v) for v in values]))
    return (
        '<label style="display:flex;align-items:center;gap:0.6em;margin:0.2em 0;">'
        f'<span style="min-width:5em;">{html.escape(label)}</span>'
        f'<input type="range" min="0" max="{len(values) - 1}" step="1" value="{index}" '
        f'data-name="{html.escape(name)}" data-values="{shown}" '
        f'aria-label="{html.escape(label)}" style="flex:1;max-width:22em;">'
        f'<output style="min-width:3.5em;font-family:monospace;">{_format(values[index])}</output>'
        "</label>"
    )


# Swaps the picture when a slider moves; frames are keyed by the slider indices, "i,j".
_SCRIPT = """(function () {
  var root = document.getElementById("UID");
  var frames = JSON.parse(root.querySelector(".vaelib-explorer-frames").textContent);
  var img = root.querySelector(".vaelib-explorer-frame");
  var sliders = root.querySelectorAll("input[type=range]");
  function update() {
    var key = [];
    sliders.forEach(function (s) {
      key.push(s.value);
      s.nextElementSibling.textContent = JSON.parse(s.dataset.values)[s.value];
    });
    img.src = "data:image/png;base64," + frames[key.join(",")];
  }
  sliders.forEach(function (s) { s.addEventListener("input", update); });
})();"""


def _is_static(static: bool | None) -> bool:
    if static is not None:
        return static
    if os.environ.get(BOOK_BUILD_ENV):
        return True
    try:  # a live view needs a kernel with a front end
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return True
    return shell is None or not hasattr(shell, "kernel")


def render_static(
    render: Render,
    params: Mapping[str, Sequence[float]],
    initial: Mapping[str, float] | None = None,
    labels: Mapping[str, str] | None = None,
    description: str = "",
    dpi: int = 80,
    colors: int = 48,
    width: int | None = None,
) -> StaticExplorer:
    """Pre-render ``render(**point)`` at every point of the grid ``params`` (the website view)."""
    names = tuple(params)
    values = tuple(tuple(float(v) for v in params[n]) for n in names)
    if not names or any(len(v) == 0 for v in values):
        raise ValueError("every slider needs at least one value.")
    n_frames = int(np.prod([len(v) for v in values]))
    if n_frames > MAX_FRAMES:
        raise ValueError(
            f"{n_frames} frames is too many for a web page (at most {MAX_FRAMES}); use fewer "
            "slider values."
        )
    start = tuple(
        _nearest(values[k], (initial or {}).get(n, values[k][len(values[k]) // 2]))
        for k, n in enumerate(names)
    )
    frames: dict[str, str] = {}
    pixelated = False
    for index in itertools.product(*(range(len(v)) for v in values)):
        point = {n: values[k][i] for k, (n, i) in enumerate(zip(names, index))}
        frame = render(**point)
        pixelated = pixelated or isinstance(frame, np.ndarray)
        frames[",".join(map(str, index))] = base64.b64encode(
            _png_bytes(frame, dpi, colors)
        ).decode()
    return StaticExplorer(
        names=names,
        labels=tuple((labels or {}).get(n, n) for n in names),
        values=values,
        initial=start,
        frames=frames,
        description=description,
        pixelated=pixelated,
        width=width,
    )


def _nearest(values: Sequence[float], target: float) -> int:
    return int(np.argmin([abs(v - target) for v in values]))


def _live(
    render: Render,
    params: Mapping[str, Sequence[float]],
    initial: Mapping[str, float] | None,
    labels: Mapping[str, str] | None,
    description: str,
):
    import ipywidgets as widgets
    from IPython.display import display

    sliders = {}
    for name, vals in params.items():
        vals = [float(v) for v in vals]
        value = vals[_nearest(vals, (initial or {}).get(name, vals[len(vals) // 2]))]
        step = (vals[-1] - vals[0]) / (len(vals) - 1) if len(vals) > 1 else 1.0
        sliders[name] = widgets.FloatSlider(
            value=value,
            min=vals[0],
            max=vals[-1],
            step=step / 4,  # finer than the website's grid: the kernel can draw any value
            description=(labels or {}).get(name, name),
            continuous_update=False,
            readout_format=".3g",
        )
    out = widgets.Output()

    def draw(**point: float) -> None:
        with out:
            out.clear_output(wait=True)
            frame = render(**point)
            if isinstance(frame, Figure):
                display(frame)
                plt.close(frame)
            else:
                fig, ax = plt.subplots(figsize=(3, 3))
                ax.imshow(frame, cmap="gray", vmin=0, vmax=1)
                ax.set_axis_off()
                display(fig)
                plt.close(fig)

    widgets.interactive_output(draw, sliders)
    header = [widgets.HTML(f"<p>{html.escape(description)}</p>")] if description else []
    return LiveExplorer(widgets.VBox([*header, *sliders.values(), out]))


RERUN_NOTE = (
    "The sliders need a running kernel: if this notebook was reopened and the view above shows "
    '"Error displaying widget" or nothing, run this cell again.'
)


class LiveExplorer:
    """Live sliders (``widget``, an ``ipywidgets.VBox``) followed by a one-line note that stays
    readable when a saved notebook is reopened without its widgets: run the cell again."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget

    @property
    def children(self) -> tuple[Any, ...]:
        return self.widget.children

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
        note = html.escape(RERUN_NOTE)
        display({"text/html": f'<p style="font-size:smaller;color:#555;margin-top:0.3em;">'
                              f"{note}</p>", "text/plain": RERUN_NOTE}, raw=True)


def explorer(
    render: Render,
    params: Mapping[str, Sequence[float]],
    *,
    initial: Mapping[str, float] | None = None,
    labels: Mapping[str, str] | None = None,
    description: str = "",
    static: bool | None = None,
    dpi: int = 80,
    width: int | None = None,
):
    """An interactive view of ``render`` over the slider values ``params``.

    Args:
        render: ``render(**point)`` returns a matplotlib ``Figure`` (closed by the explorer) or
            a grey image ``(H, W)`` with values in [0, 1].
        params: slider name → the values it takes, in increasing order and with any spacing.
            The website's slider steps through exactly these, one position per value; a live
            slider in a kernel runs from the first to the last in steps of a quarter of their
            mean spacing, so it also takes values in between.
        initial: starting value per slider (default: the middle value).
        labels: slider name → the label shown (default: the name).
        description: one sentence shown above the sliders.
        static: ``True`` for the pre-rendered HTML view, ``False`` for live widgets, ``None``
            to choose: static in a book build (``VAELIB_BOOK_BUILD`` set) or outside a kernel.
        dpi: resolution of the pre-rendered figures.
        width: display width in pixels of the pre-rendered picture (default: natural size).

    Returns:
        A :class:`StaticExplorer` (displays as HTML) or a :class:`LiveExplorer` (sliders, then a
        note to re-run the cell if a reopened notebook has lost its widgets).
    """
    if _is_static(static):
        return render_static(render, params, initial, labels, description, dpi=dpi, width=width)
    return _live(render, params, initial, labels, description)


def decoder_explorer(
    model: Any,
    values: Sequence[float],
    image_shape: tuple[int, int] = (28, 28),
    description: str = "",
    width: int | None = 196,
):
    """An explorer of a 2-D decoder: two sliders set :math:`z = (z_1, z_2)`, the picture is the
    decoder's mean image there (the same values on both axes)."""
    import torch

    if getattr(model, "z_dim", 2) != 2:
        raise ValueError(f"decoder_explorer needs a model with z_dim=2, got {model.z_dim}.")
    param = next(model.parameters())

    def decode_point(z1: float, z2: float) -> np.ndarray:
        with torch.no_grad():
            z = torch.tensor([[z1, z2]], dtype=param.dtype, device=param.device)
            return model.decode(z).reshape(image_shape).cpu().numpy()

    return explorer(
        decode_point,
        {"z1": list(values), "z2": list(values)},
        labels={"z1": "z₁", "z2": "z₂"},
        description=description,
        width=width,
    )
