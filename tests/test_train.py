"""Tests of vaelib.train: fit learns, is reproducible bit for bit, rejects bad input with
clear messages; evaluate equals a direct computation of the ELBO."""

from __future__ import annotations

import math
import os
import signal
import warnings

import numpy as np
import pytest
import torch

import vaelib
from vaelib.data import load_mnist
from vaelib.diagnostics import CollapseWarning
from vaelib.distributions import kl_normal_standard_per_dim
from vaelib.models import VAE, Autoencoder, VAEConfig
from vaelib.objectives import elbo, iwae_bound
from vaelib.train import (
    ACTIVE_UNITS_EXAMPLES,
    History,
    TrainingDiverged,
    _active_units_rows,
    _collapse_message,
    _StepLoss,
    evaluate,
    fit,
    linear_warmup,
)

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
    assert model.check_inputs is True  # the per-batch check, skipped in fit, is back
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
        "epoch", "samples", "train_elbo", "train_log_px", "train_kl",
        "test_elbo", "test_log_px", "test_kl", "active_units", "seconds",
    ]
    assert history["epoch"] == [1.0, 2.0, 3.0] and history.epoch == history["epoch"]
    assert history["samples"] == [100.0, 200.0, 300.0]  # training examples processed
    assert history.stopped is None and history.best_epoch is None
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
    """Regression: fit's seed promise must hold for two FRESH models built with one config seed
    (the global RNG state is different before each construction)."""
    x, _, x_test = digits
    runs = []
    for garbage in range(2):
        torch.rand(garbage + 5)  # move the global RNG: the config seed must not depend on it
        model = VAE(VAEConfig(x_dim=784, hidden_dim=64, z_dim=4, seed=1))
        history = fit(model, x[:300], x_test[:100], epochs=2, batch_size=32, seed=7,
                      progress="none")
        runs.append((model, history))
    (model_a, hist_a), (model_b, hist_b) = runs
    for key in hist_a.keys():
        if key != "seconds":
            assert hist_a[key] == hist_b[key], key
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(p, q)
    model_c = VAE(VAEConfig(x_dim=784, hidden_dim=64, z_dim=4, seed=1))
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
    assert history.keys() == ["epoch", "samples", "train_loss", "test_loss", "seconds"]
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
    (lambda x: torch.where(x > 0.99, float("nan"), x), ValueError, "NaN"),
    (lambda x: x * 255, ValueError, r"\[0, 1\] for a Bernoulli decoder"),
    (lambda x: x[:0], ValueError, "non-empty"),
    (lambda x: x.reshape(10, 10, 784), ValueError, r"shape \(batch, 784\)"),
    (lambda x: x.tolist(), TypeError, "torch.Tensor or a numpy array"),
    (lambda x: (x.numpy() * 255).astype("uint8"), TypeError, "integer array"),
    # binary data as booleans: the advice converts, it does not divide by 255
    (lambda x: x.numpy() > 0.5, TypeError, r"boolean array; convert binary data with "
     r"\w+\.astype\('float32'\)"),
    (lambda x: x > 0.5, TypeError, r"torch\.bool; convert binary data with \w+\.float\(\)"),
    (lambda x: [x, x], TypeError, r"pair of data and labels is passed as a tuple"),
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
    ({"lr": -1.0}, ValueError, "lr must be positive"),
    ({"lr": float("nan")}, ValueError, "lr must be finite"),
    ({"lr": "0.1"}, ValueError, "lr must be a number"),
    ({"objective": "vi"}, ValueError, "unknown objective"),
    ({"kl_weight": -1.0}, ValueError, "kl_weight must be >= 0"),
    ({"free_bits": -0.5}, ValueError, "free_bits must be >= 0"),
    ({"early_stopping": 3}, ValueError, "early_stopping watches the test ELBO"),
    ({"callbacks": [3]}, TypeError, "callable"),
    ({"progress": "fancy"}, ValueError, "progress must be"),
    # options another objective would silently ignore are refused
    ({"objective": "iwae", "num_samples": 2, "free_bits": 0.5}, ValueError,
     'free_bits applies to objective="elbo" only'),
    ({"objective": "wake-sleep", "free_bits": 0.5}, ValueError,
     'free_bits applies to objective="elbo" only'),
    ({"objective": "wake-sleep", "kl_weight": 2.0}, ValueError, "wake-sleep has no KL term"),
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
    """An unbounded Gaussian decoder accepts data outside [0, 1]; the Bernoulli one and the
    sigmoid-mean Gaussian one do not, and each says what to use instead."""
    x = digits[0][:50] * 2 - 1
    gaussian = _model(config=VAEConfig(x_dim=784, hidden_dim=32, z_dim=2, likelihood="gaussian",
                                       decoder_mean="identity"))
    assert len(fit(gaussian, x, epochs=1, progress="none")) == 1
    linear_ae = Autoencoder(784, 2, hidden_dims=(8,), output="linear")
    assert len(fit(linear_ae, x, epochs=1, progress="none")) == 1
    with pytest.raises(ValueError, match="Bernoulli.*decoder_mean=.identity"):
        fit(_model(), x, epochs=1, progress="none")
    sigmoid_mean = _model(config=VAEConfig(x_dim=784, hidden_dim=32, z_dim=2,
                                           likelihood="gaussian"))
    with pytest.raises(ValueError, match="Gaussian decoder with decoder_mean=.sigmoid"):
        fit(sigmoid_mean, x, epochs=1, progress="none")


