"""vaelib.save / vaelib.load: one safe file per model, written atomically."""

import os

import pytest
import torch

import vaelib
from vaelib import VAE, ConvVAE, ConvVAEConfig, VAEConfig
from vaelib.checkpoints import atomic_write


@pytest.mark.parametrize("model", [
    VAE(VAEConfig(x_dim=12, hidden_dim=8, z_dim=3, likelihood="gaussian",
                  decoder_variance_floor=0.01, seed=0)),
    ConvVAE(ConvVAEConfig(image_shape=(1, 8, 8), z_dim=2, channels=(4, 4), hidden_dim=8,
                          seed=0)),
])
def test_save_and_load_round_trip(tmp_path, model):
    path = vaelib.save(model, tmp_path / "model.pt")
    loaded = vaelib.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert not loaded.training
    for (name, p), q in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(p, q), name
    payload = torch.load(path, weights_only=True)  # no pickled code is needed
    assert payload["format"] == "vaelib-model" and payload["model"]["class"] == type(model).__name__
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_history_is_stored_with_the_model(tmp_path):
    model = VAE(VAEConfig(x_dim=784, hidden_dim=8, z_dim=2, seed=0))
    history = vaelib.fit(model, torch.rand(50, 784), epochs=2, progress="none")
    vaelib.save(model, tmp_path / "m.pt", history=history)
    _, loaded = vaelib.load(tmp_path / "m.pt", with_history=True)
    assert loaded.to_dict() == history.to_dict()


def test_early_stopping_and_dtype_survive_save_and_load(tmp_path):
    """A saved history keeps why training stopped and its best epoch; a float64 model loads as
    float64 (not cast to the default float32), with the same weights."""
    model = VAE(VAEConfig(x_dim=784, hidden_dim=8, z_dim=2, seed=0))
    history = vaelib.History({"epoch": [1.0, 2.0, 3.0], "train_elbo": [-9.0, -8.0, -8.5]},
                             stopped="early_stopping", best_epoch=2)
    vaelib.save(model, tmp_path / "m.pt", history=history)
    _, loaded = vaelib.load(tmp_path / "m.pt", with_history=True)
    assert (loaded.stopped, loaded.best_epoch) == (history.stopped, history.best_epoch)

    double = VAE(VAEConfig(x_dim=12, hidden_dim=8, z_dim=3, seed=0)).double()
    back = vaelib.load(vaelib.save(double, tmp_path / "d.pt"))
    assert all(p.dtype == torch.float64 for p in back.parameters())
    for p, q in zip(double.state_dict().values(), back.state_dict().values()):
        assert torch.equal(p, q)


def test_map_location_is_where_the_model_is_built(tmp_path):
    path = vaelib.save(VAE(VAEConfig(x_dim=12, hidden_dim=8, z_dim=3, seed=0)), tmp_path / "m.pt")
    assert {p.device.type for p in vaelib.load(path, map_location="meta").parameters()} == {"meta"}
    assert {p.device.type for p in vaelib.load(path).parameters()} == {"cpu"}


def test_an_interrupted_save_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"old")

    def half_then_fail(tmp):
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["model.pt"]


def test_clear_errors(tmp_path):
    model = VAE(VAEConfig(x_dim=4, hidden_dim=4, z_dim=2))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        vaelib.save(model, tmp_path / "nope" / "model.pt")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        vaelib.save(model, tmp_path)
    with pytest.raises(TypeError, match="state_dict"):
        vaelib.save(torch.nn.Linear(2, 2), tmp_path / "linear.pt")
    with pytest.raises(FileNotFoundError, match="no model file"):
        vaelib.load(tmp_path / "missing.pt")
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not written by vaelib.save"):
        vaelib.load(tmp_path / "plain.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a vaelib model file"):
        vaelib.load(tmp_path / "junk.pt")


@pytest.fixture
def umask():
    """Set the process umask for a test, and put the old one back."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def test_files_get_the_permissions_open_would_give_them(tmp_path, umask):
    """Regression: atomic_write kept mkstemp's mode 0600, so saved models, checkpoints and the
    CLI's model.pt were unreadable for the group and others whatever the umask."""
    import stat

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    model = VAE(VAEConfig(x_dim=784, hidden_dim=8, z_dim=2, seed=0))
    umask(0o022)
    assert mode(vaelib.save(model, tmp_path / "a.pt")) == 0o644
    with open(tmp_path / "by_open.txt", "w"):
        pass
    assert mode(tmp_path / "by_open.txt") == 0o644  # the same as open()
    umask(0o027)
    assert mode(vaelib.save(model, tmp_path / "b.pt")) == 0o640
    umask(0o002)
    vaelib.fit(model, torch.rand(20, 784), epochs=1, checkpoint=tmp_path / "run.pt",
               progress="none")
    assert mode(tmp_path / "run.pt") == 0o664
    (tmp_path / "a.pt").chmod(0o600)  # a file that is replaced keeps its mode, as with open()
    umask(0o022)
    vaelib.save(model, tmp_path / "a.pt")
    assert mode(tmp_path / "a.pt") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt", "by_open.txt",
                                                          "run.pt"]
