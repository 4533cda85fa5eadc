"""vaelib.book.widgets: the static (website) and live (kernel) explorers."""

import base64
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vaelib.book.widgets import MAX_FRAMES, StaticExplorer, explorer  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def render_curve(mu, sigma):
    fig, ax = plt.subplots(figsize=(3, 2))
    x = np.linspace(-4, 4, 50)
    ax.plot(x, np.exp(-((x - mu) ** 2) / (2 * sigma**2)))
    return fig


def render_image(a):
    return np.full((4, 3), a)


def test_static_view_has_one_distinct_frame_per_grid_point():
    view = explorer(render_curve, {"mu": [-1, 0, 1], "sigma": [0.5, 1.0]}, static=True)
    assert isinstance(view, StaticExplorer)
    assert sorted(view.frames) == ["0,0", "0,1", "1,0", "1,1", "2,0", "2,1"]
    decoded = [base64.b64decode(v) for v in view.frames.values()]
    assert all(d.startswith(PNG_MAGIC) for d in decoded)
    assert len(set(decoded)) == 6  # every slider position shows a different picture


def test_static_html_is_identical_across_runs_and_self_contained():
    params = {"mu": [-1, 0, 1], "sigma": [0.5, 1.0]}
    first = explorer(render_curve, params, static=True)._repr_html_()
    second = explorer(render_curve, params, static=True)._repr_html_()
    assert first == second
    assert first.count('type="range"') == 2
    assert "http://" not in first and "https://" not in first  # nothing to fetch
    # the initial picture is the middle value of each slider
    assert 'value="1" data-name="mu"' in first and 'value="1" data-name="sigma"' in first


def test_initial_values_and_labels():
    view = explorer(
        render_image,
        {"a": [0.0, 0.5, 1.0]},
        initial={"a": 0.9},
        labels={"a": "brightness"},
        static=True,
    )
    assert view.initial == (2,)
    assert "brightness" in view._repr_html_()
    assert view.pixelated  # grey images are shown without smoothing
    assert re.search(r'id="vaelib-explorer-[0-9a-f]{12}"', view._repr_html_())


def test_too_many_frames_is_refused():
    grid = np.linspace(0, 1, int(MAX_FRAMES**0.5) + 2)
    with pytest.raises(ValueError, match="too many"):
        explorer(render_image, {"a": grid, "b": grid}, static=True)


def test_bad_image_frame_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        explorer(lambda a: np.zeros((2, 2, 2)), {"a": [0.0]}, static=True)


def test_book_build_env_selects_static(monkeypatch):
    monkeypatch.setenv("VAELIB_BOOK_BUILD", "1")
    assert isinstance(explorer(render_image, {"a": [0.0, 1.0]}), StaticExplorer)


def test_live_view_builds_sliders():
    ipywidgets = pytest.importorskip("ipywidgets")
    view = explorer(render_curve, {"mu": [-1, 0, 1], "sigma": [0.5, 1.0]}, static=False)
    sliders = [w for w in view.children if isinstance(w, ipywidgets.FloatSlider)]
    assert [s.description for s in sliders] == ["mu", "sigma"]
    assert sliders[0].min == -1 and sliders[0].max == 1 and sliders[0].value == 0
    plt.close("all")


def test_live_view_tells_the_reader_to_rerun_the_cell(capsys):
    pytest.importorskip("ipywidgets")
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display

    from vaelib.book.widgets import RERUN_NOTE, LiveExplorer

    view = explorer(render_curve, {"mu": [-1, 0, 1], "sigma": [1.0]}, static=False)
    assert isinstance(view, LiveExplorer)
    InteractiveShell.instance()  # display() needs a shell to publish to
    display(view)
    out = capsys.readouterr().out
    assert "run this cell again" in RERUN_NOTE and "Error displaying widget" in RERUN_NOTE
    assert "run this cell again" in out  # published after the widget, as plain text too
    plt.close("all")
