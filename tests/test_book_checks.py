"""vaelib.book.checks and vaelib.book.report: standard errors and numbers for the prose."""

import math

import numpy as np
import pytest
import torch

from vaelib.book.checks import mean_se, standard_errors, variance_se
from vaelib.book.report import Text, number, percent


def test_mean_se_matches_numpy():
    values = np.random.default_rng(0).normal(2.0, 3.0, size=(40, 50))
    mean, se = mean_se(values)
    assert mean == pytest.approx(values.mean())
    assert se == pytest.approx(values.std(ddof=1) / math.sqrt(values.size))
    with pytest.raises(ValueError, match="at least two"):
        mean_se([1.0])


def test_standard_errors_flag_a_factor_of_two_but_not_noise():
    rng = torch.Generator().manual_seed(0)
    z = torch.randn(200_000, generator=rng, dtype=torch.float64) * 1.5 + 0.3
    assert standard_errors(z, 0.3) < 4
    assert standard_errors(z**2, 1.5**2 + 0.3**2) < 4  # E[z^2] = sigma^2 + mu^2
    assert standard_errors(z**2, 1.5 + 0.3**2) > 100  # sigma for sigma^2
    assert standard_errors([1.0, 1.0], 1.0) == 0.0 and standard_errors([1.0, 1.0], 2.0) == math.inf


def test_variance_se_is_the_gaussian_formula_for_gaussian_samples():
    z = torch.randn(400_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    var, se = variance_se(2.0 * z)
    assert abs(var - 4.0) < 4 * se
    assert se == pytest.approx(4.0 * math.sqrt(2 / len(z)), rel=0.02)


def test_numbers_read_as_plain_text():
    text = number(-166.72)
    assert isinstance(text, Text) and repr(text) == "−166.7" and str(text) == "−166.7"
    assert number(-0.04, ".1f") == "0.0" and number(1234.5, ",.0f", "nats") == "1,234 nats"
    assert percent(0.904, 1) == "90.4%"
    assert number(50, "d") == "50" and number(4000, ",d") == "4,000" and number(-3, "d") == "−3"
    with pytest.raises(ValueError, match="whole number"):
        number(2.5, "d")
    from IPython.lib.pretty import pretty

    assert pretty(text) == "−166.7"  # what Jupyter and the book build show
    with pytest.raises(ValueError, match="finite"):
        number(float("nan"))
