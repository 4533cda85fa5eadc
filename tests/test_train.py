"""Tests of vaelib.train: fit learns, is reproducible bit for bit, rejects bad input with
clear messages; evaluate equals a direct computation of the ELBO."""

from __future__ import annotations

import pytest
import torch

from vaelib.data import load_mnist
from vaelib.models import VAE, Autoencoder, VAEConfig
from vaelib.objectives import elbo
from vaelib.train import History, evaluate, fit

SMALL = VAEConfig(x_dim=784, hidden_dim=64, z_dim=4)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """500 train digits (with labels) and 200 test digits of the embedded MNIST."""
    x, y = load_mnist("train")
    x_test, _ = load_mnist("test")
    return x[:500], y[:500], x_test[:200]


def _model(seed: int = 0, config: VAEConfig = SMALL) -> VAE:
    torch.manual_seed(seed)
    return VAE(config)


def test_fit_raises_the_elbo_and_keeps_the_callers_rng(digits) -> None:
    x, y, x_test = digits
    model = _model()
    before = evaluate(model, x_test)
    rng = torch.get_rng_state()
    history = fit(model, (x, y), x_test, epochs=4, batch_size=50, lr=3e-3, progress="none")
    assert torch.equal(torch.get_rng_state(), rng)  # fit forks the global RNG
    assert not model.training  # eval() after fitting
    assert "check_input" not in vars(model)  # the per-batch check, skipped in fit, is back
    with pytest.raises(ValueError, match="Bernoulli"):
        model.encode(x_test * 255)
    train = history["train_elbo"]
    assert all(b > a for a, b in zip(train, train[1:])), train
    assert history["test_elbo"][-1] > before["elbo"] + 100  # about -549 -> -225 nats
    assert history.last()["test_elbo"] == pytest.approx(evaluate(model, x_test)["elbo"])


def test_history_length_and_keys(digits) -> None:
    x, _, x_test = digits
    history = fit(_model(), x[:100], x_test[:50], epochs=3, batch_size=40, progress="none")
    assert isinstance(history, History) and len(history) == 3
    assert history.keys() == [
        "epoch", "train_elbo", "train_log_px", "train_kl",
        "test_elbo", "test_log_px", "test_kl", "seconds",
    ]
    assert history["epoch"] == [1.0, 2.0, 3.0] and history.epoch == history["epoch"]
    for key in history.keys():
        assert len(history[key]) == 3
    for tr, lp, kl in zip(history.train_elbo, history.train_log_px, history.train_kl):
        assert tr == pytest.approx(lp - kl)  # elbo = log_px - kl
        assert kl >= 0
    assert all(s > 0 for s in history.seconds)
    no_test = fit(_model(), x[:100], epochs=2, progress="none")
    assert "test_elbo" not in no_test and len(no_test) == 2
    assert no_test.to_dict()["train_kl"] == no_test.train_kl
    with pytest.raises(AttributeError, match="available"):
        _ = no_test.test_elbo


def test_same_seed_same_history_and_parameters_bit_for_bit(digits) -> None:
    x, _, x_test = digits
    runs = []
    for _ in range(2):
        model = _model(seed=1)
        history = fit(model, x[:300], x_test[:100], epochs=2, batch_size=32, seed=7,
                      progress="none")
        runs.append((model, history))
    (model_a, hist_a), (model_b, hist_b) = runs
    for key in hist_a.keys():
        if key != "seconds":
            assert hist_a[key] == hist_b[key], key
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(p, q)
    model_c = _model(seed=1)
    hist_c = fit(model_c, x[:300], epochs=2, batch_size=32, seed=8, progress="none")
    assert hist_c["train_elbo"] != hist_a["train_elbo"]  # the seed matters


def test_adagrad_and_num_samples(digits) -> None:
    x, _, _ = digits
    history = fit(_model(), x[:200], epochs=2, batch_size=50, lr=0.02, optimizer="adagrad",
                  num_samples=3, progress="none")
    assert history.train_elbo[1] > history.train_elbo[0]


def test_autoencoder_is_trained_on_its_loss(digits) -> None:
    x, _, x_test = digits
    torch.manual_seed(0)
    model = Autoencoder(784, 8, hidden_dims=(64,))
    history = fit(model, x, x_test, epochs=3, batch_size=50, lr=3e-3, progress="none")
    assert history.keys() == ["epoch", "train_loss", "test_loss", "seconds"]
    assert history.train_loss[-1] < history.train_loss[0]
    expected = model.loss(x_test).mean().item()
    assert evaluate(model, x_test) == {"loss": pytest.approx(expected, rel=1e-5)}


def test_evaluate_matches_a_manual_computation(digits) -> None:
    _, _, x_test = digits
    model = _model()
    model.train()
    result = evaluate(model, x_test, batch_size=1000, seed=3)
    assert model.training  # the caller's mode is restored
    torch.manual_seed(3)
    with torch.no_grad():
        terms = elbo(model, x_test)
    assert result == pytest.approx({k: v.mean().item() for k, v in terms._asdict().items()},
                                   rel=1e-6)
    assert evaluate(model, x_test, batch_size=1000, seed=3) == result  # deterministic
    # batching changes only the noise draw: the KL is exact and agrees to rounding
    batched = evaluate(model, x_test, batch_size=64, seed=3)
    assert batched["kl"] == pytest.approx(result["kl"], rel=1e-5)
    # many samples: the two Monte-Carlo estimates of E_q[log p(x|z)] agree closely
    a = evaluate(model, x_test, batch_size=64, num_samples=50, seed=1)["log_px"]
    b = evaluate(model, x_test, batch_size=1000, num_samples=50, seed=2)["log_px"]
    assert a == pytest.approx(b, rel=2e-3)