class _Exploding(VAE):
    """A VAE whose likelihood turns into `value` once `after` calls have been made."""

    def __init__(self, value: float, after: int) -> None:
        super().__init__(VAEConfig(x_dim=784, hidden_dim=16, z_dim=2, seed=0))
        self.value, self.after, self.calls = value, after, 0

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = super().log_px_given_z(x, z)
        return out + self.value if self.calls > self.after else out


@pytest.mark.parametrize("value", [float("nan"), -1e33])
def test_divergence_rolls_back_and_keeps_the_history(digits, value) -> None:
    """Regression: a finite but exploding ELBO (-1e33) passed silently; after a NaN the model
    kept NaN weights and the finished epochs' history was lost."""
    x = digits[0][:100]  # 2 steps per epoch; evaluation adds calls, so count them
    reference = _Exploding(0.0, 10**9)
    fit(reference, x, epochs=1, batch_size=50, progress="none")  # one good epoch
    model = _Exploding(value, after=reference.calls)  # explode after the first epoch
    with pytest.raises(TrainingDiverged, match="rolled back to the end of epoch 1") as info:
        fit(model, x, epochs=3, batch_size=50, progress="none")
    assert isinstance(info.value, FloatingPointError)
    assert len(info.value.history) == 1 and info.value.epoch == 2
    # the failed epoch's mean training ELBO, unrounded: NaN, or about -1e33
    stopped = info.value.elbo
    assert isinstance(stopped, float)
    assert math.isnan(stopped) if math.isnan(value) else -1e34 < stopped < -1e32
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.equal(p, q)  # the parameters after epoch 1, no NaN


def test_interrupt_keeps_the_finished_epochs(digits, capsys) -> None:
    """Regression: Ctrl-C lost the history. It returns the finished epochs and rolls the model
    back to the end of the last one."""
    x = digits[0][:100]
    reference = _Exploding(0.0, 10**9)
    fit(reference, x, epochs=2, batch_size=50, progress="none")

    class Interrupted(_Exploding):
        def log_px_given_z(self, x, z):
            if self.calls == self.after:
                raise KeyboardInterrupt
            return super().log_px_given_z(x, z)

    model = Interrupted(0.0, after=reference.calls + 1)  # in the middle of epoch 3
    history = fit(model, x, epochs=5, batch_size=50, progress="log")
    assert len(history) == 2 and history.stopped == "interrupted"
    assert "interrupted" in capsys.readouterr().out
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.equal(p, q)


@pytest.mark.skipif(not __import__("os").environ.get("VAELIB_DATA_MIRROR"),
                    reason="needs the Frey Face file (VAELIB_DATA_MIRROR)")
def test_frey_face_at_lr_0_1_diverges_loudly() -> None:
    """The case found by a user: Frey Face, learned variance, Adam at lr 0.1."""
    faces = vaelib.load_frey_faces("train")
    model = VAE(VAEConfig(x_dim=560, hidden_dim=200, z_dim=2, likelihood="gaussian", seed=0))
    with pytest.raises(TrainingDiverged) as info:
        fit(model, faces, epochs=30, lr=0.1, progress="none")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert len(info.value.history) == info.value.epoch - 1


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


