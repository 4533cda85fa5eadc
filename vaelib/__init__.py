"""vaelib: the small PyTorch package behind *Understanding Variational Autoencoders*.

Importing it has no side effects: no seeding, no plotting style, no data loading.
"""

from vaelib.data import load_frey_faces, load_mnist
from vaelib.distributions import (
    bernoulli_log_prob,
    gaussian_log_prob,
    kl_normal_normal,
    kl_normal_standard,
    reparameterize,
    standard_normal_log_prob,
)
from vaelib.linear_gaussian import LinearGaussian
from vaelib.models import MLP, VAE, Autoencoder, Perceptron, VAEConfig, VAEOutput
from vaelib.objectives import ELBO, elbo, elbo_from_posterior, iwae_bound, log_likelihood
from vaelib.train import History, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "ELBO",
    "History",
    "MLP",
    "VAE",
    "Autoencoder",
    "LinearGaussian",
    "Perceptron",
    "VAEConfig",
    "VAEOutput",
    "bernoulli_log_prob",
    "elbo",
    "elbo_from_posterior",
    "evaluate",
    "fit",
    "gaussian_log_prob",
    "iwae_bound",
    "kl_normal_normal",
    "kl_normal_standard",
    "load_frey_faces",
    "load_mnist",
    "log_likelihood",
    "reparameterize",
    "standard_normal_log_prob",
]
