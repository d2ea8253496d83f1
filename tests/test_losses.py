"""The loss library against hand-computed values; the gradient penalty is per sample and trains."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gankit.losses import (
    drift_penalty,
    gradient_penalty,
    hinge_discriminator_loss,
    hinge_generator_loss,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)

REAL = torch.tensor([2.0, -1.0, 0.5])
FAKE = torch.tensor([0.5, -3.0])


def test_wasserstein_losses():
    # E[D(G(z))] - E[D(x)] = (0.5 - 3) / 2 - (2 - 1 + 0.5) / 3 = -1.25 - 0.5
    assert wasserstein_critic_loss(REAL, FAKE).item() == pytest.approx(-1.75)
    assert wasserstein_generator_loss(FAKE).item() == pytest.approx(1.25)


def test_drift_penalty_is_the_mean_squared_real_score():
    assert drift_penalty(REAL).item() == pytest.approx((4 + 1 + 0.25) / 3)


def test_least_squares_losses_with_the_0_1_1_and_minus1_1_0_codings():
    # 1/2 mean((x - 1)^2) = 1/2 (1 + 4 + 0.25) / 3; 1/2 mean(f^2) = 1/2 (0.25 + 9) / 2
    expected = 0.5 * 5.25 / 3 + 0.5 * 9.25 / 2
    assert least_squares_discriminator_loss(REAL, FAKE).item() == pytest.approx(expected)
    # a = -1, b = 1: 1/2 mean((f + 1)^2) = 1/2 (2.25 + 4) / 2
    expected = 0.5 * 5.25 / 3 + 0.5 * 6.25 / 2
    assert least_squares_discriminator_loss(REAL, FAKE, a=-1, b=1).item() == pytest.approx(expected)
    assert least_squares_generator_loss(FAKE).item() == pytest.approx(0.5 * (0.25 + 16) / 2)
    assert least_squares_generator_loss(FAKE, c=0).item() == pytest.approx(0.5 * 9.25 / 2)


def test_hinge_losses():
    # relu(1 - x) = [0, 2, 0.5] -> 2.5 / 3; relu(1 + f) = [1.5, 0] -> 0.75
    assert hinge_discriminator_loss(REAL, FAKE).item() == pytest.approx(2.5 / 3 + 0.75)
    assert hinge_generator_loss(FAKE).item() == pytest.approx(1.25)


def test_losses_are_computed_in_fp32():
    half = REAL.to(torch.bfloat16)
    for loss in (
        wasserstein_critic_loss(half, half),
        least_squares_discriminator_loss(half, half),
        hinge_discriminator_loss(half, half),
        drift_penalty(half),
    ):
        assert loss.dtype == torch.float32


class Linear(nn.Module):
    """D(x) = <w, x> + bias on (N, 1, 2, 2) images: its input gradient is w for every sample."""

    def __init__(self, weight: list[float]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(weight).view(1, 1, 2, 2))
        self.bias = nn.Parameter(torch.tensor(0.3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images * self.weight).flatten(1).sum(1) + self.bias


def test_gradient_penalty_of_a_linear_critic_is_closed_form_and_trains_it():
    critic = Linear([2.0, -1.0, 2.0, 0.0])  # ||w|| = 3
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    penalty = gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx((3 - 1) ** 2)
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||, whatever the interpolates
    penalty.backward()
    expected = 2 * (3 - 1) * critic.weight.detach() / 3
    torch.testing.assert_close(critic.weight.grad, expected)


def test_gradient_penalty_norm_is_per_sample_over_all_pixels():
    # D(x) = 1/2 ||x||^2 has gradient x; with real == fake every interpolate is that sample.
    critic = lambda images: 0.5 * images.square().flatten(1).sum(1)  # noqa: E731
    samples = torch.zeros(2, 1, 2, 2)
    samples[0].fill_(1.0)  # norm over C, H, W: sqrt(4) = 2
    samples[1, 0, 0, 0] = 0.5  # norm 0.5
    penalty = gradient_penalty(critic, samples, samples)
    expected = ((2 - 1) ** 2 + (0.5 - 1) ** 2) / 2  # the mean of the two samples' penalties
    assert penalty.item() == pytest.approx(expected)
    per_pixel = (samples.abs() - 1).square().mean()  # the wrong, per-pixel version differs
    assert not math.isclose(penalty.item(), per_pixel.item(), rel_tol=1e-3)


def test_gradient_penalty_draws_one_eps_per_sample_from_the_given_generator():
    seen: list[torch.Tensor] = []

    def critic(images: torch.Tensor) -> torch.Tensor:
        seen.append(images.detach().clone())
        return images.flatten(1).sum(1)

    fake = torch.randn(6, 3, 4, 4)
    real = fake + 2.0  # real - fake = 2 everywhere: eps is recovered exactly
    gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    eps = (seen[0] - fake) / (real - fake)  # xhat = eps * real + (1 - eps) * fake
    per_sample = eps.flatten(1)
    torch.testing.assert_close(per_sample, per_sample[:, :1].expand_as(per_sample))
    assert ((per_sample >= 0) & (per_sample <= 1)).all()
    assert per_sample[:, 0].std() > 0  # different samples, different eps
    gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(seen[0], seen[1])  # the same generator, the same interpolates


def test_gradient_penalty_accepts_a_critic_with_extra_inputs():
    critic = nn.Linear(4 + 2, 1)
    labels = torch.tensor([0, 1])

    def conditioned(images: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(labels, 2).float()
        return critic(torch.cat([images.flatten(1), onehot], 1))

    penalty = gradient_penalty(conditioned, torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2))
    penalty.backward()
    assert critic.weight.grad is not None and critic.weight.grad[:, :4].abs().sum() > 0


def test_gradient_penalty_runs_its_critic_pass_in_fp32_under_autocast():
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(),
                                 torch.nn.Linear(8, 1))  # fmt: skip
    real, fake = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    dtypes = []
    hook = critic[1].register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    exact = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert critic(real).dtype == torch.bfloat16  # autocast is on outside the penalty
        under_autocast = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    hook.remove()
    assert dtypes == [torch.float32, torch.bfloat16, torch.float32]
    assert under_autocast.item() == exact.item()