# --------------------------------------------------------------------------------------------
# Training options


def _step(model, x, seed=0, **options):
    """The loss of one step of each option, with the noise fixed by `seed`."""
    defaults = {"objective": "elbo", "num_samples": 1, "kl_weight": lambda step: 1.0,
                "free_bits": 0.0, "weight_prior": None, "n_train": len(x)}
    step = _StepLoss(model, **{**defaults, **options})
    torch.manual_seed(seed)
    return step(x, 0)


def test_kl_weight_scales_the_kl_term_of_the_loss(digits) -> None:
    x = digits[0][:64]
    model = _model()
    loss, terms, beta = _step(model, x, kl_weight=lambda step: 0.25)
    torch.manual_seed(0)
    reference = elbo(model, x)
    assert beta == 0.25
    assert torch.allclose(loss, -(reference.log_px - 0.25 * reference.kl).mean())
    assert torch.allclose(terms[0], reference.elbo)  # reported: the unweighted ELBO


def test_free_bits_floor_each_dimension_s_batch_mean_kl(digits) -> None:
    x = digits[0][:64]
    model = _model()
    loss, terms, _ = _step(model, x, free_bits=0.5)
    mu, logvar = model.encode(x)
    kl_dims = kl_normal_standard_per_dim(mu, logvar).mean(0)  # (J,)
    assert (kl_dims < 0.5).any() and (kl_dims > 0.5).any() or (kl_dims < 0.5).all()
    expected = -terms[1].mean() + torch.clamp(kl_dims, min=0.5).sum()
    assert torch.allclose(loss, expected)
    assert not torch.allclose(loss, -terms[0].mean())  # the floor is active here


def test_iwae_objective_is_the_importance_weighted_bound(digits) -> None:
    x = digits[0][:32]
    model = _model()
    loss, terms, _ = _step(model, x, objective="iwae", num_samples=5)
    torch.manual_seed(0)
    bound = iwae_bound(model, x, 5)
    assert torch.allclose(loss, -bound.mean(), rtol=1e-5)
    assert torch.allclose(terms[3], bound, rtol=1e-5)
    assert (terms[3] >= terms[0] - 1e-4).all()  # L_K >= the ELBO with the same samples


def test_weight_prior_adds_a_gaussian_prior_on_the_weights(digits) -> None:
    x = digits[0][:32].double()
    model = _model().double()  # float64: the difference of two losses near 550 is exact enough
    plain, _, _ = _step(model, x)
    with_prior, _, _ = _step(model, x, weight_prior=1.0, n_train=4000)
    squares = sum(p.pow(2).sum() for p in model.parameters())
    assert torch.allclose(with_prior - plain, 0.5 * squares / 4000)


def test_linear_warmup_schedule_and_history(digits) -> None:
    schedule = linear_warmup(10)
    assert [schedule(t) for t in (0, 5, 10, 20)] == [0.0, 0.5, 1.0, 1.0]
    x = digits[0][:100]
    history = fit(_model(), x, epochs=3, batch_size=25, kl_weight=linear_warmup(8),
                  progress="none")
    # 4 steps per epoch: the weight of the last step of epochs 1, 2, 3 (steps 3, 7, 11)
    assert history["kl_weight"] == [3 / 8, 7 / 8, 1.0]
    with pytest.raises(ValueError, match="steps must be an integer"):
        linear_warmup(0)


def test_free_bits_and_warmup_keep_units_active_where_a_large_kl_weight_collapses(
    digits,
) -> None:
    x, _, x_test = digits
    kwargs = {"epochs": 8, "batch_size": 50, "lr": 3e-3, "progress": "none"}
    collapsed_model = _model()
    with pytest.warns(CollapseWarning, match="posterior collapse"):
        collapsed = fit(collapsed_model, x, kl_weight=50.0, **kwargs)
    assert collapsed["active_units"][-1] == 0
    assert (vaelib.kl_per_dimension(collapsed_model, x_test) < 0.05).all()
    floored_model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        floored = fit(floored_model, x, kl_weight=50.0, free_bits=1.0, **kwargs)
    assert floored["active_units"][-1] == 4
    assert (vaelib.kl_per_dimension(floored_model, x_test) > 0.2).all()


