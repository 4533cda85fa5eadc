r"""Models: a multilayer perceptron, an autoencoder, and variational autoencoders (MLP and conv).

The VAE follows Kingma & Welling (2014), Sec. 3 and Appendix C:

* encoder :math:`q_\phi(z|x) = \mathcal N(z \mid \mu(x), \operatorname{diag}\sigma^2(x))`, a network
  whose last layer gives ``mu`` and ``logvar`` = :math:`\log\sigma^2`;
* prior :math:`p(z) = \mathcal N(0, I)`;
* decoder :math:`p_\theta(x|z)`: Bernoulli (the network gives the logits) for binary or grey-level
  data in [0, 1], or Gaussian with a mean per pixel — squashed into (0, 1) by a sigmoid as in the
  paper (``decoder_mean="sigmoid"``, data in [0, 1]) or unbounded (``decoder_mean="identity"``) —
  and a learned, bounded, floored or fixed log-variance.

**The model protocol.** :func:`vaelib.train.fit`, :func:`vaelib.train.evaluate`, the objectives
and :mod:`vaelib.diagnostics` accept any ``torch.nn.Module`` with

* ``encode(x) -> (mu, logvar)``, each ``(B, J)``;
* ``log_px_given_z(x, z) -> (L, B)`` for ``z`` of shape ``(L, B, J)`` (and ``(B,)`` for
  ``(B, J)``, the shape the baselines pass), summed over the data dimensions, in nats;

and, optionally, a method ``check_input(x)`` that raises for bad data (it replaces the checks
below), or attributes that switch on input checks: ``x_shape`` (the shape of one example, e.g.
``(784,)`` or ``(1, 28, 28)``; data are then ``(N, *x_shape)``), ``input_range`` (e.g. ``(0, 1)``
when the data must lie in [0, 1]) and ``z_dim``. :class:`VAE` and :class:`ConvVAE` implement it;
so can your own model (see :class:`vaelib.objectives.LatentVariableModel`).

Shapes: ``x`` is ``(B, D)`` (``(B, C, H, W)`` for :class:`ConvVAE`), ``z`` is ``(B, J)`` or
``(L, B, J)`` for ``L`` samples per datapoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
from torch import nn

from vaelib._checks import check_data, check_number, check_positive_int
from vaelib.distributions import bernoulli_log_prob, gaussian_log_prob, reparameterize

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "Autoencoder",
    "ConvVAE",
    "ConvVAEConfig",
    "VAE",
    "VAEConfig",
    "VAEOutput",
    "unchecked",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}
LIKELIHOODS = ("bernoulli", "gaussian")
DECODER_MEANS = ("sigmoid", "identity")


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


class MLP(nn.Sequential):
    r"""A multilayer perceptron: affine layers with an activation between them.

    Each hidden layer computes :math:`h = f(hW + b)` with :math:`W \in \mathbb R^{d_{in}\times d_{out}}`;
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
        sizes = [check_positive_int(s, "every layer size") for s in [in_dim, *hidden_dims, out_dim]]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(d_in, d_out))
            if i < len(sizes) - 2:
                layers.append(_activation(activation))
        super().__init__(*layers)


