r"""The networks of the book: a multilayer perceptron, a perceptron, an autoencoder and the VAE.

The VAE follows Kingma & Welling (2014), Sec. 3 and Appendix C:

* encoder :math:`q_\phi(z|x) = \mathcal N(z \mid \mu(x), \operatorname{diag}\sigma^2(x))`, an MLP
  whose last layer gives ``mu`` and ``logvar`` = :math:`\log\sigma^2`;
* prior :math:`p(z) = \mathcal N(0, I)`;
* decoder :math:`p_\theta(x|z)`: Bernoulli (an MLP gives the logits) for binary or grey-level
  data in [0, 1], or Gaussian with sigmoid means and a learned log-variance for continuous data
  (or, with ``VAEConfig.decoder_logvar``, one fixed variance for every pixel).

Shapes: ``x`` is ``(B, D)``, ``z`` is ``(B, L)`` or ``(K, B, L)`` for ``K`` samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn

from vaelib._checks import check_data, check_positive_int
from vaelib.distributions import bernoulli_log_prob, gaussian_log_prob, reparameterize

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}
LIKELIHOODS = ("bernoulli", "gaussian")


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


class MLP(nn.Sequential):
    r"""A multilayer perceptron: affine layers with an activation between them.

    Each hidden layer computes :math:`h = f(hW + b)` with :math:`W \in \mathbb R^{D_{in}\times M}`;
    the last layer is affine (no activation), so the caller decides what the output means.

    Args:
        in_dim: input size.
        hidden_dims: sizes of the hidden layers (may be empty: a single affine map).
        out_dim: output size.
        activation: name of the hidden activation (see ``ACTIVATIONS``).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dims: Sequence[int],
        out_dim: int,
        activation: str = "relu",
    ) -> None:
        sizes = [in_dim, *hidden_dims, out_dim]
        for size in sizes:
            check_positive_int(size, "every layer size")
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(d_in, d_out))
            if i < len(sizes) - 2:
                layers.append(_activation(activation))
        super().__init__(*layers)


class Perceptron(nn.Module):
    r"""A single unit: :math:`y(x) = f(w^\top x + b)`, :math:`w \in \mathbb R^D, b \in \mathbb R`.

    Args:
        in_dim: ``D``.
        activation: ``f`` (``"identity"`` gives linear regression, ``"sigmoid"`` logistic
            regression).

    Shapes: ``x`` ``(B, D)`` → ``y`` ``(B,)``.
    """

    def __init__(self, in_dim: int, activation: str = "identity") -> None:
        super().__init__()
        check_positive_int(in_dim, "in_dim")
        self.linear = nn.Linear(in_dim, 1)
        self.activation = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The output :math:`y(x)` ``(B,)`` for ``x`` ``(B, D)``."""
        return self.activation(self.linear(x)).squeeze(-1)


class Autoencoder(nn.Module):
    r"""A deterministic autoencoder :math:`y(x) = g(f(x)) \approx x` with a bottleneck ``z``.

    The encoder :math:`f` maps ``x`` ``(B, D)`` to a code ``z`` ``(B, L)``; the decoder :math:`g`
    mirrors it (symmetric hidden sizes). With ``hidden_dims=()`` and ``output="linear"`` both
    maps are affine: the linear autoencoder that recovers the PCA subspace.

    Args:
        x_dim: ``D``.
        z_dim: ``L``, the bottleneck.
        hidden_dims: encoder hidden sizes; the decoder uses them reversed.
        activation: hidden activation.
        output: ``"sigmoid"`` for data in [0, 1], ``"linear"`` otherwise.
    """

    def __init__(
        self,
        x_dim: int,
        z_dim: int,
        hidden_dims: Sequence[int] = (256,),
        activation: str = "relu",
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        if output not in ("sigmoid", "linear"):
            raise ValueError(f'output must be "sigmoid" or "linear", got {output!r}.')
        check_positive_int(x_dim, "x_dim")
        check_positive_int(z_dim, "z_dim")
        self.x_dim, self.z_dim, self.output = x_dim, z_dim, output
        self.encoder = MLP(x_dim, hidden_dims, z_dim, activation)
        self.decoder = MLP(z_dim, tuple(reversed(hidden_dims)), x_dim, activation)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code ``z`` ``(B, L)`` of ``x`` ``(B, D)``."""
        check_data(x, self.x_dim)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``x_hat`` ``(B, D)`` of a code ``z`` ``(B, L)``."""
        x_hat = self.decoder(z)
        return torch.sigmoid(x_hat) if self.output == "sigmoid" else x_hat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction :math:`y(x) = g(f(x))` ``(B, D)``."""
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        r"""Per-example squared error :math:`\lVert y(x) - t\rVert^2`, summed over ``D``: ``(B,)``.

        ``target`` defaults to ``x`` (plain autoencoder); pass clean images as the target and
        corrupted ones as ``x`` for a denoising autoencoder.
        """
        target = x if target is None else target
        return ((self(x) - target) ** 2).sum(-1)