def test_wake_sleep_objective_trains_both_networks(digits) -> None:
    pytest.importorskip("vaelib.baselines")
    x, _, x_test = digits
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    history = fit(model, x, x_test, epochs=3, batch_size=50, lr=3e-3, objective="wake-sleep",
                  progress="none")
    after = list(model.parameters())
    assert not torch.equal(before[0], after[0])  # encoder moved (sleep phase)
    assert not torch.equal(before[-1], after[-1])  # decoder moved (wake phase)
    assert history["test_elbo"][-1] > history["test_elbo"][0]


def test_early_stopping_restores_the_best_epoch(digits) -> None:
    x, _, x_test = digits
    model = _model()
    history = fit(model, x[:60], x_test[:200], epochs=40, batch_size=20, lr=1e-2,
                  early_stopping=2, progress="none")
    best = int(np.argmax(history["test_elbo"])) + 1
    assert history.best_epoch == best
    assert history.stopped == "early_stopping" or len(history) == 40
    if history.stopped:
        assert len(history) == best + 2
    assert evaluate(model, x_test[:200])["elbo"] == pytest.approx(history["test_elbo"][best - 1])


def test_callbacks_see_the_history_and_can_stop(digits) -> None:
    seen = []

    def stop_after_two(history, model):
        seen.append((len(history), type(model).__name__))
        return len(history) == 2

    history = fit(_model(), digits[0][:100], epochs=5, callbacks=[stop_after_two],
                  progress="none")
    assert len(history) == 2 and history.stopped == "callback"
    assert seen == [(1, "VAE"), (2, "VAE")]


def test_checkpoint_resumes_bit_for_bit(digits, tmp_path) -> None:
    x, _, x_test = digits
    config = VAEConfig(x_dim=784, hidden_dim=32, z_dim=3, seed=0)
    straight = VAE(config)
    full = fit(straight, x[:200], x_test[:50], epochs=4, batch_size=32, progress="none")
    path = tmp_path / "run.pt"
    first = VAE(config)
    fit(first, x[:200], x_test[:50], epochs=2, batch_size=32, checkpoint=path, progress="none")
    assert path.exists() and not list(tmp_path.glob(".run.pt.*"))  # no temporary files left
    resumed = VAE(config)  # a fresh process would build the model again
    history = fit(resumed, x[:200], x_test[:50], epochs=4, batch_size=32, checkpoint=path,
                  progress="none")
    for key in full.keys():
        if key != "seconds":
            assert history[key] == full[key], key
    for p, q in zip(resumed.parameters(), straight.parameters()):
        assert torch.equal(p, q)
    other = VAE(VAEConfig(x_dim=784, hidden_dim=16, z_dim=3))
    with pytest.raises(ValueError, match="different model configuration"):
        fit(other, x[:200], epochs=5, checkpoint=path, progress="none")


