"""vaelib.book.kl: the two parts of the KL to N(0, I), their asymptotes, the figure and the
explorer of the chapter *The KL divergence in closed form*."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch.distributions import Normal, kl_divergence  # noqa: E402

from vaelib.book.kl import (  # noqa: E402
    kl_explorer,
    kl_explorer_frame,
    kl_parts,
    kl_parts_figure,
    spread_asymptotes,
)
from vaelib.book.widgets import StaticExplorer  # noqa: E402
from vaelib.distributions import kl_normal_standard, kl_normal_standard_per_dim  # noqa: E402


def _random(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = 2 * torch.randn(shape, generator=g, dtype=torch.float64)
    logvar = 3 * torch.randn(shape, generator=g, dtype=torch.float64)
    return mu, logvar


def test_parts_add_up_to_the_kl_of_vaelib_and_of_torch_distributions():
    mu, logvar = _random((50, 7))
    mean, spread = kl_parts(mu, logvar)
    assert mean.shape == spread.shape == (50, 7)
    assert torch.allclose(mean + spread, kl_normal_standard_per_dim(mu, logvar), atol=1e-12)
    assert torch.allclose((mean + spread).sum(-1), kl_normal_standard(mu, logvar), atol=1e-10)
    reference = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    assert torch.allclose(mean + spread, reference, rtol=1e-10, atol=1e-12)


def test_parts_are_the_mean_and_the_spread_terms():
    mu, logvar = _random((100,), seed=1)
    mean, spread = kl_parts(mu, logvar)
    assert torch.equal(mean, 0.5 * mu**2)  # depends on mu only
    assert torch.equal(spread, kl_parts(torch.zeros_like(mu), logvar).spread)  # on logvar only
    assert (spread >= 0).all()


def test_parts_vanish_only_at_the_prior():
    mu = torch.arange(-20, 21, dtype=torch.float64) / 10
    logvar = torch.arange(-30, 21, dtype=torch.float64) / 10
    mean, spread = kl_parts(mu[:, None], logvar[None, :])
    total = mean + spread
    zero = total == 0
    assert zero.sum() == 1 and zero[mu == 0][:, logvar == 0].all()


def test_parts_broadcast():
    mean, spread = kl_parts(
        torch.zeros(3, 1, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    )
    assert mean.shape == spread.shape == (3, 4)


def test_spread_is_the_sum_of_its_asymptotes_and_approaches_each():
    logvar = torch.linspace(-30, 30, 121, dtype=torch.float64)
    spread = kl_parts(torch.zeros_like(logvar), logvar).spread
    line, exponential = spread_asymptotes(logvar)
    assert torch.allclose(line + exponential, spread, rtol=1e-12, atol=1e-12)
    narrow = spread_asymptotes(torch.tensor(-20.0, dtype=torch.float64))
    assert narrow.line.item() == pytest.approx(9.5)
    assert narrow.exponential.item() == pytest.approx(0.5 * math.exp(-20))
    wide = torch.tensor(20.0, dtype=torch.float64)
    ratio = kl_parts(torch.zeros(()), wide).spread / spread_asymptotes(wide).exponential
    assert ratio.item() == pytest.approx(1 - 21 * math.exp(-20), abs=1e-12)


def test_parts_figure_plots_the_parts():
    fig = kl_parts_figure(num_points=11)
    assert isinstance(fig, Figure)
    ax_m, ax_s = fig.axes[:2]
    x, y = ax_m.lines[0].get_data()
    assert torch.allclose(torch.as_tensor(y), 0.5 * torch.as_tensor(x) ** 2)
    x, y = ax_s.lines[0].get_data()
    x = torch.as_tensor(x)
    assert torch.allclose(torch.as_tensor(y), 0.5 * (x.exp() - 1 - x))
    plt.close(fig)


def test_explorer_frame_shows_the_parts_and_the_kl():
    fig = kl_explorer_frame(1.0, 0.5)
    heights = [p.get_height() for p in fig.axes[1].patches]
    expected = kl_parts(torch.tensor(1.0), torch.tensor(2 * math.log(0.5)))
    assert heights[0] == pytest.approx(expected.mean.item())
    assert heights[1] == pytest.approx(expected.spread.item())
    assert heights[2] == pytest.approx(sum(heights[:2]))
    plt.close(fig)
    fig = kl_explorer_frame(0.0, 1.0)
    assert "-0.00" not in fig.axes[1].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="positive"):
        kl_explorer_frame(0.0, 0.0)


def test_explorer_fits_every_frame():
    view = kl_explorer([-2.0, 2.0], [0.25, 2.0], static=True)
    assert isinstance(view, StaticExplorer)
    assert sorted(view.frames) == ["0,0", "0,1", "1,0", "1,1"]
    assert view.initial == (1, 0)  # mu = 1 -> nearest 2.0; sigma = 0.5 -> nearest 0.25
    with pytest.raises(ValueError, match="positive"):
        kl_explorer([0.0], [0.0, 1.0], static=True)
