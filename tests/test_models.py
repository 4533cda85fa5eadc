"""vaelib.models: shapes, configurations and clear errors."""

import math

import pytest
import torch

from vaelib.models import MLP, VAE, Autoencoder, Perceptron, VAEConfig


def test_mlp_layers_and_parameter_count():
    net = MLP(5, [4, 4, 3], 1, activation="tanh")
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [4, 4, 3, 1]
    # (5*4 + 4) + (4*4 + 4) + (4*3 + 3) + (3*1 + 1)
    assert sum(p.numel() for p in net.parameters()) == 24 + 20 + 15 + 4
    assert isinstance(net[-1], torch.nn.Linear)  # no activation on the output


def test_perceptron_computes_wx_plus_b():
    p = Perceptron(3, activation="sigmoid")
    x = torch.randn(4, 3)
    expected = torch.sigmoid(x @ p.linear.weight[0] + p.linear.bias)
    assert torch.allclose(p(x), expected)


def test_autoencoder_shapes_and_loss():
    ae = Autoencoder(x_dim=10, z_dim=2, hidden_dims=(6,))
    x = torch.rand(5, 10)
    assert ae.encode(x).shape == (5, 2)
    assert ae(x).shape == (5, 10)
    assert torch.allclose(ae.loss(x), ((ae(x) - x) ** 2).sum(-1))


def test_vae_shapes():
    torch.manual_seed(0)
    model = VAE(VAEConfig(x_dim=12, hidden_dim=8, z_dim=3))
    x = torch.rand(4, 12)
    out = model(x)
    assert out.x_hat.shape == (4, 12) and out.mu.shape == (4, 3) and out.z.shape == (4, 3)
    assert model.sample(6).shape == (6, 12)
    assert model.reconstruct(x).shape == (4, 12)
    assert model.log_px_given_z(x, torch.randn(5, 4, 3)).shape == (5, 4)
    assert ((model.sample(3) >= 0) & (model.sample(3) <= 1)).all()


def test_paper_settings_are_reachable():
    torch.manual_seed(1)
    cfg = VAEConfig(
        x_dim=560, hidden_dim=200, z_dim=2, likelihood="gaussian", activation="tanh", init_std=0.01
    )
    model = VAE(cfg)
    assert isinstance(model.encoder[1], torch.nn.Tanh)
    weights = torch.cat([p.flatten() for p in model.parameters()])
    assert abs(weights.std().item() - 0.01) < 1e-3
    assert model.decoder[-1].out_features == 2 * 560  # mean and log-variance per pixel


def test_overrides_build_a_new_config():
    model = VAE(VAEConfig(), z_dim=2)
    assert model.config.z_dim == 2 and model.config.x_dim == 784


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"z_dim": 0}, "z_dim must be an integer >= 1"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"activation": "swishy"}, "unknown activation"),
        ({"init_std": -1.0}, "init_std"),
    ],
)
def test_bad_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VAEConfig(**kwargs)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.rand(3, 10), ValueError, r"shape \(batch, 12\)"),
        (torch.randint(0, 255, (3, 12)), TypeError, "floating-point"),
        (torch.full((3, 12), float("nan")), ValueError, "NaN"),
        (torch.rand(3, 12) * 255, ValueError, r"\[0, 1\]"),
        ([[0.0] * 12], TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(x, error, match):
    model = VAE(VAEConfig(x_dim=12, hidden_dim=8, z_dim=2))
    with pytest.raises(error, match=match):
        model.encode(x)


def test_gaussian_decoder_accepts_unbounded_data():
    model = VAE(VAEConfig(x_dim=4, hidden_dim=8, z_dim=2, likelihood="gaussian"))
    mu, logvar = model.encode(torch.randn(3, 4) * 10)
    assert mu.shape == (3, 2)


def test_decode_rejects_wrong_latent_size():
    model = VAE(VAEConfig(x_dim=4, hidden_dim=8, z_dim=2))
    with pytest.raises(ValueError, match="z_dim=2"):
        model.decode(torch.zeros(1, 3))


def test_fixed_decoder_variance_is_a_gaussian_with_that_variance():
    torch.manual_seed(0)
    logvar = 2 * math.log(0.1)  # sigma = 0.1 for every pixel
    model = VAE(
        VAEConfig(x_dim=6, hidden_dim=8, z_dim=2, likelihood="gaussian"), decoder_logvar=logvar
    )
    assert model.decoder[-1].out_features == 6  # means only: nothing to learn for sigma
    x, z = torch.rand(4, 6), torch.randn(3, 4, 2)
    expected = torch.distributions.Normal(model.decode(z), 0.1).log_prob(x).sum(-1)
    assert torch.allclose(model.log_px_given_z(x, z), expected, atol=1e-5)
    learned = VAE(VAEConfig(x_dim=6, hidden_dim=8, z_dim=2, likelihood="gaussian"))
    assert learned.decoder[-1].out_features == 2 * 6  # the default is unchanged


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"decoder_logvar": -2.0}, 'needs likelihood="gaussian"'),
        ({"likelihood": "gaussian", "decoder_logvar": float("nan")}, "finite number"),
        ({"likelihood": "gaussian", "decoder_logvar": "0.1"}, "finite number"),
    ],
)
def test_bad_decoder_variance_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VAEConfig(**kwargs)
