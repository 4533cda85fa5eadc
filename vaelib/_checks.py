"""Input validation shared by vaelib: every error says what is wrong and what to do."""

from __future__ import annotations

import torch


def check_data(
    x: torch.Tensor,
    x_dim: int | None = None,
    *,
    name: str = "x",
    unit_interval: bool = False,
) -> None:
    """Raise a clear error unless ``x`` is a finite float tensor of shape ``(..., x_dim)``.

    Args:
        x: data, shape ``(B, D)`` (or ``(..., D)``).
        x_dim: expected size ``D`` of the last dimension, or ``None`` to skip that check.
        name: how the tensor is called in the error message.
        unit_interval: also require ``0 <= x <= 1`` (data for a Bernoulli decoder).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(x).__name__}; "
            f"convert it with torch.as_tensor({name}, dtype=torch.float32)."
        )
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
            f"scale integer pixels with {name}.float() / 255."
        )
    if x.dim() < 1 or (x_dim is not None and x.shape[-1] != x_dim):
        raise ValueError(
            f"{name} must have shape (batch, {x_dim if x_dim is not None else 'D'}), "
            f"got {tuple(x.shape)}; flatten images with {name}.reshape(len({name}), -1) "
            "and check that the model's x_dim matches the data."
        )
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); clean or drop those examples "
            "before passing them to vaelib."
        )
    if unit_interval and x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{name} must lie in [0, 1] for a Bernoulli decoder, got values in "
            f"[{float(x.min()):.3g}, {float(x.max()):.3g}]; divide pixels by 255, or use "
            'likelihood="gaussian" for unbounded data.'
        )


def check_positive_int(value: int, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