def test_checkpoint_folder_is_checked_before_training(digits, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fit(_model(), digits[0][:50], epochs=1, checkpoint=tmp_path / "missing" / "run.pt",
            progress="none")


def test_numpy_data_and_numpy_numbers_are_accepted(digits) -> None:
    """Regression: numpy arrays and numpy scalars were rejected with self-contradicting errors."""
    x = digits[0][:100].numpy().astype(np.float64)  # float64 arrays are converted
    model = VAE(VAEConfig(x_dim=np.int64(784), hidden_dim=np.int64(16), z_dim=2, seed=0))
    history = fit(model, x, x[:50], epochs=np.int64(2), batch_size=np.int32(50),
                  lr=np.float32(1e-3), progress="none")
    assert len(history) == 2
    assert set(evaluate(model, x)) == {"elbo", "log_px", "kl"}
    assert vaelib.log_likelihood(model, x[:5], num_samples=10).shape == (5,)
    assert elbo(model, x[:5]).elbo.shape == (5,)


def test_functions_follow_the_model_s_device_and_dtype(digits) -> None:
    """Every public function works for a model on another device: shapes on `meta` (no
    values), and float64 models get float64 results from float32 or numpy data."""
    model = VAE(VAEConfig(x_dim=784, hidden_dim=16, z_dim=2, seed=0)).to("meta")
    x = digits[0][:8]  # on the CPU: moved to the model's device
    assert elbo(model, x).elbo.device.type == "meta"
    assert iwae_bound(model, x, 3).shape == (8,)
    assert vaelib.log_likelihood(model, x, num_samples=4).device.type == "meta"
    assert model.sample(3).device.type == "meta"
    double = VAE(VAEConfig(x_dim=784, hidden_dim=16, z_dim=2, seed=0)).double()
    assert elbo(double, x.numpy()).elbo.dtype == torch.float64
    if torch.cuda.is_available():  # pragma: no cover - no GPU on the CI machine
        cuda = VAE(VAEConfig(x_dim=784, hidden_dim=16, z_dim=2)).cuda()
        assert fit(cuda, x, epochs=1, progress="none")["train_elbo"]


# --------------------------------------------------------------------------------------------
# Hardening: messages for your own models, active units, warnings, dtypes, interrupts


class _RangedModel(torch.nn.Module):
    """A model of the protocol (not vaelib's) that declares its data range."""

    def __init__(self, input_range=(0, 1)) -> None:
        super().__init__()
        self.x_shape, self.z_dim, self.input_range = (784,), 2, input_range
        self.encoder = torch.nn.Linear(784, 4)
        self.decoder = torch.nn.Linear(2, 784)

    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def log_px_given_z(self, x, z):
        return vaelib.gaussian_log_prob(x, self.decoder(z), torch.zeros(()))


def test_a_range_error_speaks_of_the_model_it_is_about(digits) -> None:
    """Regression: a model of the protocol with input_range=(0, 1) was told about "a Bernoulli
    decoder" and likelihood="gaussian" (VAE options it does not have)."""
    x = digits[0][:50]
    with pytest.raises(ValueError) as info:
        fit(_RangedModel(), x * 255, epochs=1, progress="none")
    message = str(info.value)
    assert "input_range that _RangedModel declares" in message and "divide" in message
    assert "Bernoulli" not in message and "likelihood" not in message
    with pytest.raises(ValueError, match="input_range that _RangedModel declares"):
        evaluate(_RangedModel(), x * 255)
    # any declared range is checked, and data inside it pass
    assert len(fit(_RangedModel((-1, 1)), x * 2 - 1, epochs=1, progress="none")) == 1
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        fit(_RangedModel((-1, 1)), x * 3, epochs=1, progress="none")
    with pytest.raises(TypeError, match="input_range must be None or a pair"):
        fit(_RangedModel(0.5), x, epochs=1, progress="none")


def test_active_units_are_counted_on_a_seeded_random_subset(digits) -> None:
    """Regression: fit counted active units on the first 1,000 rows in the order given, so data
    sorted by class (load_mnist("all")) or with repeated rows in front gave a wrong count and
    a false CollapseWarning."""
    assert torch.equal(load_mnist("all").y[:ACTIVE_UNITS_EXAMPLES].unique(), torch.tensor([0, 1]))
    x = digits[0]
    padded = torch.cat([x[:1].expand(ACTIVE_UNITS_EXAMPLES, -1), x])  # one digit in front
    model = VAE(VAEConfig(x_dim=784, hidden_dim=64, z_dim=4, seed=0))
    with torch.no_grad():
        model.encoder[-1].weight.mul_(10)  # means that move with x: A_j about 100x larger
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)  # no false alarm
        history = fit(model, padded, epochs=1, lr=1e-9, seed=3, progress="none")
    rows = _active_units_rows(len(padded), seed=3)
    assert rows.shape == (ACTIVE_UNITS_EXAMPLES,) and len(rows.unique()) == len(rows)
    assert torch.equal(rows, _active_units_rows(len(padded), seed=3))  # deterministic
    assert not torch.equal(rows, _active_units_rows(len(padded), seed=4))
    expected = vaelib.active_units(model, padded[rows]).count
    assert history["active_units"] == [expected] and expected > 0
    assert _active_units_rows(ACTIVE_UNITS_EXAMPLES, seed=0) is None  # N <= 1000: all rows