class Autoencoder(nn.Module):
    r"""A deterministic autoencoder :math:`y(x) = g(f(x)) \approx x` with a bottleneck ``z``.

    The encoder :math:`f` maps ``x`` ``(B, D)`` to a code ``z`` ``(B, J)``; the decoder :math:`g`
    mirrors it (symmetric hidden sizes). With ``hidden_dims=()`` and ``output="linear"`` both
    maps are affine: the linear autoencoder that recovers the PCA subspace.

    Args:
        x_dim: ``D``.
        z_dim: ``J``, the size of the code.
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
        self.x_dim = check_positive_int(x_dim, "x_dim")
        self.z_dim = check_positive_int(z_dim, "z_dim")
        self.output = output
        self.encoder = MLP(self.x_dim, hidden_dims, self.z_dim, activation)
        self.decoder = MLP(self.z_dim, tuple(reversed(hidden_dims)), self.x_dim, activation)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.x_dim,)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code ``z`` ``(B, J)`` of ``x`` ``(B, D)``."""
        check_data(x, self.x_dim)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``x_hat`` ``(B, D)`` of a code ``z`` ``(B, J)``."""
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


# --------------------------------------------------------------------------------------------
# Decoder likelihoods shared by the MLP and the convolutional VAE


@dataclass
class _DecoderOptions:
    """The likelihood part of a VAE configuration (fields shared by both configs)."""

    likelihood: str = "bernoulli"
    # Gaussian decoder only: how the mean is produced from the network's output
    decoder_mean: str = "sigmoid"
    # Gaussian decoder only: None learns log sigma^2(z) per pixel (the paper); a number fixes it
    decoder_logvar: float | None = None
    # Gaussian decoder only: clamp the learned log sigma^2 into [low, high]
    decoder_logvar_bounds: tuple[float, float] | None = None
    # Gaussian decoder only: sigma^2 = floor + exp(network output), so sigma^2 >= floor
    decoder_variance_floor: float | None = None


def _check_decoder_options(cfg: Any, cls: str) -> None:
    if cfg.likelihood not in LIKELIHOODS:
        raise ValueError(
            f"{cls}.likelihood must be one of {LIKELIHOODS}, got {cfg.likelihood!r}: "
            '"bernoulli" for data in [0, 1] such as MNIST, "gaussian" for continuous data.'
        )
    if cfg.decoder_mean not in DECODER_MEANS:
        raise ValueError(
            f"{cls}.decoder_mean must be one of {DECODER_MEANS}, got {cfg.decoder_mean!r}: "
            '"sigmoid" squashes the Gaussian mean into (0, 1) (the paper, for data in [0, 1]), '
            '"identity" leaves it unbounded.'
        )
    gaussian_only = {
        "decoder_logvar": cfg.decoder_logvar,
        "decoder_logvar_bounds": cfg.decoder_logvar_bounds,
        "decoder_variance_floor": cfg.decoder_variance_floor,
    }
    if cfg.decoder_mean != "sigmoid":
        gaussian_only["decoder_mean"] = cfg.decoder_mean
    for name, value in gaussian_only.items():
        if value is not None and cfg.likelihood != "gaussian":
            raise ValueError(
                f"{cls}.{name} shapes the Gaussian decoder; it needs likelihood=\"gaussian\", "
                f"got likelihood={cfg.likelihood!r}."
            )
    chosen = [n for n in ("decoder_logvar", "decoder_logvar_bounds", "decoder_variance_floor")
              if gaussian_only[n] is not None]
    if len(chosen) > 1:
        raise ValueError(f"{cls}: choose at most one of {chosen} (each bounds the variance).")
    if cfg.decoder_logvar is not None:
        cfg.decoder_logvar = check_number(
            cfg.decoder_logvar, f"{cls}.decoder_logvar",
            hint=" It is log sigma^2, e.g. 2 * math.log(0.1) for sigma = 0.1, or None.",
        )
    if cfg.decoder_logvar_bounds is not None:
        try:
            low, high = cfg.decoder_logvar_bounds
            low = check_number(low, "low")
            high = check_number(high, "high")
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{cls}.decoder_logvar_bounds must be a pair (low, high) of finite numbers "
                f"(log sigma^2), got {cfg.decoder_logvar_bounds!r}."
            ) from err
        if not low < high:
            raise ValueError(f"{cls}.decoder_logvar_bounds needs low < high, got {low}, {high}.")
        cfg.decoder_logvar_bounds = (low, high)
    if cfg.decoder_variance_floor is not None:
        cfg.decoder_variance_floor = check_number(
            cfg.decoder_variance_floor, f"{cls}.decoder_variance_floor", positive=True,
            hint=" It is the smallest sigma^2, e.g. (1 / 255) ** 2 for 8-bit images.",
        )


class VAEOutput(NamedTuple):
    """What ``forward`` returns: ``x_hat`` (like ``x``), ``mu``, ``logvar``, ``z`` ``(B, J)``."""

    x_hat: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


@contextmanager
def unchecked(model: nn.Module) -> Iterator[nn.Module]:
    """Switch off a vaelib model's per-call input check (``model.check_inputs = False``) inside
    the block — for loops over batches of data that were checked once as a whole."""
    if not hasattr(model, "check_inputs"):
        yield model
        return
    before = model.check_inputs
    model.check_inputs = False
    try:
        yield model
    finally:
        model.check_inputs = before


class _LatentVariableModel(nn.Module):
    """Shared by :class:`VAE` and :class:`ConvVAE`: the decoder's likelihood and the protocol.

    Subclasses build ``self.encoder`` / ``self.decoder`` and implement ``_encoder_out(x)``
    (``(B, 2J)``) and ``_decoder_out(z)`` (``(..., P)`` with ``P = D``, or ``2D`` for a learned
    Gaussian variance, flat).
    """

    config: Any
    check_inputs: bool

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def x_dim(self) -> int:
        """``D``, the numbers per example."""
        return math.prod(self.x_shape)

    @property
    def x_shape(self) -> tuple[int, ...]:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def likelihood(self) -> str:
        return self.config.likelihood

    @property
    def input_range(self) -> tuple[float, float] | None:
        """``(0, 1)`` when the decoder can only model data in [0, 1], else ``None``."""
        if self.config.likelihood == "bernoulli" or self.config.decoder_mean == "sigmoid":
            return (0.0, 1.0)
        return None

    def _learns_logvar(self) -> bool:
        return self.config.likelihood == "gaussian" and self.config.decoder_logvar is None

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise a clear error unless ``x`` fits this model (shape, dtype, finite, range)."""
        if self.config.likelihood == "bernoulli":
            why = "a Bernoulli decoder"
            advice = ('or use VAEConfig(likelihood="gaussian", decoder_mean="identity") for '
                      "unbounded data")
        else:
            why = 'a Gaussian decoder with decoder_mean="sigmoid" (its mean lies in (0, 1))'
            advice = 'or use decoder_mean="identity" for unbounded data'
        check_data(x, x_shape=self.x_shape, name=name, unit_interval=self.input_range is not None,
                   why_unit=why, advice_unit=advice)

    def _check_z(self, z: torch.Tensor) -> None:
        if z.dim() < 1 or z.shape[-1] != self.z_dim:
            raise ValueError(
                f"z must have last dimension z_dim={self.z_dim} (J), got shape {tuple(z.shape)}."
            )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Parameters of :math:`q_\phi(z|x)`: ``mu`` and ``logvar`` (:math:`\log\sigma^2`),
        each ``(B, J)``."""
        if self.check_inputs:
            self.check_input(x)
        mu, logvar = self._encoder_out(x).chunk(2, dim=-1)
        return mu, logvar

    def decoder_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        r"""The decoder's distribution at ``z`` ``(..., J)``, flat over the data dimensions.

        Returns:
            Bernoulli: ``(logits, None)``; Gaussian: ``(mean, logvar)``, each ``(..., D)``, where
            ``logvar`` is :math:`\log\sigma_d^2(z)` (learned, clamped, floored or fixed, as
            configured) and ``mean`` is sigmoid- or identity-transformed.
        """
        self._check_z(z)
        out = self._decoder_out(z)
        cfg = self.config
        if cfg.likelihood == "bernoulli":
            return out, None
        if cfg.decoder_logvar is not None:  # one fixed sigma^2 for every pixel
            raw_mean, logvar = out, torch.full_like(out, float(cfg.decoder_logvar))
        else:
            raw_mean, logvar = out.chunk(2, dim=-1)
            if cfg.decoder_logvar_bounds is not None:
                logvar = logvar.clamp(*cfg.decoder_logvar_bounds)
            elif cfg.decoder_variance_floor is not None:
                # sigma^2 = floor + exp(raw): log(floor + exp(raw)), computed stably
                logvar = torch.logaddexp(logvar, torch.full_like(logvar, math.log(
                    cfg.decoder_variance_floor)))
        mean = torch.sigmoid(raw_mean) if cfg.decoder_mean == "sigmoid" else raw_mean
        return mean, logvar

    def _unflatten(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.reshape(*flat.shape[:-1], *self.x_shape)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        r"""Mean image :math:`\hat x = \mathbb E_{p_\theta(x|z)}[x]`: ``(..., *x_shape)``."""
        params, logvar = self.decoder_params(z)
        return self._unflatten(torch.sigmoid(params) if logvar is None else params)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r"""Reconstruction log-likelihood :math:`\log p_\theta(x|z)`, summed over the data dims.

        Args:
            x: data ``(B, *x_shape)``.
            z: latent samples ``(B, J)`` or ``(L, B, J)``.

        Returns:
            ``(B,)`` or ``(L, B)``, in nats.
        """
        params, logvar = self.decoder_params(z)
        x_flat = x.reshape(*x.shape[: x.dim() - len(self.x_shape)], -1)
        if logvar is None:
            return bernoulli_log_prob(x_flat, params)
        return gaussian_log_prob(x_flat, params, logvar)

    @torch.no_grad()
    def sample_x_given_z(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""Draw :math:`x \sim p_\theta(x|z)` (not just its mean): ``z`` ``(..., J)`` →
        ``(..., *x_shape)``.

        Bernoulli: each pixel is 1 with probability :math:`\operatorname{sigm}(\text{logit})`;
        Gaussian: mean plus :math:`\sigma \odot \varepsilon`. Wake-sleep's sleep phase trains the
        encoder on such "dreams".
        """
        params, logvar = self.decoder_params(z)
        if logvar is None:
            u = torch.rand(params.shape, generator=generator, device=params.device,
                           dtype=params.dtype)
            return self._unflatten((u < torch.sigmoid(params)).to(params.dtype))
        eps = torch.randn(params.shape, generator=generator, device=params.device,
                          dtype=params.dtype)
        return self._unflatten(params + torch.exp(0.5 * logvar) * eps)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        """Encode, draw one ``z`` by reparameterization, decode."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        return VAEOutput(self.decode(z), mu, logvar, z)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``n`` new examples: :math:`z \sim p(z)`, then the decoder's mean, ``(n, *x_shape)``.

        ``generator`` (a ``torch.Generator`` on the model's device) makes the draw reproducible.
        """
        n = check_positive_int(n, "n")
        p = next(self.parameters())
        z = torch.randn(n, self.z_dim, generator=generator, device=p.device, dtype=p.dtype)
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        r"""Decode the posterior mean: :math:`\hat x = \mathbb E[x \mid z = \mu(x)]`."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    def _init_weights(self, init_std: float | None) -> None:
        if init_std is not None:
            for p in self.parameters():
                nn.init.normal_(p, 0.0, init_std)


@contextmanager
def _seeded_init(seed: int | None) -> Iterator[None]:
    """Seed torch's RNG for weight initialisation (when ``seed`` is set) and restore it after."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _normalise_ints(cfg: Any, names: Sequence[str], minimum: dict[str, int]) -> None:
    cls = type(cfg).__name__
    for name in names:
        setattr(cfg, name, check_positive_int(getattr(cfg, name), f"{cls}.{name}",
                                              minimum.get(name, 1)))


