"""Saving and loading models: one file with the configuration and the weights.

``vaelib.save(model, path)`` writes a :class:`~vaelib.models.VAE` or
:class:`~vaelib.models.ConvVAE` (and, optionally, its training history) to one file;
``vaelib.load(path)`` rebuilds the model. The file holds only tensors, numbers, strings, lists
and dicts, so it loads with ``torch.load(path, weights_only=True)`` — no pickled code runs. Every
file is written atomically: to a temporary file in the same folder, flushed to disk, then renamed
over the target, so an interrupted save never leaves a half-written file.

:func:`vaelib.train.fit` uses the same machinery for ``checkpoint=path`` (with the optimizer,
the random state and the run's settings added, so training resumes exactly, and only with the
settings it started with). Files get the permissions that ``open(path, "w")`` would give them:
a new file ``0o666`` minus the umask, a replaced file keeps its mode.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CheckpointMismatch", "load", "save"]

FORMAT = "vaelib-model"
VERSION = 1


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Raise a clear error now if ``path`` cannot be written (missing or read-only folder)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as {path / 'model.pt'}.")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"cannot write {path}: the folder {folder} does not exist; create it first "
            f"(e.g. os.makedirs({str(folder)!r}))."
        )
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", delete=True):
            pass
    except OSError as err:
        raise PermissionError(
            f"cannot write {path}: the folder {folder} is not writable ({err.strerror}); choose "
            "another folder."
        ) from err
    return path


class CheckpointMismatch(ValueError):
    """A ``fit`` checkpoint belongs to another model or to a run with other settings, so
    :func:`vaelib.train.fit` refuses to resume from it (the model is left untouched)."""


def _new_file(folder: Path, prefix: str) -> Path:
    """Create an empty, new file in ``folder`` with the permissions ``open(..., "w")`` gives a
    new file (``0o666`` minus the umask; ``tempfile.mkstemp`` would make it ``0o600``)."""
    for _ in range(100):
        candidate = folder / f"{prefix}{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - a clash of random names
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"could not create a temporary file in {folder}.")  # pragma: no cover


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it over ``path``.

    The file ends up with the permissions ``open(path, "w")`` would give it: those of the file
    it replaces, or ``0o666`` minus the process's umask for a new one.
    """
    path = check_writable(path)
    tmp = _new_file(path.parent, f".{path.name}.")
    try:
        if path.exists():  # open() keeps the mode of a file it overwrites
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _model_entry(model: nn.Module) -> dict[str, Any]:
    from vaelib.models import MODEL_CLASSES, config_to_dict

    name = type(model).__name__
    if name not in MODEL_CLASSES or not isinstance(model, MODEL_CLASSES[name][0]):
        raise TypeError(
            f"vaelib.save writes vaelib's VAE and ConvVAE (it rebuilds them from their config); "
            f"got {name}. For your own model, save its weights with "
            "torch.save(model.state_dict(), path) and rebuild it in code."
        )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    dtype = next((v.dtype for v in state.values() if torch.is_floating_point(v)), None)
    return {"class": name, "config": config_to_dict(model.config), "state_dict": state,
            "dtype": None if dtype is None else str(dtype).removeprefix("torch.")}


def _build(entry: dict[str, Any], device: Any = None) -> nn.Module:
    from vaelib.models import MODEL_CLASSES

    name = entry.get("class")
    if name not in MODEL_CLASSES:
        raise ValueError(f"unknown model class {name!r} in the file; known: {sorted(MODEL_CLASSES)}.")
    cls, config_cls = MODEL_CLASSES[name]
    config = dict(entry["config"])
    for key, value in config.items():
        if isinstance(value, list):
            config[key] = tuple(value)
    model = cls(config_cls(**config))
    dtype = entry.get("dtype")  # files of an older vaelib have none: the default dtype
    if dtype is not None:
        model.to(getattr(torch, dtype))  # a float64 model comes back as float64
    if isinstance(device, (str, torch.device)):
        model.to(device)
    model.load_state_dict(entry["state_dict"])
    return model


def save(model: nn.Module, path: str | os.PathLike[str], history: Any = None) -> Path:
    """Write ``model`` (its class, configuration and weights) to ``path``, atomically.

    The weights keep their dtype (a float64 model loads as float64); a history keeps its
    ``stopped`` and ``best_epoch``.

    Args:
        model: a :class:`~vaelib.models.VAE` or :class:`~vaelib.models.ConvVAE`.
        path: the file to write (its folder must exist); an existing file is replaced.
        history: optionally a :class:`~vaelib.train.History` to store with it.

    Returns:
        the path written.
    """
    payload = {"format": FORMAT, "version": VERSION, "model": _model_entry(model)}
    if history is not None:
        payload["history"] = history.to_dict()
        payload["stopped"] = history.stopped
        payload["best_epoch"] = history.best_epoch
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _read(path: str | os.PathLike[str], map_location: Any) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}; check the path (vaelib.save writes it).")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle errors, truncated files, other formats
        raise ValueError(
            f"{path} is not a vaelib model file that loads safely ({type(err).__name__}: {err})."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, TRAINING_FORMAT):
        raise ValueError(
            f"{path} was not written by vaelib.save or vaelib.fit(checkpoint=...); load plain "
            "state_dicts with torch.load and model.load_state_dict."
        )
    if payload.get("version", 0) > VERSION:
        raise ValueError(f"{path} was written by a newer vaelib (format version "
                         f"{payload['version']}); upgrade vaelib to read it.")
    return payload


