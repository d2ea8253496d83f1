"""WGAN-GP: Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville 2017, "Improved Training of
Wasserstein GANs".

Weight clipping is replaced by a gradient penalty on the critic (eq. 3):
    L = E_z[D(G(z))] - E_x[D(x)] + lambda * E_xhat[(||grad_xhat D(xhat)||_2 - 1)^2],
with xhat = eps * x + (1 - eps) * G(z), eps ~ U[0, 1] per sample (Algorithm 1, lines 4-7) and
lambda = 10. The generator minimises -E_z[D(G(z))] (lines 11-12). Algorithm 1's defaults:
n_critic = 5, Adam with alpha = 1e-4, beta1 = 0, beta2 = 0.9 (set in the presets' train section).

The critic has no batch norm (section 4: the penalty is per input, batch norm couples the inputs of
a batch); by default it uses layer normalisation, the paper's recommended replacement
(``critic_norm=none``: no normalisation, like the authors' MNIST model). No weight clipping.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from gankit.losses import gradient_penalty
from gankit.objectives.registry import OBJECTIVES
from gankit.objectives.wgan import Wasserstein, WassersteinConfig


class WGANGPConfig(WassersteinConfig):
    gp_lambda: float = Field(10.0, ge=0)  # lambda: weight of the gradient penalty (eq. 3)
    critic_norm: Literal["layer", "none"] = "layer"  # in the critic: layer norm or none, never BN


@OBJECTIVES.register("wgan-gp")
class WGANGP(Wasserstein):
    """The Wasserstein critic and generator losses, with a gradient penalty (no weight
    clipping, no batch norm in the critic)."""

    Config = WGANGPConfig
    description = "Gulrajani et al. 2017: Wasserstein critic + gradient penalty (lambda 10), no BN"

    def critic_loss(self, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 3 on real: (N, C, H, W) in [-1, 1] and as many fresh fakes (global RNG)."""
        fake = self.fake_images(real.shape[0])
        loss, stats = self.wasserstein_terms(real, fake)
        gp_lambda = self.model_cfg.gp_lambda
        if gp_lambda > 0:  # lambda = 0 is plain WGAN without any Lipschitz constraint
            penalty = gradient_penalty(self.networks["critic"], real, fake)
            loss = loss + gp_lambda * penalty
            stats |= {"gradient_penalty": penalty.detach(), "loss_critic": loss.detach()}
        return loss, stats