@dataclass
class VAEConfig:
    r"""Hyper-parameters of :class:`VAE`. Defaults: the PyTorch example (784-400-20, ReLU).

    The paper's settings (Kingma & Welling 2014, Sec. 5): ``activation="tanh"``,
    ``init_std=0.01``, one hidden layer, ``likelihood="gaussian"`` for Frey Face.

    ``decoder_logvar`` (Gaussian decoder only) replaces the learned per-pixel
    :math:`\log\sigma^2(z)` by one fixed value: a learned variance can shrink towards zero on
    pixels that are easy to predict, and the density, and with it the ELBO, then grows without
    bound (the chapter *A VAE on real data* shows this on Frey Face).
    """

    x_dim: int = 784  # D, pixels per image (28 x 28 for MNIST, 28 x 20 for Frey Face)
    hidden_dim: int = 400  # units per hidden layer (the paper: 500 MNIST, 200 Frey Face)
    z_dim: int = 20  # L, latent dimensions (2 for the manifold figures)
    likelihood: str = "bernoulli"  # "bernoulli" (logits) or "gaussian" (sigmoid mean, log-var)
    activation: str = "relu"  # hidden activation; the paper used "tanh"
    num_hidden_layers: int = 1  # hidden layers in encoder and decoder each
    init_std: float | None = (
        None  # N(0, init_std^2) init of all weights and biases; None: PyTorch's
    )
    # Gaussian decoder only: None learns log sigma^2(z) per pixel (the paper); a number fixes
    # log sigma^2 for every pixel, so the density cannot grow without bound as sigma -> 0
    decoder_logvar: float | None = None

    def __post_init__(self) -> None:
        for name in ("x_dim", "hidden_dim", "z_dim", "num_hidden_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VAEConfig.{name} must be an integer >= 1, got {value!r}.")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(
                f"VAEConfig.likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}: "
                '"bernoulli" for data in [0, 1] such as MNIST, "gaussian" for continuous data.'
            )
        _activation(self.activation)
        if self.init_std is not None and not self.init_std > 0:
            raise ValueError(f"VAEConfig.init_std must be positive or None, got {self.init_std}.")
        if self.decoder_logvar is not None:
            if self.likelihood != "gaussian":
                raise ValueError(
                    "VAEConfig.decoder_logvar fixes the variance of the Gaussian decoder; it "
                    f'needs likelihood="gaussian", got likelihood={self.likelihood!r}.'
                )
            if isinstance(self.decoder_logvar, bool) or not (
                isinstance(self.decoder_logvar, (int, float)) and math.isfinite(self.decoder_logvar)
            ):
                raise ValueError(
                    "VAEConfig.decoder_logvar must be a finite number (log sigma^2, e.g. "
                    f"2 * math.log(0.1)) or None, got {self.decoder_logvar!r}."
                )


