r"""Monte-Carlo checks for the chapters: a mean with its standard error, and a distance in
standard errors.

A Monte-Carlo estimate :math:`\bar f = \frac1S \sum_s f_s` of an expectation has standard error
:math:`\hat s / \sqrt S`, where :math:`\hat s` is the sample standard deviation of the
:math:`f_s`. By the central limit theorem a correct formula lies within four standard errors of
the estimate except with probability about :math:`6 \times 10^{-5}`; a slip (a sign, a factor of
two, :math:`\sigma` for :math:`\sigma^2`) usually puts it dozens or thousands of standard errors
away. The chapters assert ``standard_errors(samples, exact) < 4``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

__all__ = ["MeanSE", "mean_se", "standard_errors", "variance_se"]


class MeanSE(NamedTuple):
    """A Monte-Carlo mean and its standard error."""

    mean: float
    se: float


def _flat(values: Any) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).detach().flatten()
    if len(t) < 2:
        raise ValueError("a standard error needs at least two values.")
    return t


def mean_se(values: Any) -> MeanSE:
    r"""The mean of ``values`` (any shape: all entries are samples) and its standard error
    :math:`\hat s / \sqrt S`."""
    t = _flat(values)
    return MeanSE(t.mean().item(), t.std().item() / math.sqrt(len(t)))


def standard_errors(values: Any, exact: float) -> float:
    """How many standard errors the mean of ``values`` lies from ``exact``."""
    mean, se = mean_se(values)
    if se == 0:
        return 0.0 if mean == float(exact) else math.inf
    return abs(mean - float(exact)) / se


def variance_se(values: Any) -> MeanSE:
    r"""The sample variance of ``values`` and its standard error, from the fourth central moment:
    :math:`\sqrt{(m_4 - s^4) / S}` (no Gaussian assumption; for Gaussian samples it is
    :math:`s^2\sqrt{2/S}`)."""
    t = _flat(values)
    centred = t - t.mean()
    var = centred.pow(2).mean().item()
    m4 = centred.pow(4).mean().item()
    return MeanSE(t.var().item(), math.sqrt(max(m4 - var**2, 0.0) / len(t)))
