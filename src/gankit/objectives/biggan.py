"""BigGAN: Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural Image Synthesis",
scaled down to small data.

SAGAN (Zhang et al. 2019: ResNets with self-attention, spectral norm in G and D, hinge loss
L_D = E[relu(1 - D(x, y))] + E[relu(1 + D(G(z), y))], L_G = -E[D(G(z), y)], projection D) with
the paper's additions (section 3 and appendix B):

- a shared class embedding and a hierarchical latent: z is split into one chunk per generator
  block plus one for the first linear layer; each block's conditional batch norm takes gains and
  biases from a linear map of [z_chunk, shared_embedding(y)] (gain = 1 + W_gamma c);
- orthogonal regularisation of G (eq. 3), at the authors' code's scale: beta / 2 *
  ||W W^T (.) (1 - I)||_F^2 summed over G's conv/linear weights and added to G's loss, whose
  gradient beta * 2 (W W^T (.) (1 - I)) W is what their code adds to each weight's gradient; the
  paper's beta * ||.||_F^2 would have twice that gradient at the same beta = 1e-4 (``ortho_beta``);
- orthogonal initialisation (section 3), Adam lr_G = 1e-4, lr_D = 4e-4, (beta1, beta2) =
  (0, 0.999) and 2 D steps per G step (appendix C: their 128x128 setting);
- an EMA of G's weights for sampling (appendix C; decay 0.9999 there, 0.999 in gankit's presets
  for runs of thousands rather than hundreds of thousands of steps);
- the truncation trick at sampling (section 3.1): ``truncation=t`` (any t > 0) draws z ~ N(0, I)
  and redraws every entry with |z| > t until none is left (a normal truncated to [-t, t]); t < 1
  trades variety for fidelity, t > 1 approaches plain N(0, I).

Not reproduced: cross-replica (synchronised) BN, the 2x2 max-pool of keys/values in attention,
"standing statistics", and the EMA's 20k-step delay. ``conditional: false`` keeps the hierarchical
latent (the condition vector is the z chunk alone) and drops the shared embedding and projection.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils import parametrize

from gankit.errors import GankitError
from gankit.nets.resnet import ResNetDiscriminator, ResNetGenerator
from gankit.objectives.registry import OBJECTIVES
from gankit.objectives.sagan import SAGANConfig
from gankit.objectives.sngan import SNGAN


class BigGANConfig(SAGANConfig):
    latent_dim: int = Field(120, ge=1)  # length of z, split into (blocks + 1) chunks
    d_steps: int = Field(2, ge=1)  # discriminator steps per generator step
    shared_dim: int = Field(128, ge=1)  # size of the shared class embedding
    hierarchical: bool = True  # z chunks condition each block's batch norm
    ortho_beta: float = Field(1e-4, ge=0)  # beta of the orthogonal regularisation (eq. 3); 0: off


def raw_weight(layer: nn.Module) -> torch.Tensor:
    """The trained weight of a layer: the one under its spectral norm when it has one."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def off_diagonal_gram_energy(weight: torch.Tensor) -> torch.Tensor:
    """||W W^T (.) (1 - I)||_F^2 for weight (out, ...) flattened to W (out, k), in fp32.

    Each row of W is a filter, so W W^T holds the filters' inner products (the paper's W^T W,
    whose columns are filters). Computed as ||W^T W||_F^2 - sum_i ||w_i||^4 when out > k (both
    Gram matrices have the same Frobenius norm), so a wide linear layer never builds an
    (out x out) matrix.
    """
    w = weight.flatten(1).float()
    gram = w.T @ w if w.shape[0] > w.shape[1] else w @ w.T
    return gram.square().sum() - w.square().sum(1).square().sum()