class VAEOutput(NamedTuple):
    """What :meth:`VAE.forward` returns; shapes ``(B, D)``, ``(B, L)``, ``(B, L)``, ``(B, L)``."""

    x_hat: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class VAE(nn.Module):
    r"""The variational autoencoder of Kingma & Welling (2014).

    ``encode(x)`` gives the parameters of :math:`q_\phi(z|x)`; ``decode(z)`` the mean image
    :math:`\hat x = \mathbb E[x|z]`; ``log_px_given_z(x, z)`` the log-likelihood
    :math:`\log p_\theta(x|z)` summed over pixels. The ELBO itself lives in
    :func:`vaelib.objectives.elbo`.

    Example:
        >>> model = VAE(VAEConfig(x_dim=784, hidden_dim=400, z_dim=2))
        >>> mu, logvar = model.encode(torch.rand(5, 784))
        >>> mu.shape
        torch.Size([5, 2])
    """

    def __init__(self, config: VAEConfig | None = None, **overrides: object) -> None:
        super().__init__()
        config = VAEConfig(**{**asdict(config or VAEConfig()), **overrides})
        self.config = config
        hidden = [config.hidden_dim] * config.num_hidden_layers
        # encoder: x -> (mu, logvar), 2L outputs
        self.encoder = MLP(config.x_dim, hidden, 2 * config.z_dim, config.activation)
        # decoder: z -> logits (Bernoulli, D outputs) or (mean logits, logvar) (Gaussian, 2D;
        # D when the log-variance is fixed by config.decoder_logvar)
        learned_logvar = config.likelihood == "gaussian" and config.decoder_logvar is None
        out = config.x_dim * (2 if learned_logvar else 1)
        self.decoder = MLP(config.z_dim, hidden, out, config.activation)
        if config.init_std is not None:
            for p in self.parameters():
                nn.init.normal_(p, 0.0, config.init_std)

    @property
    def x_dim(self) -> int:
        return self.config.x_dim

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` fits this model (shape, dtype, finite, range)."""
        check_data(x, self.x_dim, unit_interval=self.config.likelihood == "bernoulli")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Parameters of :math:`q_\phi(z|x)`: ``mu`` and ``logvar``, each ``(B, L)``."""
        self.check_input(x)
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def _decoder_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of the mean and (Gaussian only) the log-variance, each ``(..., D)``."""
        if z.shape[-1] != self.z_dim:
            raise ValueError(
                f"z must have last dimension z_dim={self.z_dim}, got shape {tuple(z.shape)}."
            )
        out = self.decoder(z)
        if self.config.likelihood == "gaussian":
            if self.config.decoder_logvar is not None:  # one fixed sigma^2 for every pixel
                return out, torch.full_like(out, float(self.config.decoder_logvar))
            mean_logits, logvar = out.chunk(2, dim=-1)
            return mean_logits, logvar
        return out, None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        r"""Mean image :math:`\hat x = \mathbb E_{p_\theta(x|z)}[x]`, in [0, 1]: ``(..., D)``."""
        logits, _ = self._decoder_params(z)
        return torch.sigmoid(logits)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r"""Reconstruction log-likelihood :math:`\log p_\theta(x|z)`, summed over pixels.

        Args:
            x: data ``(B, D)``.
            z: latent samples ``(B, L)`` or ``(K, B, L)``.

        Returns:
            ``(B,)`` or ``(K, B)``, in nats.
        """
        logits, logvar = self._decoder_params(z)
        if logvar is None:
            return bernoulli_log_prob(x, logits)
        return gaussian_log_prob(x, torch.sigmoid(logits), logvar)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        """Encode, draw one ``z`` by reparameterization, decode."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        return VAEOutput(self.decode(z), mu, logvar, z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``n`` new images: :math:`z \sim p(z)`, then the decoder's mean, ``(n, D)``."""
        check_positive_int(n, "n")
        device = next(self.parameters()).device
        z = torch.randn(n, self.z_dim, generator=generator, device=device)
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        r"""Decode the posterior mean: :math:`\hat x = \mathbb E[x \mid z = \mu(x)]`, ``(B, D)``."""
        mu, _ = self.encode(x)
        return self.decode(mu)
