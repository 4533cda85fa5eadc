r"""Small tabular data for the warm-up chapters: the diabetes data with one fixed split.

The *diabetes* data (Efron et al. 2004, shipped with scikit-learn): for 442 patients, ten
baseline measurements (age, sex, body-mass index, blood pressure and six blood-serum values) and,
as the target, a measure of disease progression one year later. Scikit-learn centres every
measurement over the 442 patients and scales it so that its squares sum to 1 (a standard
deviation of :math:`1/\sqrt{442} \approx 0.048`); the targets are not scaled. Chapters 1 and 2
use the same 100 test patients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

__all__ = ["DIABETES_FEATURES", "DiabetesSplit", "diabetes_split"]

DIABETES_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


class DiabetesSplit(NamedTuple):
    """Train and test inputs ``(N, D)`` and targets ``(N,)``, float64; unpacks as
    ``x_train, t_train, x_test, t_test``."""

    x_train: torch.Tensor
    t_train: torch.Tensor
    x_test: torch.Tensor
    t_test: torch.Tensor


def diabetes_split(
    columns: Sequence[str] | None = None,
    num_test: int = 100,
    seed: int = 0,
    standardize: bool = False,
) -> DiabetesSplit:
    """The diabetes data split at random (fixed ``seed``) into ``num_test`` test patients and the
    rest for training.

    Args:
        columns: names from ``DIABETES_FEATURES`` to keep (default: all ten).
        num_test: patients held out.
        seed: seed of the permutation (0: the split of chapters 1 and 2).
        standardize: rescale inputs and targets to mean 0 and standard deviation 1 with the
            *training* patients' statistics (the test patients are scaled the same way).
    """
    from sklearn.datasets import load_diabetes  # only the chapters need scikit-learn

    data = load_diabetes()
    names = list(DIABETES_FEATURES)
    chosen = list(columns) if columns is not None else names
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise ValueError(f"unknown diabetes columns {unknown}; choose from {names}.")
    x = torch.tensor(data.data[:, [names.index(c) for c in chosen]])
    t = torch.tensor(data.target)
    if not 0 < num_test < len(x):
        raise ValueError(f"num_test must lie between 1 and {len(x) - 1}, got {num_test}.")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    test, train = order[:num_test], order[num_test:]
    x_train, t_train, x_test, t_test = x[train], t[train], x[test], t[test]
    if standardize:
        x_mean, x_std = x_train.mean(0), x_train.std(0)
        t_mean, t_std = t_train.mean(), t_train.std()
        x_train, x_test = (x_train - x_mean) / x_std, (x_test - x_mean) / x_std
        t_train, t_test = (t_train - t_mean) / t_std, (t_test - t_mean) / t_std
    return DiabetesSplit(x_train, t_train, x_test, t_test)
