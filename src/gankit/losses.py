"""Adversarial losses shared by several families, each one line of the paper's math.

``logits`` are the discriminator's raw outputs, D(x) = sigmoid(logits). softplus(-l) = -log D and
softplus(l) = -log(1 - D), computed stably in fp32. ``scores`` are raw outputs with no sigmoid
(a WGAN critic, an LSGAN or hinge discriminator). Every loss is computed in fp32.
"""

from __future__ import annotations

from collections.abc import Callable

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


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[D(G(z))] - E[D(x)]: the critic's loss (Arjovsky et al. 2017, Algorithm 1, line 6).

    real_scores, fake_scores: the critic's raw scores (any shape, e.g. (N,) or (N, 1)), no sigmoid.
    Minimising it maximises E[D(x)] - E[D(G(z))], the Wasserstein-1 estimate (eq. 3) when D is
    1-Lipschitz.
    """
    return fake_scores.float().mean() - real_scores.float().mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]: the generator's loss (Arjovsky et al. 2017, Algorithm 1, line 11)."""
    return -fake_scores.float().mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """E[(||grad_xhat D(xhat)||_2 - 1)^2] (Gulrajani et al. 2017, eq. 3, without the lambda).

    xhat = eps * real + (1 - eps) * fake with one eps ~ U[0, 1] per sample (Algorithm 1, lines 4-6).
    The norm is per sample over all of C, H, W; the graph is kept (create_graph) so the penalty
    trains the critic. Returns the unweighted mean over the batch: callers multiply by lambda.

    critic: maps (N, C, H, W) images to (N,) or (N, 1) scores; bind extra inputs (e.g. labels) with
    a lambda or functools.partial. Its pass here runs in fp32 even under autocast: the gradient
    norm and its second derivative are where reduced precision would bias the penalty.
    real, fake: (N, C, H, W); fake is detached here.
    generator: the RNG for eps (None: the global one).
    """
    real, fake = real.detach().float(), fake.detach().float()
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, generator=generator, device=real.device, dtype=real.dtype)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    with torch.autocast(real.device.type, enabled=False):  # the penalty in fp32 on any fast path
        scores = critic(mixed)
        (grad,) = torch.autograd.grad(scores.float().sum(), mixed, create_graph=True)
        grad_norm = grad.float().flatten(1).norm(2, dim=1)
        return ((grad_norm - 1) ** 2).mean()


def drift_penalty(real_scores: torch.Tensor) -> torch.Tensor:
    """E[D(x)^2]: keeps the critic's scores near 0 (Karras et al. 2018, appendix A.1).

    The caller multiplies by epsilon_drift (0.001 in the paper).
    """
    return real_scores.float().square().mean()


def least_squares_discriminator_loss(
    real_scores: torch.Tensor, fake_scores: torch.Tensor, a: float = 0.0, b: float = 1.0
) -> torch.Tensor:
    """1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2] (Mao et al. 2017, LSGAN, eq. 2).

    The a-b-c coding: a is the target for fakes, b for reals, c (in the generator loss) the value G
    wants D to believe for fakes. a=-1, b=1, c=0 satisfies b - c = 1, b - a = 2 and makes the
    objective minimise the Pearson chi^2 divergence (eq. 8); a=0, b=1, c=1 (eq. 9, the default)
    makes G generate samples as real as possible. Scores are raw (no sigmoid).
    """
    real_scores, fake_scores = real_scores.float(), fake_scores.float()
    return 0.5 * (real_scores - b).square().mean() + 0.5 * (fake_scores - a).square().mean()


def least_squares_generator_loss(fake_scores: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """1/2 E[(D(G(z)) - c)^2] (Mao et al. 2017, eq. 2; c = 1 in eq. 9, c = 0 in eq. 8)."""
    return 0.5 * (fake_scores.float() - c).square().mean()


def hinge_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018, eq. 16)."""
    real_scores, fake_scores = real_scores.float(), fake_scores.float()
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]: the generator's side of the hinge loss (Miyato et al. 2018, eq. 17)."""
    return -fake_scores.float().mean()