@dataclass
class VAEConfig(_DecoderOptions):
    r"""Hyper-parameters of :class:`VAE`. Defaults: the PyTorch example (784-400-20, ReLU).

    The paper's settings (Kingma & Welling 2014, Sec. 5 and App. C): ``activation="tanh"``,
    ``init_std=0.01`` (the paper writes :math:`\mathcal N(0, 0.01)`, read here as standard
    deviation 0.01, as most re-implementations do), one hidden layer of 500 (MNIST) or 200 (Frey Face) units,
    ``likelihood="gaussian"`` with ``decoder_mean="sigmoid"`` for Frey Face.

    Gaussian decoder options (at most one of the three variance options):

    * ``decoder_mean``: ``"sigmoid"`` (the paper; data must lie in [0, 1]) or ``"identity"``
      (unbounded data);
    * ``decoder_logvar``: one fixed :math:`\log\sigma^2` for every pixel instead of a learned
      :math:`\log\sigma_d^2(z)` — a learned variance can shrink towards zero on pixels that are
      easy to predict, and the density, and with it the ELBO, then grows without bound;
    * ``decoder_logvar_bounds``: a learned :math:`\log\sigma_d^2(z)` clamped into ``(low, high)``;
    * ``decoder_variance_floor``: :math:`\sigma_d^2 = \text{floor} + e^{\text{output}}`.

    ``seed`` makes the initial weights reproducible: ``VAE(VAEConfig(..., seed=0))`` twice gives
    the same weights (``None``: torch's global random state, as for any ``nn.Module``).
    """

    x_dim: int = 784  # D, numbers per example (28 x 28 for MNIST, 28 x 20 for Frey Face)
    hidden_dim: int = 400  # units per hidden layer (the paper: 500 MNIST, 200 Frey Face)
    z_dim: int = 20  # J, latent dimensions (2 for the manifold figures)
    likelihood: str = "bernoulli"  # "bernoulli" (logits) or "gaussian" (mean and log-variance)
    activation: str = "relu"  # hidden activation; the paper used "tanh"
    num_hidden_layers: int = 1  # hidden layers in encoder and decoder each (0: affine maps)
    init_std: float | None = None  # N(0, init_std^2) init of every weight and bias; None: PyTorch's
    seed: int | None = None  # seed of the initial weights; None: torch's global RNG

    def __post_init__(self) -> None:
        _normalise_ints(self, ("x_dim", "hidden_dim", "z_dim", "num_hidden_layers"),
                        {"num_hidden_layers": 0})
        _check_decoder_options(self, "VAEConfig")
        _activation(self.activation)
        if self.init_std is not None:
            self.init_std = check_number(self.init_std, "VAEConfig.init_std", positive=True,
                                         hint=" Use None for PyTorch's default initialisation.")
        if self.seed is not None:
            self.seed = check_positive_int(self.seed, "VAEConfig.seed", minimum=0)


