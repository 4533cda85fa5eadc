"""Input validation shared by vaelib: every error says what is wrong and what to do.

Numbers may be Python or numpy scalars (``np.int64(784)``, ``np.float32(1e-3)``); data may be
torch tensors or numpy arrays.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import Any

import torch


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an ``int`` (numpy integers too); ``ValueError`` unless it is ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be an integer >= {minimum}, got {value!r} of type "
            f"{type(value).__name__}."
        )
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}.")
    return value


def check_number(
    value: Any,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    hint: str = "",
) -> float:
    """``value`` as a finite ``float`` (numpy scalars and 0-d tensors too), else ``ValueError``."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{name} must be a number, got {value!r} of type {type(value).__name__}.{hint}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.{hint}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value}.{hint}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}.{hint}")
    return value


def _shape_text(shape: Sequence[int | str]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def check_data(
    x: torch.Tensor,
    x_dim: int | None = None,
    *,
    name: str = "x",
    unit_interval: bool = False,
    x_shape: tuple[int, ...] | None = None,
    why_unit: str = "this model",
    advice_unit: str = "or use a model that can describe such values",
) -> None:
    """Raise a clear error unless ``x`` is a finite float tensor of shape ``(..., *x_shape)``.

    Args:
        x: data, shape ``(B, D)`` (or ``(B, *x_shape)`` for image-shaped models).
        x_dim: expected size ``D`` of the last dimension, or ``None`` to skip that check.
        name: how the tensor is called in the error message.
        unit_interval: also require ``0 <= x <= 1``.
        x_shape: the shape of one example, checked instead of ``x_dim`` when given.
        why_unit, advice_unit: what needs [0, 1] and what to do instead (for the message;
            callers name their model, e.g. "a Bernoulli decoder").
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(x).__name__}; "
            f"convert it with torch.as_tensor({name}, dtype=torch.float32)."
        )
    if x.dtype == torch.bool:  # binary data: True/False are already the values 1/0
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype torch.bool; convert binary "
            f"data with {name}.float() (True -> 1.0, False -> 0.0)."
        )
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
            f"scale integer pixels with {name}.float() / 255."
        )
    if x_shape is not None:
        k = len(x_shape)
        if x.dim() != k + 1 or tuple(x.shape[-k:]) != tuple(x_shape):
            raise ValueError(
                f"{name} must have shape (batch, {', '.join(map(str, x_shape))}), got "
                f"{tuple(x.shape)}; reshape it with {name}.reshape(-1, "
                f"{', '.join(map(str, x_shape))}) and check that the model's input shape "
                "matches the data."
            )
    elif x.dim() < 1 or (x_dim is not None and x.shape[-1] != x_dim):
        raise ValueError(
            f"{name} must have shape (batch, {x_dim if x_dim is not None else 'D'}), "
            f"got {tuple(x.shape)}; flatten images with {name}.reshape(len({name}), -1) "
            "and check that the model's x_dim matches the data."
        )
    if x.device.type == "meta":  # shapes only: there are no values to check
        return
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); clean or drop those examples "
            "before passing them to vaelib."
        )
    if unit_interval and x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{name} must lie in [0, 1] for {why_unit}, got values in "
            f"[{float(x.min()):.3g}, {float(x.max()):.3g}]; rescale it to [0, 1] (e.g. divide "
            f"pixels by 255), {advice_unit}."
        )


def model_device_dtype(model: Any) -> tuple[torch.device, torch.dtype | None]:
    """Device and floating dtype of a model: those of its first floating-point parameter (or,
    for a module without parameters, buffer). ``(cpu, None)`` when it has neither (a plain
    object of the protocol, say): its dtype is unknown."""
    for attribute in ("parameters", "buffers"):
        tensors = getattr(model, attribute, None)
        if callable(tensors):
            for t in tensors():
                if torch.is_floating_point(t):
                    return t.device, t.dtype
    return torch.device("cpu"), None


def as_data(x: Any, model: Any = None, name: str = "x") -> torch.Tensor:
    """``x`` as a tensor on the model's device and in the model's floating dtype.

    One rule for tensors and numpy arrays: floating-point data are converted to the dtype of
    the model's parameters (a float64 array or tensor for a float32 model becomes float32, as
    ``x.to(torch.float32)`` would; float32 data for a float64 model become float64). For a
    model without parameters, whose dtype is unknown, the data keep their own floating dtype.
    Integer and boolean data are not converted: the caller's checks reject them with advice.
    """
    device, dtype = model_device_dtype(model)
    if isinstance(x, torch.Tensor):
        if dtype is not None and torch.is_floating_point(x) and x.dtype != dtype:
            return x.to(device=device, dtype=dtype)
        return x.to(device)
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        np = None
    if np is not None and isinstance(x, np.ndarray):
        arr = np.asarray(x)
        if arr.dtype.kind in "biu" and arr.dtype.kind != "b":
            raise TypeError(
                f"{name} is an integer array ({arr.dtype}); scale integer pixels to floats "
                f"first, e.g. {name}.astype('float32') / 255."
            )
        if arr.dtype.kind == "b":  # binary data: True/False are already the values 1/0
            raise TypeError(
                f"{name} is a boolean array; convert binary data with "
                f"{name}.astype('float32') (True -> 1.0, False -> 0.0)."
            )
        if arr.dtype.kind not in "f":
            raise TypeError(f"{name} must hold floating-point numbers, got dtype {arr.dtype}.")
        return torch.as_tensor(arr, dtype=dtype, device=device)
    pair = " (an (x, y) pair of data and labels is passed as a tuple)" if isinstance(x, list) \
        else ""
    raise TypeError(
        f"{name} must be a torch.Tensor or a numpy array, got {type(x).__name__}; "
        f"convert it with torch.as_tensor({name}, dtype=torch.float32){pair}."
    )
