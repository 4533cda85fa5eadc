"""Tests of ``python -m vaelib train``: one-epoch runs on a few examples in a temporary folder."""

from __future__ import annotations

import hashlib
import json
import runpy
import sys
import urllib.error
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

import vaelib.data as data
from vaelib.cli import main
from vaelib.models import VAE, VAEConfig

FIGURES = {"reconstructions.png", "samples.png", "curves.png"}


def _run(out: Path, *extra: str) -> int:
    return main(["train", "--epochs", "1", "--limit", "40", "--hidden-dim", "16",
                 "--batch-size", "20", "--progress", "none", "--out", str(out), *extra])


def test_train_mnist_writes_metrics_model_and_figures(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert _run(out, "--z-dim", "2") == 0
    assert {p.name for p in out.iterdir()} == FIGURES | {"manifold.png", "metrics.json",
                                                          "model.pt"}
    for name in FIGURES | {"manifold.png"}:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "mnist" and metrics["epochs"] == 1
    assert metrics["num_train"] == 40 and metrics["num_test"] == 40
    for split in ("train", "test"):
        terms = metrics[split]
        assert set(terms) == {"elbo", "log_px", "kl"}
        assert terms["elbo"] == pytest.approx(terms["log_px"] - terms["kl"])
        assert -1000 < terms["elbo"] < 0
    assert metrics["model"]["likelihood"] == "bernoulli" and metrics["model"]["z_dim"] == 2
    assert metrics["config"]["seed"] == 0 and metrics["config"]["out"] == str(out)
    assert len(metrics["history"]["train_elbo"]) == 1 and metrics["seconds"] > 0
    model = VAE(VAEConfig(**metrics["model"]))
    model.load_state_dict(torch.load(out / "model.pt"))
    assert "test ELBO" in capsys.readouterr().out


def test_no_manifold_unless_z_dim_is_2(tmp_path: Path) -> None:
    assert _run(tmp_path, "--z-dim", "3", "--binarize", "static") == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert FIGURES <= names and "manifold.png" not in names


def test_train_frey_uses_a_gaussian_decoder(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    ff = np.random.default_rng(0).integers(0, 256, (560, 50), dtype=np.uint8)
    savemat(cache / "frey_rawface.mat", {"ff": ff})
    sha256 = hashlib.sha256((cache / "frey_rawface.mat").read_bytes()).hexdigest()
    monkeypatch.setattr(data, "FREY_FACES", replace(data.FREY_FACES, sha256=sha256))
    monkeypatch.setenv("VAELIB_DATA", str(cache))
    out = tmp_path / "frey"
    assert _run(out, "--dataset", "frey", "--z-dim", "2") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["likelihood"] == "gaussian" and metrics["model"]["x_dim"] == 560
    assert metrics["num_train"] == 40 and metrics["num_test"] == 10  # 80/20 split of 50
    assert (out / "manifold.png").exists()


def test_missing_data_is_a_clear_error_not_a_traceback(tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    def offline(url: str, timeout: float | None = None) -> None:
        raise urllib.error.URLError("offline")

    monkeypatch.setenv("VAELIB_DATA", str(tmp_path / "empty"))
    monkeypatch.delenv("VAELIB_DATA_MIRROR", raising=False)
    monkeypatch.setattr(data, "urlopen", offline)
    assert _run(tmp_path / "out", "--dataset", "frey") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: frey_rawface.mat") and "VAELIB_DATA_MIRROR" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--z-dim", "-1"], "--z-dim must be >= 1"),
        (["--dataset", "cifar"], "invalid choice: 'cifar'"),
        (["--limit", "0"], "--limit must be >= 1"),
    ],
)
def test_bad_arguments_exit_with_usage(tmp_path: Path, capsys, args, message) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--out", str(tmp_path), *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_activation_is_checked(tmp_path: Path, capsys) -> None:
    assert _run(tmp_path, "--activation", "swish") == 2
    assert "unknown activation 'swish'" in capsys.readouterr().err


def test_python_dash_m_vaelib(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["vaelib", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("vaelib", run_name="__main__")
    assert info.value.code == 0
    assert "train" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "--z-dim" in help_text and "--limit" not in help_text  # a hidden smoke-test option