BAD_DATA = [
    (lambda x: x[:, :100], ValueError, r"shape \(batch, 784\)"),
    (lambda x: (x * 255).to(torch.uint8), TypeError, "floating-point"),
    (lambda x: x.double(), TypeError, "float64 but the model's parameters are torch.float32"),
    (lambda x: torch.where(x > 0.99, float("nan"), x), ValueError, "NaN"),
    (lambda x: x * 255, ValueError, r"\[0, 1\] for a Bernoulli decoder"),
    (lambda x: x[:0], ValueError, "non-empty"),
    (lambda x: x.reshape(10, 10, 784), ValueError, r"matrix \(N, 784\)"),
    (lambda x: x.numpy(), TypeError, "torch.Tensor"),
]


@pytest.mark.parametrize(("corrupt", "error", "message"), BAD_DATA)
def test_fit_rejects_bad_data(digits, corrupt, error, message) -> None:
    x = digits[0][:100]
    with pytest.raises(error, match=message):
        fit(_model(), corrupt(x), epochs=1, progress="none")
    with pytest.raises(error, match=message):
        fit(_model(), x, corrupt(x), epochs=1, progress="none")
    with pytest.raises(error, match=message):
        evaluate(_model(), corrupt(x))


BAD_SETTINGS = [
    ({"epochs": 0}, ValueError, "epochs must be an integer >= 1"),
    ({"epochs": 2.5}, ValueError, "epochs must be an integer >= 1"),
    ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
    ({"num_samples": 0}, ValueError, "num_samples must be an integer >= 1"),
    ({"optimizer": "sgd"}, ValueError, "unknown optimizer 'sgd'; choose one of"),
    ({"lr": -1.0}, ValueError, "lr must be a positive number"),
    ({"lr": float("nan")}, ValueError, "lr must be a positive number"),
    ({"progress": "fancy"}, ValueError, "progress must be"),
]


@pytest.mark.parametrize(("settings", "error", "message"), BAD_SETTINGS)
def test_fit_rejects_bad_settings(digits, settings, error, message) -> None:
    kwargs = {"epochs": 1, "progress": "none", **settings}
    with pytest.raises(error, match=message):
        fit(_model(), digits[0][:50], **kwargs)


def test_fit_rejects_models_it_cannot_train(digits) -> None:
    with pytest.raises(TypeError, match="encode"):
        fit(torch.nn.Linear(784, 2), digits[0][:10], epochs=1)


def test_the_data_is_checked_in_the_model_s_terms(digits) -> None:
    """A Gaussian decoder accepts data outside [0, 1]; the Bernoulli one does not."""
    x = digits[0][:50] * 2 - 1
    gaussian = _model(config=VAEConfig(x_dim=784, hidden_dim=32, z_dim=2, likelihood="gaussian"))
    assert len(fit(gaussian, x, epochs=1, progress="none")) == 1
    linear_ae = Autoencoder(784, 2, hidden_dims=(8,), output="linear")
    assert len(fit(linear_ae, x, epochs=1, progress="none")) == 1
    with pytest.raises(ValueError, match="Bernoulli"):
        fit(_model(), x, epochs=1, progress="none")


def test_divergence_is_reported(digits) -> None:
    class Broken(Autoencoder):
        def loss(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
            return super().loss(x, target) * float("nan")

    with pytest.raises(FloatingPointError, match="epoch 1; lower the learning rate"):
        fit(Broken(784, 2, hidden_dims=(8,)), digits[0][:50], epochs=2, progress="none")


def test_log_lines_about_ten_per_run(digits, capsys, monkeypatch) -> None:
    x = digits[0][:20]
    model = VAE(VAEConfig(x_dim=784, hidden_dim=8, z_dim=2))
    fit(model, x, epochs=30, batch_size=20, progress="log")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == [
        "1/30", "3/30", "6/30", "9/30", "12/30", "15/30", "18/30", "21/30", "24/30", "27/30",
        "30/30",
    ]
    assert "train elbo" in lines[0]
    monkeypatch.setenv("VAELIB_BOOK_BUILD", "1")
    fit(model, x, x, epochs=2, batch_size=20)  # progress=None: log lines in a book build
    out = capsys.readouterr()
    assert out.out.count("test elbo") == 2 and "fit" not in out.err
    fit(model, x, epochs=2, batch_size=20, progress="none")
    assert capsys.readouterr().out == ""


def test_progress_bar_runs(digits, capsys) -> None:
    model = VAE(VAEConfig(x_dim=784, hidden_dim=8, z_dim=2))
    history = fit(model, digits[0][:20], epochs=2, batch_size=20, progress=True)
    assert len(history) == 2
    assert "2/2" in capsys.readouterr().err  # tqdm writes to stderr