def test_collapse_warning_is_honest_about_short_runs(digits) -> None:
    """Regression: an untrained or barely trained model (A_j ~ 0.003 < 0.01) got a flat
    "posterior collapse" verdict; real collapse (a large KL weight) must still warn."""
    x = digits[0]
    with pytest.warns(CollapseWarning) as barely:
        fit(_model(), x[:100], epochs=1, batch_size=100, progress="none")  # one step
    message = str(barely[0].message)
    assert "after 1 epoch " in message and "not started to use z" in message
    assert "linear_warmup" in message and "free_bits" in message
    with pytest.warns(CollapseWarning, match="posterior collapse") as collapsed:
        history = fit(_model(), x, epochs=15, batch_size=50, lr=3e-3, kl_weight=784.0,
                      progress="none")
    heavy = str(collapsed[0].message)
    assert history["active_units"][-1] == 0 and "after 15 epochs" in heavy
    assert "KL weight of 784 (> 1)" in heavy and "most likely posterior collapse" in heavy
    lost = _collapse_message(History({"active_units": [3.0, 1.0, 0.0]}))
    assert lost.startswith("posterior collapse:")
    assert "3 dimensions were active after epoch 1" in lost and "after 3 epochs" in lost


def test_a_large_positive_elbo_is_not_divergence(digits) -> None:
    """No upward divergence rule: a Gaussian decoder with a small fixed variance legitimately
    reaches a large positive ELBO (here ~ +2,000 nats from ~ -1e6)."""
    gen = torch.Generator().manual_seed(0)
    x = 0.5 + 0.01 * torch.randn(200, 784, generator=gen)
    model = VAE(VAEConfig(x_dim=784, hidden_dim=32, z_dim=2, likelihood="gaussian",
                          decoder_mean="identity", decoder_logvar=2 * np.log(0.01), seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        history = fit(model, x, epochs=40, batch_size=50, lr=1e-2, progress="none")
    assert history["train_elbo"][0] < -1e4 and history["train_elbo"][-1] > 1000
    doc = fit.__doc__
    assert "Only a *falling* ELBO" in doc and "decoder_variance_floor" in doc


def test_fit_documents_kl_weight_device_and_active_unit_rows() -> None:
    assert "last* optimizer step of the epoch" in History.__doc__
    assert "random subset drawn once" in History.__doc__
    assert "copied there whole, at once" in fit.__doc__
    assert "weight of each epoch's last step" in fit.__doc__


def test_empty_history_still_has_its_keys(digits) -> None:
    """Regression: after divergence in epoch 1, err.history["train_elbo"] raised KeyError."""
    x = digits[0][:100]
    with pytest.raises(TrainingDiverged) as info:
        fit(_Exploding(float("nan"), after=0), x, x[:20], epochs=3, batch_size=50,
            progress="none")
    history = info.value.history
    assert len(history) == 0 and info.value.epoch == 1
    assert history["train_elbo"] == [] and history["test_elbo"] == []
    assert history.keys() == ["epoch", "samples", "train_elbo", "train_log_px", "train_kl",
                              "test_elbo", "test_log_px", "test_kl", "active_units", "seconds"]
    with pytest.raises(ValueError, match="no epoch has finished"):
        history.last()
    with pytest.raises(KeyError, match="available"):
        history["nope"]

    class InterruptedAtOnce(_Exploding):  # Ctrl-C at the first training step
        def log_px_given_z(self, x, z):
            if self.calls == 1:  # call 0: the untrained model's ELBO, before training
                raise KeyboardInterrupt
            return super().log_px_given_z(x, z)

    interrupted = fit(InterruptedAtOnce(0.0, 0), x, epochs=2, kl_weight=0.5, progress="none")
    assert interrupted.stopped == "interrupted" and interrupted["train_elbo"] == []
    assert interrupted["kl_weight"] == []


def test_float64_and_float32_data_follow_the_model_s_dtype(digits) -> None:
    """Regression: a float64 numpy array was cast to float32, a float64 tensor rejected. Now
    both are converted to the model's dtype, and the result is that of float32 data."""
    x = digits[0][:200]
    config = VAEConfig(x_dim=784, hidden_dim=16, z_dim=2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        reference = fit(VAE(config), x, x[:50], epochs=2, progress="none")
        for data in (x.double(), x.double().numpy()):
            other = fit(VAE(config), data, data[:50], epochs=2, progress="none")
            for key in reference.keys():
                if key != "seconds":
                    assert other[key] == reference[key], key
        double = VAE(config).double()
        history = fit(double, x, epochs=1, progress="none")  # float32 data, float64 model
    assert len(history) == 1 and next(double.parameters()).dtype == torch.float64
    assert evaluate(double, x)["elbo"] < 0
    assert elbo(VAE(config), x.double()).elbo.dtype == torch.float32
    assert vaelib.active_units(VAE(config), x.double()).variances.shape == (2,)
    with pytest.raises(TypeError, match="floating-point"):
        fit(VAE(config), (x * 255).to(torch.int64), epochs=1, progress="none")


def test_a_model_without_parameters_keeps_the_data_dtype() -> None:
    """The linear-Gaussian model of chapter 4 has no parameters and computes in float64."""
    from vaelib.book.linear_gaussian import LinearGaussian

    gen = torch.Generator().manual_seed(0)
    lg = LinearGaussian(torch.randn(5, 2, generator=gen, dtype=torch.float64),
                        torch.zeros(5, dtype=torch.float64), sigma=0.5)

    class Encoder:  # q = N(0, I), float64
        def encode(self, x):
            zeros = torch.zeros(len(x), 2, dtype=torch.float64)
            return zeros, zeros

        def log_px_given_z(self, x, z):
            return lg.log_px_given_z(x, z)

    x = lg.sample(7, generator=gen)
    assert x.dtype == torch.float64
    assert elbo(Encoder(), x).elbo.dtype == torch.float64
    assert iwae_bound(Encoder(), x.numpy(), 3).dtype == torch.float64


def test_fit_needs_trainable_parameters(digits) -> None:
    model = _model()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(model, digits[0][:10], epochs=1, progress="none")


def _checkpoint_epochs(path) -> list[float]:
    return torch.load(path, weights_only=True)["history"]["epoch"]


def test_ctrl_c_during_a_checkpoint_write_keeps_history_and_file_in_step(digits, tmp_path,
                                                                         monkeypatch) -> None:
    """Regression: Ctrl-C while the checkpoint of epoch 2 was written left the file at epoch 1
    while fit reported 2 finished epochs. A started write is now finished first."""
    # Python's own handler, as in a terminal: a process started in the background by a
    # non-interactive shell (as CI may be) inherits SIGINT ignored, and then nothing interrupts
    previous_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    x = digits[0][:100]
    config = VAEConfig(x_dim=784, hidden_dim=16, z_dim=2, seed=0)
    straight = fit(VAE(config), x, epochs=3, batch_size=50, progress="none")
    real_save, calls = torch.save, []

    def save_with_ctrl_c(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 2:  # the checkpoint of epoch 2
            os.kill(os.getpid(), signal.SIGINT)
        return real_save(obj, f, *args, **kwargs)

    path = tmp_path / "run.pt"
    monkeypatch.setattr(torch, "save", save_with_ctrl_c)
    model = VAE(config)
    try:
        history = fit(model, x, epochs=3, batch_size=50, checkpoint=path, progress="none")
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    monkeypatch.setattr(torch, "save", real_save)
    assert history.stopped == "interrupted" and len(history) == 2
    assert _checkpoint_epochs(path) == history["epoch"] == [1.0, 2.0]
    resumed = fit(VAE(config), x, epochs=3, batch_size=50, checkpoint=path, progress="none")
    assert resumed["train_elbo"] == straight["train_elbo"]


def test_ctrl_c_in_a_callback_still_saves_the_reported_epoch(digits, tmp_path, capsys) -> None:
    """Ctrl-C after an epoch was recorded but before its checkpoint (in a callback): the
    checkpoint is brought up to the epoch that fit reports."""
    x = digits[0][:100]
    config = VAEConfig(x_dim=784, hidden_dim=16, z_dim=2, seed=0)
    straight_model = VAE(config)
    straight = fit(straight_model, x, epochs=3, batch_size=50, progress="none")

    def ctrl_c_in_epoch_2(history, model):
        if len(history) == 2:
            raise KeyboardInterrupt

    path = tmp_path / "run.pt"
    history = fit(VAE(config), x, epochs=3, batch_size=50, checkpoint=path,
                  callbacks=[ctrl_c_in_epoch_2], progress="log")
    assert history.stopped == "interrupted" and len(history) == 2
    assert _checkpoint_epochs(path) == [1.0, 2.0]
    assert f"{path} holds epoch 2" in capsys.readouterr().out
    resumed_model = VAE(config)
    resumed = fit(resumed_model, x, epochs=3, batch_size=50, checkpoint=path, progress="none")
    assert resumed["train_elbo"] == straight["train_elbo"]
    for p, q in zip(resumed_model.parameters(), straight_model.parameters()):
        assert torch.equal(p, q)


RESUME_CHANGES = [
    ({"lr": 1e-2}, "lr: 0.001 in the checkpoint, 0.01 now"),
    ({"batch_size": 25}, "batch_size: 50 in the checkpoint, 25 now"),
    ({"optimizer": "adagrad"}, "optimizer: 'adam' in the checkpoint, 'adagrad' now"),
    ({"objective": "iwae"}, "objective: 'elbo' in the checkpoint, 'iwae' now"),
    ({"num_samples": 2}, "num_samples: 1 in the checkpoint, 2 now"),
    ({"kl_weight": 0.5}, "kl_weight: 1 in the checkpoint, 0.5 now"),
    ({"kl_weight": linear_warmup(30)}, "kl_weight: 1 in the checkpoint, a schedule (0 at step 0"),
    ({"free_bits": 0.1}, "free_bits: 0.0 in the checkpoint, 0.1 now"),
    ({"weight_prior": 1.0}, "weight_prior: None in the checkpoint, 1.0 now"),
    ({"seed": 1}, "seed: 0 in the checkpoint, 1 now"),
    ({"n": 80}, "number N of training examples: 100 in the checkpoint, 80 now"),
]


@pytest.mark.parametrize(("change", "message"), RESUME_CHANGES)
def test_resuming_with_other_settings_is_refused(digits, tmp_path, change, message) -> None:
    """Regression: fit(checkpoint=...) resumed silently after the settings had changed."""
    from vaelib.checkpoints import CheckpointMismatch

    x = digits[0][:100]
    config = VAEConfig(x_dim=784, hidden_dim=16, z_dim=2, seed=0)
    settings = {"epochs": 1, "batch_size": 50, "progress": "none"}
    path = tmp_path / "run.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        fit(VAE(config), x, checkpoint=path, **settings)
        change = dict(change)
        data = x[: change.pop("n", len(x))]
        model = VAE(config)
        with pytest.raises(CheckpointMismatch) as info:
            fit(model, data, checkpoint=path, **{**settings, "epochs": 2, **change})
        text = str(info.value)
        assert isinstance(info.value, ValueError) and message in text, text
        assert f"delete {path}" in text and "another checkpoint path" in text
        fresh = VAE(config)
        for p, q in zip(model.parameters(), fresh.parameters()):
            assert torch.equal(p, q)  # refused before the model was touched
        # what may change: epochs, test data, early stopping, progress
        resumed = fit(VAE(config), x, x[:20], checkpoint=path, early_stopping=5,
                      **{**settings, "epochs": 2, "progress": "log"})
    assert resumed["epoch"] == [1.0, 2.0]


def test_resuming_checks_the_shape_of_the_examples(tmp_path) -> None:
    from vaelib.checkpoints import CheckpointMismatch

    class Flexible(torch.nn.Module):  # any D: the data shape is not fixed by the model
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def encode(self, x):
            h = self.scale * x.mean(-1, keepdim=True)
            return h, torch.zeros_like(h)

        def log_px_given_z(self, x, z):
            return vaelib.gaussian_log_prob(x, z.expand(*z.shape[:-1], x.shape[-1]),
                                            torch.zeros(()))

    path = tmp_path / "run.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        fit(Flexible(), torch.randn(40, 6), epochs=1, checkpoint=path, progress="none")
        with pytest.raises(CheckpointMismatch, match=r"one training example: \(6,\) in the "
                                                     r"checkpoint, \(5,\) now"):
            fit(Flexible(), torch.randn(40, 5), epochs=2, checkpoint=path, progress="none")
