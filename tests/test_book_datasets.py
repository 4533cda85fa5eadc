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


def test_unstandardised_inputs_keep_scikit_learn_s_scaling():
    """Chapter 1 states it: every column centred, its squares summing to 1 over all patients."""
    split = diabetes_split()
    x = torch.cat([split.x_train, split.x_test])
    assert torch.allclose(x.mean(0), torch.zeros(10, dtype=torch.float64), atol=1e-12)
    assert torch.allclose((x**2).sum(0), torch.ones(10, dtype=torch.float64))
    assert split.t_train.min() > 0  # targets stay in their units


def test_other_seeds_and_sizes_give_other_partitions():
    a, b = diabetes_split(seed=0), diabetes_split(seed=1, num_test=50)
    assert b.x_test.shape == (50, 10) and b.x_train.shape == (392, 10)
    assert not torch.equal(a.x_test[:50], b.x_test)
    with pytest.raises(ValueError, match="num_test"):
        diabetes_split(num_test=442)
