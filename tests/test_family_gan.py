"""GAN (Goodfellow et al. 2014): the value function's losses, the generator-loss option, MLPs."""

from __future__ import annotations

import math

import pytest
import torch

from gankit.losses import (
    bce_discriminator_loss,
    minimax_generator_loss,
    non_saturating_generator_loss,
)
from gankit.nets import MLPDiscriminator, MLPGenerator
from gankit.training import Trainer
from tests.conftest import tiny_config


def test_mlp_networks_shapes():
    generator = MLPGenerator(10, (1, 12, 12), hidden=(16, 32))
    discriminator = MLPDiscriminator((1, 12, 12), hidden=(32, 16))
    images = generator(torch.randn(5, 10))
    assert images.shape == (5, 1, 12, 12)
    assert discriminator(images).shape == (5,)


def test_bce_discriminator_loss_matches_the_value_function():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    assert bce_discriminator_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)


def test_label_smoothing_moves_only_the_real_target():
    real, fake = torch.tensor([2.0]), torch.tensor([0.5])
    smoothed = bce_discriminator_loss(real, fake, real_target=0.9).item()
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected = -(0.9 * torch.log(d_real) + 0.1 * torch.log(1 - d_real)) - torch.log(1 - d_fake)
    assert smoothed == pytest.approx(expected.item(), rel=1e-6)


def test_generator_losses():
    logits = torch.tensor([1.5, -0.5])
    d = torch.sigmoid(logits)
    assert minimax_generator_loss(logits).item() == pytest.approx(
        torch.log(1 - d).mean().item(), rel=1e-6
    )
    assert non_saturating_generator_loss(logits).item() == pytest.approx(
        -torch.log(d).mean().item(), rel=1e-6
    )
    # The non-saturating loss keeps a strong gradient where D confidently rejects the fakes.
    weak = torch.tensor([-8.0], requires_grad=True)
    (minimax_grad,) = torch.autograd.grad(minimax_generator_loss(weak), weak)
    (ns_grad,) = torch.autograd.grad(non_saturating_generator_loss(weak), weak)
    assert abs(ns_grad.item()) > 100 * abs(minimax_grad.item())


@pytest.mark.parametrize("choice", ["minimax", "non-saturating"])
def test_gan_generator_loss_option_is_used(choice, tmp_path):
    trainer = Trainer(tiny_config("gan", f"model.generator_loss={choice}"), tmp_path)
    torch.manual_seed(0)
    loss, _ = trainer.objective.loss("generator", None)
    torch.manual_seed(0)
    fake_logits = trainer.objective.networks["discriminator"](
        trainer.objective.generate(trainer.objective.sample_inputs(trainer.cfg.train.batch_size))
    )
    reference = minimax_generator_loss if choice == "minimax" else non_saturating_generator_loss
    assert loss.item() == pytest.approx(reference(fake_logits).item(), rel=1e-5)
    assert math.copysign(1, loss.item()) == (-1 if choice == "minimax" else 1)
