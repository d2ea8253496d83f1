"""Adversarial losses shared by several families, each one line of the paper's math.

``logits`` are the discriminator's raw outputs, D(x) = sigmoid(logits). softplus(-l) = -log D and
softplus(l) = -log(1 - D), computed stably in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_target: float = 1.0
) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] (Goodfellow et al. 2014, eq. 1, as a loss to minimise).

    real_target < 1 is one-sided label smoothing (Salimans et al. 2016, section 3.4): the real term
    becomes the cross-entropy against ``real_target``; fakes keep the target 0.
    """
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    real_term = real_target * F.softplus(-real_logits) + (1 - real_target) * F.softplus(real_logits)
    return real_term.mean() + F.softplus(fake_logits).mean()


def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))]: the generator's side of eq. 1 in Goodfellow et al. 2014 (saturates)."""
    return -F.softplus(fake_logits.float()).mean()


def non_saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))]: Goodfellow et al. 2014, section 3; strong gradients early in training."""
    return F.softplus(-fake_logits.float()).mean()
