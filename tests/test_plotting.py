"""vaelib.plotting: grids, the inverse-CDF manifold and the helper conventions."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy.stats import norm  # noqa: E402

from vaelib import VAE, VAEConfig  # noqa: E402
from vaelib.plotting import (  # noqa: E402
    image_grid,
    latent_grid,
    plot_curves,
    plot_latent_scatter,
    plot_manifold,
    tile_images,
)


def test_tile_images_places_images_row_by_row():
    images = np.stack([np.full((2, 3), i, dtype=np.float32) for i in range(5)])
    canvas = tile_images(images.reshape(5, -1), nrow=3, image_shape=(2, 3), padding=1)
    assert canvas.shape == (2 * 3 - 1 + 0, 3 * 4 - 1)  # 2 rows of height 2 + 1 gap, 3 columns
    assert canvas[0, 0] == 0 and canvas[0, 4] == 1 and canvas[3, 0] == 3 and canvas[3, 4] == 4


def test_latent_grid_is_the_inverse_cdf_of_an_even_grid():
    z = latent_grid(n=5, quantile_range=(0.1, 0.9))
    assert z.shape == (25, 2)
    expected = norm.ppf(np.linspace(0.1, 0.9, 5))
    assert np.allclose(z[:5, 0].numpy(), expected, atol=1e-6)  # z1 grows along a row
    assert np.allclose(z[::5, 1].numpy(), expected[::-1], atol=1e-6)  # z2 falls down a column
    with pytest.raises(ValueError, match="quantile_range"):
        latent_grid(3, (0.0, 1.0))


def test_helpers_draw_on_the_given_axes_and_return_them():
    fig, axes = plt.subplots(1, 4)
    model = VAE(VAEConfig(x_dim=12, hidden_dim=8, z_dim=2))
    assert image_grid(torch.rand(4, 784), ax=axes[0]) is axes[0]
    assert plot_manifold(model, n=3, image_shape=(3, 4), ax=axes[1]) is axes[1]
    assert plot_latent_scatter(torch.randn(20, 2), torch.arange(20) % 3, ax=axes[2]) is axes[2]
    assert plot_curves({"train": [1, 2], "test": [1.5, 2.5]}, ax=axes[3]) is axes[3]
    assert len(axes[3].get_lines()) == 2
    plt.close(fig)


def test_manifold_needs_two_latent_dimensions():
    with pytest.raises(ValueError, match="z_dim=2"):
        plot_manifold(VAE(VAEConfig(x_dim=12, hidden_dim=8, z_dim=3)))


def test_manifold_grid_follows_the_model_s_dtype_and_device():
    """Regression: plot_manifold built its grid on the CPU in float32 whatever the model."""
    model = VAE(VAEConfig(x_dim=12, hidden_dim=8, z_dim=2, seed=0)).double()
    fig, ax = plt.subplots()
    plot_manifold(model, n=3, image_shape=(3, 4), ax=ax)  # float32 grid would fail here
    expected = model.decode(latent_grid(3).double())
    shown = ax.get_images()[0].get_array()
    assert np.allclose(shown, tile_images(expected.detach(), 3, (3, 4), padding=0))
    plt.close(fig)


def test_image_rows_labels_every_row_and_clips():
    from vaelib.plotting import image_rows

    fig = image_rows([("a", torch.rand(5, 784)), ("b", torch.rand(5, 784) * 3 - 1)])
    axes = fig.get_axes()
    assert [ax.texts[0].get_text() for ax in axes] == ["a", "b"]
    data = axes[1].get_images()[0].get_array()
    assert data.min() >= 0 and data.max() <= 1
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one"):
        image_rows([])


def test_latent_scatter_legend_outside():
    fig, ax = plt.subplots()
    plot_latent_scatter(torch.randn(30, 2), torch.arange(30) % 3, ax=ax, legend="outside")
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "digit" and len(legend.get_texts()) == 3
    plt.close(fig)
    with pytest.raises(ValueError, match="legend must be"):
        plot_latent_scatter(torch.randn(3, 2), ax=ax, legend="left")
