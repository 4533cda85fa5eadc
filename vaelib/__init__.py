"""vaelib: the PyTorch package behind *Understanding Variational Autoencoders*.

The reusable library sits here, at the top level: distributions, objectives, models (MLP and
convolutional VAEs), training (:func:`fit`, :func:`evaluate`), checkpoints (:func:`save`,
:func:`load`), diagnostics, data, plotting, the command line (``python -m vaelib``) and the
baselines the paper compares against (wake-sleep, HMC, Monte Carlo EM). The chapters' teaching
helpers live in :mod:`vaelib.book`.

Importing it has no side effects: no seeding, no plotting style, no data loading.
"""

from vaelib.checkpoints import load, save
from vaelib.data import load_frey_faces, load_mnist
from vaelib.diagnostics import active_units, kl_per_dimension
from vaelib.distributions import (
    bernoulli_log_prob,
    gaussian_log_prob,
    kl_normal_normal,
    kl_normal_standard,
    kl_normal_standard_per_dim,
    reparameterize,
    standard_normal_log_prob,
)
from vaelib.models import MLP, VAE, Autoencoder, ConvVAE, ConvVAEConfig, VAEConfig, VAEOutput
from vaelib.objectives import (
    ELBO,
    LatentVariableModel,
    elbo,
    elbo_from_posterior,
    iwae_bound,
    log_likelihood,
)
from vaelib.train import History, TrainingDiverged, evaluate, fit, linear_warmup

__version__ = "0.2.0"

__all__ = [
    "ELBO",
    "History",
    "MLP",
    "VAE",
    "Autoencoder",
    "ConvVAE",
    "ConvVAEConfig",
    "LatentVariableModel",
    "TrainingDiverged",
    "VAEConfig",
    "VAEOutput",
    "active_units",
    "bernoulli_log_prob",
    "elbo",
    "elbo_from_posterior",
    "evaluate",
    "fit",
    "gaussian_log_prob",
    "iwae_bound",
    "kl_normal_normal",
    "kl_normal_standard",
    "kl_normal_standard_per_dim",
    "kl_per_dimension",
    "linear_warmup",
    "load",
    "load_frey_faces",
    "load_mnist",
    "log_likelihood",
    "reparameterize",
    "save",
    "standard_normal_log_prob",
]