class VAE(_LatentVariableModel):
    r"""The variational autoencoder of Kingma & Welling (2014), with MLP encoder and decoder.

    ``encode(x)`` gives the parameters of :math:`q_\phi(z|x)`; ``decode(z)`` the mean image
    :math:`\hat x = \mathbb E[x|z]`; ``log_px_given_z(x, z)`` the log-likelihood
    :math:`\log p_\theta(x|z)` summed over pixels. The ELBO itself lives in
    :func:`vaelib.objectives.elbo`.

    Args:
        config: a :class:`VAEConfig` (default: the 784-400-20 model).
        **overrides: fields of the config to replace, e.g. ``VAE(config, z_dim=2)``.

    Example:
        >>> model = VAE(VAEConfig(x_dim=784, hidden_dim=400, z_dim=2, seed=0))
        >>> mu, logvar = model.encode(torch.rand(5, 784))
        >>> mu.shape
        torch.Size([5, 2])
    """

    def __init__(self, config: VAEConfig | None = None, **overrides: object) -> None:
        super().__init__()
        config = VAEConfig(**{**asdict(config or VAEConfig()), **overrides})
        self.config = config
        self.check_inputs = True
        hidden = [config.hidden_dim] * config.num_hidden_layers
        with _seeded_init(config.seed):
            # encoder: x -> (mu, logvar), 2J outputs
            self.encoder = MLP(config.x_dim, hidden, 2 * config.z_dim, config.activation)
            # decoder: z -> logits (Bernoulli, D outputs) or (mean, logvar) (Gaussian, 2D; D
            # when the log-variance is fixed by config.decoder_logvar)
            out = config.x_dim * (2 if self._learns_logvar() else 1)
            self.decoder = MLP(config.z_dim, hidden, out, config.activation)
            self._init_weights(config.init_std)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.config.x_dim,)

    def _encoder_out(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def _decoder_out(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


@dataclass
class ConvVAEConfig(_DecoderOptions):
    r"""Hyper-parameters of :class:`ConvVAE`, a convolutional VAE for small square images.

    Encoder: two stride-2 convolutions (4 × 4 kernels) with ``channels`` output channels, then an
    affine map to ``2J``; decoder: the mirror image with transposed convolutions. The image side
    must be divisible by 4 (28 × 28 MNIST digits: 28 → 14 → 7).
    """

    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of one example
    z_dim: int = 16  # J, latent dimensions
    channels: tuple[int, int] = (32, 64)  # output channels of the two convolutions
    hidden_dim: int = 256  # units of the affine layer between the convolutions and z
    likelihood: str = "bernoulli"
    seed: int | None = None  # seed of the initial weights; None: torch's global RNG

    def __post_init__(self) -> None:
        try:
            self.image_shape = tuple(check_positive_int(s, "ConvVAEConfig.image_shape")
                                     for s in self.image_shape)
            self.channels = tuple(check_positive_int(s, "ConvVAEConfig.channels")
                                  for s in self.channels)
        except TypeError as err:
            raise ValueError("ConvVAEConfig.image_shape and channels must be tuples of "
                             "integers.") from err
        if len(self.image_shape) != 3 or len(self.channels) != 2:
            raise ValueError(
                "ConvVAEConfig.image_shape must be (C, H, W) and channels a pair, got "
                f"{self.image_shape} and {self.channels}."
            )
        _, h, w = self.image_shape
        if h % 4 or w % 4:
            raise ValueError(
                f"ConvVAEConfig.image_shape: height and width must be divisible by 4 (two "
                f"stride-2 convolutions), got {h} x {w}; pad or crop the images, e.g. to 28 x 28."
            )
        _normalise_ints(self, ("z_dim", "hidden_dim"), {})
        _check_decoder_options(self, "ConvVAEConfig")
        if self.seed is not None:
            self.seed = check_positive_int(self.seed, "ConvVAEConfig.seed", minimum=0)


class ConvVAE(_LatentVariableModel):
    r"""A convolutional VAE for images ``(B, C, H, W)``: the same protocol and likelihoods as
    :class:`VAE`, with convolutions instead of dense layers (data are image-shaped, not flat).

    Example:
        >>> model = ConvVAE(ConvVAEConfig(image_shape=(1, 28, 28), z_dim=8, seed=0))
        >>> model.encode(torch.rand(5, 1, 28, 28))[0].shape
        torch.Size([5, 8])
    """

    def __init__(self, config: ConvVAEConfig | None = None, **overrides: object) -> None:
        super().__init__()
        config = ConvVAEConfig(**{**asdict(config or ConvVAEConfig()), **overrides})
        self.config = config
        self.check_inputs = True
        c, h, w = config.image_shape
        c1, c2 = config.channels
        self._feature_shape = (c2, h // 4, w // 4)
        features = c2 * (h // 4) * (w // 4)
        out_channels = c * (2 if self._learns_logvar() else 1)
        with _seeded_init(config.seed):
            self.encoder = nn.Sequential(
                nn.Conv2d(c, c1, 4, stride=2, padding=1), nn.ReLU(),  # H/2
                nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),  # H/4
                nn.Flatten(),
                nn.Linear(features, config.hidden_dim), nn.ReLU(),
                nn.Linear(config.hidden_dim, 2 * config.z_dim),
            )
            self.decoder = nn.Sequential(
                nn.Linear(config.z_dim, config.hidden_dim), nn.ReLU(),
                nn.Linear(config.hidden_dim, features), nn.ReLU(),
                nn.Unflatten(1, self._feature_shape),
                nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),  # H/2
                nn.ConvTranspose2d(c1, out_channels, 4, stride=2, padding=1),  # H
            )

    @property
    def x_shape(self) -> tuple[int, ...]:
        return tuple(self.config.image_shape)

    def _encoder_out(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def _decoder_out(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, self.z_dim))  # (prod(lead), C or 2C, H, W)
        if self._learns_logvar():  # channels [0, C) are means, [C, 2C) log-variances
            mean, logvar = out.chunk(2, dim=1)
            out = torch.cat([mean.flatten(1), logvar.flatten(1)], dim=-1)
        else:
            out = out.flatten(1)
        return out.reshape(*lead, -1)


MODEL_CLASSES: dict[str, tuple[type[nn.Module], type]] = {
    "VAE": (VAE, VAEConfig),
    "ConvVAE": (ConvVAE, ConvVAEConfig),
}


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as a dict of plain values (tuples become lists) for saving."""
    return {f.name: (list(v) if isinstance(v := getattr(config, f.name), tuple) else v)
            for f in fields(config)}
