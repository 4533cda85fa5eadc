"""vaelib.book.paper: the reproduction of the paper's Figs. 2 and 3 (chapter 9).

The long runs are `make reproduce` (and `make reproduce-smoke` in CI, the same code with tiny
budgets); these tests check the pieces on tiny data: where curves are evaluated, that the
recorded values are the bound of the model at that point, the learning-rate rule, the record's
file handling (an existing file kept, resume only with the same budget), and the paper's values
as transcribed.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from vaelib.book import paper
from vaelib.train import evaluate

# Tiny random data: no latent dimension needs to be active, so fit's collapse warning is expected.
pytestmark = pytest.mark.filterwarnings("ignore::vaelib.diagnostics.CollapseWarning")


def test_eval_epochs_are_log_spaced_and_end_at_the_budget() -> None:
    marks = paper._eval_epochs(num_train=100, samples=1e5, per_decade=4)  # 1000 epochs
    assert marks[0] == 1 and marks[-1] == 1000
    assert marks == sorted(set(marks))
    # about 4 per decade over 3 decades, plus the end
    assert 12 <= len(marks) <= 14
    ratios = [b / a for a, b in zip(marks[3:], marks[4:])]
    assert all(1.5 < r < 2.0 for r in ratios[:-1])  # 10**(1/4) = 1.78 apart once past rounding


def _tiny_data(n: int = 60, d: int = 784) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(n, d, generator=gen) < 0.3).float()
    return x, (torch.rand(20, d, generator=gen) < 0.3).float()


@pytest.mark.parametrize("method", ["aevb", "wake-sleep"])
def test_learning_curve_records_the_bound_of_the_model_at_the_end(method: str) -> None:
    x, x_test = _tiny_data()
    model = paper.paper_model("mnist", 2, hidden=8)
    curve = paper.learning_curve(model, x, x_test, method=method, lr=0.1, samples=600,
                                 per_decade=2)
    assert curve.samples[-1] == 600 and len(curve.samples) == len(curve.train) == len(curve.test)
    assert curve.samples == sorted(curve.samples)
    # the last point is the bound of the trained model (like for like, same seed)
    assert curve.test[-1] == pytest.approx(evaluate(curve.model, x_test, seed=0)["elbo"], abs=1e-4)
    assert curve.train[-1] == pytest.approx(evaluate(curve.model, x, seed=0)["elbo"], abs=1e-4)
    assert not curve.diverged and curve.samples_per_second > 0


def test_choose_learning_rate_takes_the_best_training_bound() -> None:
    x, x_test = _tiny_data()
    lr, scores = paper.choose_learning_rate("mnist", 2, "aevb", samples=300, data=(x, x_test),
                                            hidden=8)
    assert set(scores) == set(paper.LEARNING_RATES)
    assert scores[lr] == max(scores.values())
    # a larger Adagrad step makes more early progress on this tiny problem
    assert scores[0.1] > scores[0.01]


def test_unknown_method_is_refused() -> None:
    x, x_test = _tiny_data()
    with pytest.raises(ValueError, match="method must be one of"):
        paper.learning_curve(paper.paper_model("mnist", 2, hidden=8), x, x_test, method="mcem",
                             lr=0.1, samples=60)


def test_reproduce_keeps_an_existing_file(tmp_path) -> None:
    out = tmp_path / "record.json"
    out.write_text("{}")
    with pytest.raises(FileExistsError, match="--resume"):
        paper.reproduce(out, smoke=True)
    assert out.read_text() == "{}"


def test_resume_refuses_a_record_of_another_budget(tmp_path) -> None:
    out = tmp_path / "record.json"
    out.write_text(json.dumps({"budget": {"scale": 0.5}, "curves": []}))
    with pytest.raises(ValueError, match="different budget"):
        paper.reproduce(out, smoke=True, resume=True)


def test_load_record_indexes_the_curves(tmp_path) -> None:
    curve = paper.Curve("aevb", "frey", 5, 0.02, samples=[1.0, 2.0], train=[3.0, 4.0],
                        test=[5.0, 6.0])
    fig3 = paper.Curve("mcem", "mnist", 3, 0.02, samples=[1.0], train=[-150.0], test=[-160.0])
    record = {"complete": True, "curves": [{"kind": "fig2", "lr_scores": {}, **vars(curve)},
                                           {"kind": "fig3", "lr_scores": {}, **vars(fig3)}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(record))
    loaded = paper.load_record(path)
    assert loaded["fig2"][("frey", 5, "aevb")].final() == (4.0, 6.0)
    assert loaded["fig3"]["mcem"].test == [-160.0]
    assert "arithmetic" not in loaded  # a record from before the field: no stamp invented


def test_arithmetic_changes_with_the_cpu_capability_and_model(monkeypatch) -> None:
    here, capability = paper.arithmetic(), torch.backends.cpu.get_cpu_capability()
    assert here.startswith(f"torch {torch.__version__}, {capability}, ")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "NO_SIMD")
    without_avx = paper.arithmetic()
    assert without_avx != here and ", NO_SIMD, " in without_avx
    monkeypatch.setattr(paper, "_cpu_model", lambda: "Another CPU")
    assert paper.arithmetic() != without_avx and paper.arithmetic().endswith("Another CPU")



def test_paper_values_are_ordered_as_the_paper_reports() -> None:
    # Fig. 2: AEVB's bound is above wake-sleep's on every panel, train and test.
    for (dataset, z_dim), values in paper.PAPER_FIG2.items():
        for part in (0, 1):
            assert values["aevb"][part] > values["wake-sleep"][part], (dataset, z_dim)
    # MNIST test bound improves from 1e6 to 1e7 samples and on to the end of the run.
    for z_dim, values in paper.PAPER_FIG2_MNIST_AEVB_TEST.items():
        assert values[1e6] < values[1e7] < paper.PAPER_FIG2[("mnist", z_dim)]["aevb"][1]
    assert all(math.isfinite(v[1]) for runs in paper.PAPER_FIG3.values() for c in runs.values()
               for v in c)


def test_no_latent_log_likelihood_is_the_per_pixel_fit() -> None:
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    # Bernoulli with p = 0.5 per pixel: 2 log 0.5 per example, whatever the data
    assert paper.no_latent_log_likelihood(x, x, "bernoulli") == pytest.approx(2 * math.log(0.5))
    g = torch.randn(500, 3, generator=torch.Generator().manual_seed(0)) * 2.0 + 1.0
    sd = g.std(0, unbiased=False)
    # on its own training data the Gaussian fit scores -(1/2) log(2 pi e sd^2) per pixel
    expected = (-0.5 * torch.log(2 * math.pi * math.e * sd**2)).sum().item()
    assert paper.no_latent_log_likelihood(g, g) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="likelihood"):
        paper.no_latent_log_likelihood(g, g, "poisson")


def test_fig3_curve_refuses_an_unknown_chain_start() -> None:
    x, x_test = _tiny_data()
    with pytest.raises(ValueError, match="chains"):
        paper.fig3_curve("aevb", x, x_test, lr=0.01, samples=60, chains="prior")


@pytest.mark.parametrize("method", ["aevb", "mcem"])
def test_fig3_curve_with_encoder_start_times_training_alone(method: str) -> None:
    x, x_test = _tiny_data()
    curve = paper.fig3_curve(method, x, x_test, lr=0.01, samples=120, evaluations=2,
                             eval_points=10, chains="encoder",
                             hmc={"num_samples": 20, "num_burnin": 5, "density": "diagonal"})
    assert len(curve.test) == 2 and all(math.isfinite(v) for v in curve.train + curve.test)
    assert 0 < curve.train_seconds < curve.seconds
    assert (curve.burn_in_seconds > 0) == (method == "mcem")


def test_curve_at_interpolates_on_the_log_axis() -> None:
    curve = paper.Curve("aevb", "mnist", 3, 0.1, samples=[1e3, 1e5], train=[0.0, 2.0],
                        test=[-4.0, 0.0])
    assert curve.at(1e4, "train") == pytest.approx(1.0)  # halfway on the log axis, not at 5e4
    assert curve.at(1e4) == pytest.approx(-2.0)  # test by default
    assert curve.at(1e5, "test") == 0.0 and curve.at(1e7, "test") == 0.0  # clamped at the end
    with pytest.raises(ValueError, match="train"):
        curve.at(1e4, "val")


def test_threads_sets_and_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    with paper.threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), paper.threads(1):
        raise RuntimeError("restored even so")
    assert torch.get_num_threads() == before
