"""vaelib.models: shapes, configurations and clear errors."""

import math

import numpy as np
import pytest
import torch

from vaelib.book.backprop import Perceptron
from vaelib.models import MLP, VAE, Autoencoder, ConvVAE, ConvVAEConfig, VAEConfig


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


def test_sigmoid_gaussian_decoder_rejects_data_it_cannot_model_and_says_what_to_do():
    """Regression: the sigmoid-mean Gaussian decoder accepted data in [-38, 46] silently."""
    model = VAE(VAEConfig(x_dim=4, hidden_dim=8, z_dim=2, likelihood="gaussian"))
    with pytest.raises(ValueError, match='decoder_mean="identity"') as info:
        model.encode(torch.linspace(-38, 46, 12).reshape(3, 4))
    assert "Gaussian decoder" in str(info.value) and "Bernoulli" not in str(info.value)


def test_bernoulli_error_recommends_the_unbounded_gaussian_decoder():
    model = VAE(VAEConfig(x_dim=4, hidden_dim=8, z_dim=2))
    with pytest.raises(ValueError, match='likelihood="gaussian", decoder_mean="identity"'):
        model.encode(torch.randn(3, 4) * 10)


def test_identity_mean_gaussian_decoder_models_unbounded_data():
    torch.manual_seed(0)
    model = VAE(VAEConfig(x_dim=4, hidden_dim=8, z_dim=2, likelihood="gaussian",
                          decoder_mean="identity"))
    x, z = torch.randn(3, 4) * 10, torch.randn(5, 3, 2)
    mean, logvar = model.decoder_params(z)
    raw_mean, raw_logvar = model.decoder(z).chunk(2, dim=-1)
    assert torch.equal(mean, raw_mean) and torch.equal(logvar, raw_logvar)  # no squashing
    expected = torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)
    assert torch.allclose(model.log_px_given_z(x, z), expected, atol=1e-4)
    assert model.input_range is None and model.encode(x)[0].shape == (3, 2)


def test_decode_rejects_wrong_latent_size():
    model = VAE(VAEConfig(x_dim=4, hidden_dim=8, z_dim=2))
    with pytest.raises(ValueError, match="z_dim=2"):
        model.decode(torch.zeros(1, 3))


def test_numpy_numbers_are_accepted_and_messages_agree_with_themselves():
    """Regression: VAEConfig(x_dim=np.int64(784)) was rejected as 'not an integer >= 1, got 784'."""
    cfg = VAEConfig(x_dim=np.int64(784), hidden_dim=np.int32(16), z_dim=np.int64(2),
                    init_std=np.float32(0.01))
    assert cfg.x_dim == 784 and type(cfg.x_dim) is int and isinstance(cfg.init_std, float)
    assert VAE(cfg).encode(torch.rand(2, 784))[0].shape == (2, 2)
    with pytest.raises(ValueError, match=r"integer >= 1, got 0\."):
        VAEConfig(z_dim=np.int64(0))
    with pytest.raises(ValueError, match="got 2.5 of type float"):
        VAEConfig(z_dim=2.5)


def test_seed_at_construction_makes_the_initial_weights_reproducible():
    """Regression for fit's promise: the same seed must cover the weight initialisation."""
    cfg = VAEConfig(x_dim=12, hidden_dim=8, z_dim=2, seed=3)
    a, b = VAE(cfg), VAE(cfg)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    state = torch.get_rng_state()
    VAE(cfg)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is not consumed
    c = VAE(cfg, seed=4)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_sample_x_given_z_draws_from_the_decoder():
    torch.manual_seed(0)
    model = VAE(VAEConfig(x_dim=6, hidden_dim=8, z_dim=2))
    z = torch.randn(1, 2).expand(20000, 2)
    draws = model.sample_x_given_z(z, generator=torch.Generator().manual_seed(0))
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    p = model.decode(z[:1])[0]
    assert torch.allclose(draws.mean(0), p, atol=5 * 0.5 / 20000**0.5)  # 5 binomial s.e.
    gauss = VAE(VAEConfig(x_dim=3, hidden_dim=8, z_dim=2, likelihood="gaussian",
                          decoder_logvar=2 * math.log(0.2)))
    g = gauss.sample_x_given_z(z, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(g.std(0), torch.full((3,), 0.2), rtol=0.05)  # sigma, not sigma^2


@pytest.mark.parametrize("option", [{"decoder_logvar_bounds": (-4.0, 1.0)},
                                    {"decoder_variance_floor": 0.01}])
def test_bounded_decoder_variances(option):
    torch.manual_seed(0)
    model = VAE(VAEConfig(x_dim=5, hidden_dim=8, z_dim=2, likelihood="gaussian", **option))
    with torch.no_grad():
        model.decoder[-1].bias[5:] = torch.tensor([-50.0, -3.0, 0.0, 3.0, 50.0])
        model.decoder[-1].weight.zero_()
    _, logvar = model.decoder_params(torch.zeros(1, 2))
    raw = torch.tensor([-50.0, -3.0, 0.0, 3.0, 50.0])
    if "decoder_logvar_bounds" in option:
        expected = raw.clamp(-4.0, 1.0)
    else:
        expected = torch.log(0.01 + torch.exp(raw))
    assert torch.allclose(logvar[0], expected, atol=1e-6)


def test_conv_vae_follows_the_protocol_on_image_shaped_data():
    model = ConvVAE(ConvVAEConfig(image_shape=(1, 28, 28), z_dim=3, seed=0))
    x = torch.rand(4, 1, 28, 28)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (4, 3)
    z = torch.randn(5, 4, 3)
    assert model.log_px_given_z(x, z).shape == (5, 4)
    assert model.decode(z).shape == (5, 4, 1, 28, 28)
    assert model.sample(2).shape == (2, 1, 28, 28)
    logits, _ = model.decoder_params(z[0])
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits, x.reshape(4, -1), reduction="none").sum(-1)
    assert torch.allclose(model.log_px_given_z(x, z[0]), expected)
    with pytest.raises(ValueError, match=r"shape \(batch, 1, 28, 28\)"):
        model.encode(torch.rand(4, 784))
    gauss = ConvVAE(image_shape=(2, 8, 12), z_dim=2, likelihood="gaussian",
                    decoder_mean="identity", channels=(4, 8), hidden_dim=16)
    xg = torch.randn(3, 2, 8, 12)
    mean, logvar = gauss.decoder_params(torch.zeros(3, 2))
    assert mean.shape == logvar.shape == (3, 2 * 8 * 12)
    assert gauss.log_px_given_z(xg, torch.zeros(3, 2)).shape == (3,)
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvVAEConfig(image_shape=(1, 30, 30))


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
        ({"decoder_mean": "identity"}, 'needs likelihood="gaussian"'),
        ({"likelihood": "gaussian", "decoder_mean": "tanh"}, "decoder_mean must be one of"),
        ({"likelihood": "gaussian", "decoder_logvar": 0.0, "decoder_variance_floor": 0.1},
         "at most one"),
        ({"likelihood": "gaussian", "decoder_logvar_bounds": (1.0, -1.0)}, "low < high"),
        ({"likelihood": "gaussian", "decoder_logvar": float("nan")}, "must be finite"),
        ({"likelihood": "gaussian", "decoder_logvar": "0.1"}, "must be a number"),
    ],
)
def test_bad_decoder_variance_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VAEConfig(**kwargs)
