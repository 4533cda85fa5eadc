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

import vaelib
import vaelib.data as data
from vaelib.cli import main
from vaelib.models import VAE

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
    model, history = vaelib.load(out / "model.pt", with_history=True)
    assert isinstance(model, VAE) and model.config.z_dim == 2 and len(history) == 1
    assert torch.load(out / "model.pt", weights_only=True)["format"] == "vaelib-model"
    x = torch.rand(3, 784)
    assert model.encode(x)[0].shape == (3, 2)
    assert "test ELBO" in capsys.readouterr().out
    assert not list(tmp_path.glob(".run.*"))  # no staging or backup folder is left


def test_no_manifold_unless_z_dim_is_2(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run(out, "--z-dim", "3", "--binarize", "static") == 0
    names = {p.name for p in out.iterdir()}
    assert FIGURES <= names and "manifold.png" not in names


def test_rerun_replaces_the_folder_without_stale_figures(tmp_path: Path, capsys) -> None:
    """Regression: re-running into a folder left the old run's figures behind."""
    out = tmp_path / "run"
    assert _run(out, "--z-dim", "2") == 0 and (out / "manifold.png").exists()
    assert _run(out, "--z-dim", "3") == 2  # an existing run is not replaced silently
    assert "--overwrite" in capsys.readouterr().err
    assert _run(out, "--z-dim", "3", "--overwrite") == 0
    assert not (out / "manifold.png").exists()
    assert json.loads((out / "metrics.json").read_text())["model"]["z_dim"] == 3


def test_an_unwritable_out_fails_before_training(tmp_path: Path, monkeypatch, capsys) -> None:
    """Regression: --out was checked only after training, so a bad folder lost the run."""
    import vaelib.train

    def no_training(*args, **kwargs):
        raise AssertionError("fit must not start")

    monkeypatch.setattr(vaelib.train, "fit", no_training)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert _run(blocker / "run") == 2
    assert "cannot write the run" in capsys.readouterr().err
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        if not __import__("os").access(readonly, __import__("os").W_OK):  # not as root
            assert _run(readonly / "run") == 2
    finally:
        readonly.chmod(0o700)


def test_interrupted_run_leaves_out_alone_and_resumes(tmp_path: Path, monkeypatch,
                                                      capsys) -> None:
    """Regression: Ctrl-C after model.pt left a folder without metrics.json."""
    out = tmp_path / "run"
    calls = {"n": 0}
    original = VAE.log_px_given_z

    def interrupt_in_epoch_2(self, x, z):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 1: 2 steps + evaluation + active units; then epoch 2
            raise KeyboardInterrupt
        return original(self, x, z)

    monkeypatch.setattr(VAE, "log_px_given_z", interrupt_in_epoch_2)
    assert _run(out, "--epochs", "3") == 130
    assert not out.exists() and "--resume" in capsys.readouterr().err
    assert (tmp_path / ".run.partial" / "checkpoint.pt").exists()
    monkeypatch.setattr(VAE, "log_px_given_z", original)
    assert _run(out, "--epochs", "3", "--resume") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["history"]["epoch"] == [1.0, 2.0, 3.0]
    assert _run(tmp_path / "straight", "--epochs", "3") == 0
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert straight["history"]["train_elbo"] == metrics["history"]["train_elbo"]


def test_a_resumed_run_reports_the_time_and_epochs_of_the_whole_run(tmp_path: Path,
                                                                     monkeypatch,
                                                                     capsys) -> None:
    """Regression: after --resume, metrics.json's seconds and the final line counted only the
    resumed part; and one epoch was reported as "after 1 epochs"."""
    out = tmp_path / "run"
    calls = {"n": 0}
    original = VAE.log_px_given_z

    def interrupt_in_epoch_2(self, x, z):
        calls["n"] += 1
        if calls["n"] == 6:  # as in the test above: the first step of epoch 2
            raise KeyboardInterrupt
        return original(self, x, z)

    monkeypatch.setattr(VAE, "log_px_given_z", interrupt_in_epoch_2)
    assert _run(out, "--epochs", "2") == 130
    checkpoint = torch.load(tmp_path / ".run.partial" / "checkpoint.pt", weights_only=True)
    first_part = checkpoint["history"]["seconds"]
    assert len(first_part) == 1
    monkeypatch.setattr(VAE, "log_px_given_z", original)
    capsys.readouterr()
    assert _run(out, "--epochs", "2", "--resume") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["history"]["seconds"][:1] == first_part  # epoch 1 comes from the first part
    assert metrics["seconds"] == round(sum(metrics["history"]["seconds"]), 3)
    assert f"after 2 epochs ({sum(metrics['history']['seconds']):.1f} s of training)" in \
        capsys.readouterr().out
    assert _run(tmp_path / "one", "--epochs", "1") == 0
    printed = capsys.readouterr().out
    assert "after 1 epoch (" in printed and "1 epochs" not in printed


def test_resume_with_other_options_is_refused_and_keeps_the_run(tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:
    """--resume with another learning rate would mix two runs: a clear error, exit status 2,
    and the interrupted run stays in its staging folder."""
    out = tmp_path / "run"
    calls = {"n": 0}
    original = VAE.log_px_given_z

    def interrupt_in_epoch_2(self, x, z):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return original(self, x, z)

    monkeypatch.setattr(VAE, "log_px_given_z", interrupt_in_epoch_2)
    assert _run(out, "--epochs", "3") == 130
    monkeypatch.setattr(VAE, "log_px_given_z", original)
    capsys.readouterr()
    assert _run(out, "--epochs", "3", "--lr", "0.01", "--resume") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot resume from") and "lr: 0.001 in the checkpoint" in err
    assert "leave out --resume" in err and not out.exists()
    assert (tmp_path / ".run.partial" / "checkpoint.pt").exists()
    assert _run(out, "--epochs", "3", "--resume") == 0  # the original options continue it


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
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--z-dim", "-1"], "--z-dim must be >= 1"),
        (["--dataset", "cifar"], "invalid choice: 'cifar'"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--warmup", "0"], "--warmup must be >= 1"),
        (["--free-bits", "-1"], "--free-bits must be >= 0"),
    ],
)
def test_bad_arguments_exit_with_usage(tmp_path: Path, capsys, args, message) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--out", str(tmp_path), *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_activation_is_checked(tmp_path: Path, capsys) -> None:
    assert _run(tmp_path / "run", "--activation", "swish") == 2
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
