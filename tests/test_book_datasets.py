"""vaelib.book.datasets: the fixed diabetes split of chapters 1 and 2."""

import pytest
import torch
from sklearn.datasets import load_diabetes

from vaelib.book.datasets import diabetes_split


def test_split_is_a_partition_with_the_book_s_permutation():
    split = diabetes_split()
    assert split.x_train.shape == (342, 10) and split.x_test.shape == (100, 10)
    data = load_diabetes()
    order = torch.randperm(442, generator=torch.Generator().manual_seed(0))
    assert torch.equal(split.x_test, torch.tensor(data.data)[order[:100]])
    assert torch.equal(split.t_train, torch.tensor(data.target)[order[100:]])


def test_columns_and_standardisation_use_training_statistics_only():
    split = diabetes_split(["age", "bmi"], standardize=True)
    assert split.x_train.shape == (342, 2)
    assert torch.allclose(split.x_train.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(split.x_train.std(0), torch.ones(2, dtype=torch.float64))
    assert abs(split.t_train.mean()) < 1e-12 and abs(split.t_test.mean()) > 1e-3
    with pytest.raises(ValueError, match="unknown diabetes columns"):
        diabetes_split(["height"])