def orthogonal_regularization(network: nn.Module) -> torch.Tensor:
    """1/2 sum_W ||W W^T (.) (1 - I)||_F^2 over the conv/linear weights W (out, k) of ``network``
    (Brock et al. 2019, eq. 3, without beta): a scalar fp32 tensor on the network's device.

    The factor 1/2 matches the authors' code (BigGAN-PyTorch ``utils.ortho``), which skips the
    loss and adds beta * 2 (W W^T (.) (1 - I)) W to each weight's gradient: that is exactly the
    gradient of beta times this sum (the paper's eq. 3 without the 1/2 has twice the gradient).
    The weights regularised are the raw ones under spectral norm (as in the authors' code);
    embeddings (the shared class embedding, which their code leaves out) and norm gains are not
    conv/linear weights.
    """
    device = next(network.parameters()).device
    with torch.autocast(device.type, enabled=False):  # Gram matrices in fp32 under AMP
        terms = [
            off_diagonal_gram_energy(raw_weight(layer))
            for layer in network.modules()
            if isinstance(layer, (nn.Conv2d, nn.Linear))
        ]
    return torch.stack(terms).sum() / 2


def truncated_normal_(
    z: torch.Tensor, threshold: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Redraw, in place, every entry of z with |z| > threshold from N(0, 1) until none is left.

    Each round reads the count of outliers back (a host sync): for sampling, not training.
    """
    while True:
        outside = (z.abs() > threshold).nonzero(as_tuple=True)
        if outside[0].numel() == 0:
            return z
        z[outside] = torch.randn(
            outside[0].numel(), generator=generator, device=z.device, dtype=z.dtype
        )


@OBJECTIVES.register("biggan")
class BigGAN(SNGAN):
    """SAGAN's networks and settings (self-attention, spectral norm in G and D, TTUR) + shared
    embedding, hierarchical latent, orthogonal regularisation, truncation. It inherits SNGAN's
    hinge losses, projection D and sampling, one level deep; SAGAN adds only its networks."""

    Config = BigGANConfig
    description = "Brock et al. 2019: hierarchical z, shared embedding, ortho reg, truncation"

    def build(self) -> dict[str, nn.Module]:
        self.check_labels()
        m = self.model_cfg
        channels, resolution, _ = self.image_shape
        return {
            "generator": ResNetGenerator(
                latent_dim=m.latent_dim, resolution=resolution, channels=channels, width=m.g_width,
                num_classes=self.classes, attention_at=m.attention_at, spectral_norm=True,
                hierarchical=m.hierarchical, shared_embedding_dim=m.shared_dim,
                max_channels=m.max_channels, init="orthogonal",
            ),
            "discriminator": ResNetDiscriminator(
                resolution=resolution, channels=channels, width=m.d_width, num_classes=self.classes,
                attention_at=m.attention_at, spectral_norm=True, max_channels=m.max_channels,
                init="orthogonal",
            ),
        }  # fmt: skip

    def generator_loss(self, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-E[D(G(z), y)] + beta / 2 * sum_W ||W W^T (.) (1 - I)||_F^2 (hinge; eq. 3 at the
        authors' code's scale, see :func:`orthogonal_regularization`)."""
        adversarial = self.adversarial_generator_loss(n)
        stats = {"loss_g": adversarial.detach()}
        beta = self.model_cfg.ortho_beta
        if beta == 0:
            return adversarial, stats
        penalty = beta * orthogonal_regularization(self.networks["generator"])
        stats["ortho_penalty"] = penalty.detach()
        return adversarial + penalty, stats

    def sample_inputs(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | None = None,  # (n,) int64 classes; None: uniformly random
        truncation: float | None = None,  # t > 0: z truncated to [-t, t]; None: N(0, I)
        **conditions: Any,
    ) -> dict[str, torch.Tensor]:
        """{"z": (n, latent_dim)[, "label": (n,) int64]}; z truncated when ``truncation`` is set."""
        if truncation is not None and not truncation > 0:  # also refuses NaN
            raise GankitError(f"truncation must be > 0, got {truncation}")
        inputs = super().sample_inputs(n, generator, labels=labels, **conditions)
        if truncation is not None:
            truncated_normal_(inputs["z"], truncation, generator)
        return inputs
