r"""Teaching helpers of chapter 10 ("When training goes wrong").

:class:`PriorEncoder` gives a decoder with an exact likelihood, such as
:class:`~vaelib.book.linear_gaussian.LinearGaussian`, a deliberately poor encoder,
:math:`q(z|x) = \mathcal N(0, I)` for every :math:`x`, so that it follows the model protocol of
:mod:`vaelib.objectives` and both gaps of :func:`vaelib.diagnostics.elbo_gaps` are visible.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["PriorEncoder"]


class PriorEncoder:
    r"""``model`` (with ``z_dim`` and ``log_px_given_z(x, z)``) with the encoder
    :math:`q(z|x) = \mathcal N(0, I)`: ``encode(x)`` returns zeros for :math:`\mu` and
    :math:`\log\sigma^2`, each ``(B, J)`` in ``dtype``; ``log_px_given_z`` is the model's."""

    def __init__(self, model: Any, dtype: torch.dtype = torch.float64) -> None:
        self.model, self.z_dim, self.dtype = model, model.z_dim, dtype

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(len(x), self.z_dim, dtype=self.dtype)
        return zeros, zeros.clone()

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.model.log_px_given_z(x, z)