def load(path: str | os.PathLike[str], map_location: Any = "cpu",
         with_history: bool = False) -> Any:
    """Rebuild the model saved by :func:`save` (or the model of a ``fit`` checkpoint).

    Args:
        path: the file.
        map_location: where to put the weights (as in ``torch.load``); a device (``"cpu"``,
            ``"cuda"``, a ``torch.device``) is also where the model is built, so
            ``load(path, map_location="cuda")`` gives a model on the GPU.
        with_history: also return the stored :class:`~vaelib.train.History` (or ``None``).

    Returns:
        the model in ``eval()`` mode, or ``(model, history)``.
    """
    from vaelib.train import History

    payload = _read(path, map_location)
    model = _build(payload["model"], map_location).eval()
    if not with_history:
        return model
    history = payload.get("history")
    return model, None if history is None else History.from_dict(
        history, payload.get("stopped"), payload.get("best_epoch"))


# --------------------------------------------------------------------------------------------
# fit(checkpoint=...): model, optimizer, history and random state

TRAINING_FORMAT = "vaelib-training"


def save_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                        history: Any, step: int, batch_order: torch.Generator | torch.Tensor,
                        rng: torch.Tensor, best: Any,
                        settings: dict[str, Any] | None = None) -> Path:
    """Write what :func:`vaelib.train.fit` needs to resume, atomically.

    ``batch_order`` is the generator of the batch order or its state; ``settings`` what the
    run must keep to be resumed (compared by :func:`load_training_state`).
    """
    if isinstance(batch_order, torch.Generator):
        batch_order = batch_order.get_state()
    try:
        entry = _model_entry(model)
    except TypeError:  # a model of the protocol: its weights only
        entry = {"class": None, "config": None,
                 "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    payload = {
        "format": TRAINING_FORMAT,
        "version": VERSION,
        "model": entry,
        "optimizer": optimizer.state_dict(),
        "history": history.to_dict(),
        "stopped": history.stopped,
        "step": step,
        "batch_order": batch_order,
        "rng": rng,
        "settings": settings,
        "best": None if best is None else {"elbo": best[0], "epoch": best[1],
                                           "model": best[2][0], "optimizer": best[2][1]},
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


_SETTING_NAMES = {
    "train_size": "the number N of training examples",
    "train_shape": "the shape of one training example",
}


def _show_setting(name: str, value: Any) -> str:
    if name == "kl_weight" and isinstance(value, list):
        from vaelib.train import _SCHEDULE_PROBES

        if len(set(value)) == 1:
            return f"{value[0]:g}"
        shown = ", ".join(f"{v:.3g} at step {t}" for t, v in zip(_SCHEDULE_PROBES, value)
                          if t in (0, 10, 100, 1000, 10_000))
        return f"a schedule ({shown}, ...)"
    if name == "train_shape" and isinstance(value, list):
        return str(tuple(value))
    return repr(value)


def _check_settings(path: Path, stored: dict[str, Any] | None, settings: dict[str, Any]) -> None:
    """Raise :class:`CheckpointMismatch` naming every setting that differs."""
    if stored is None:  # a checkpoint of an older vaelib: nothing to compare
        return
    differ = [name for name in settings if name in stored and stored[name] != settings[name]]
    if not differ:
        return
    lines = "; ".join(
        f"{_SETTING_NAMES.get(name, name)}: {_show_setting(name, stored[name])} in the "
        f"checkpoint, {_show_setting(name, settings[name])} now" for name in differ
    )
    raise CheckpointMismatch(
        f"cannot resume from {path}: it holds a run with other settings ({lines}). Resuming "
        "would mix two different runs. To continue that run, call fit with the checkpoint's "
        f"settings; to start afresh, delete {path} or pass another checkpoint path."
    )


def load_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                        settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restore ``model`` and ``optimizer`` from a ``fit`` checkpoint; return the rest.

    Everything is checked before anything is loaded: a checkpoint of another model
    configuration, or (given ``settings``) of a run with other settings, raises
    :class:`CheckpointMismatch` and leaves ``model`` and ``optimizer`` as they were.
    """
    from vaelib.models import config_to_dict
    from vaelib.train import History

    payload = _read(path, map_location=next(model.parameters()).device)
    if payload.get("format") != TRAINING_FORMAT:
        raise CheckpointMismatch(f"{path} is a saved model, not a fit checkpoint; pass another "
                                 "checkpoint path, or load the model with vaelib.load.")
    entry = payload["model"]
    config = getattr(model, "config", None)
    if entry["config"] is not None and config is not None and \
            config_to_dict(config) != entry["config"]:
        raise CheckpointMismatch(
            f"the checkpoint {path} belongs to a different model configuration; delete it or "
            "pass another path to start afresh."
        )
    if settings is not None:
        _check_settings(path, payload.get("settings"), settings)
    model.load_state_dict(entry["state_dict"])
    optimizer.load_state_dict(payload["optimizer"])
    return {
        "history": History.from_dict(payload["history"]),
        "step": payload["step"],
        "batch_order": payload["batch_order"],
        "rng": payload["rng"],
        "best": payload["best"],
    }
