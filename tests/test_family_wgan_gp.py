"""WGAN-GP (Gulrajani et al. 2017): the preset, the gradient penalty in the critic loss, no
batch norm and no clipping."""

from __future__ import annotations

import pytest
import torch

from gankit.losses import gradient_penalty
from gankit.nets.critic import DCGANCritic
from gankit.training import Trainer
from tests.conftest import tiny_config
from tests.test_family_wgan import _critic_loss_and_grads, _phase, _preset_objective, _trainer_phase


def test_wgan_gp_preset_follows_algorithm_1():
    preset = _preset_objective("wgan-gp")
    objective = preset[1]
    critic, generator = _phase(preset, "critic"), _phase(preset, "generator")
    for phase in (critic, generator):
        assert (phase.optimizer, phase.lr, phase.betas) == ("adam", 1e-4, (0.0, 0.9))
    assert critic.repeats == 5 and objective.model_cfg.gp_lambda == 10.0


def test_gradient_penalty_is_in_the_critic_loss_with_weight_lambda(tmp_path):
    trainer = Trainer(tiny_config("wgan-gp", "model.gp_lambda=10"), tmp_path)
    objective, batch = trainer.objective, next(trainer.loader)
    with_penalty, stats, grads_with = _critic_loss_and_grads(objective, batch, seed=3)
    objective.model_cfg.gp_lambda = 0.0
    without, _, grads_without = _critic_loss_and_grads(objective, batch, seed=3)
    # The same draws (fakes first, then eps) computed independently:
    torch.manual_seed(3)
    real = batch["image"]
    fake = objective.generate(objective.sample_inputs(real.shape[0]))
    penalty = gradient_penalty(objective.networks["critic"], real, fake)
    assert penalty.item() > 0
    assert (with_penalty - without).item() == pytest.approx(10 * penalty.item(), rel=1e-4)
    assert stats["gradient_penalty"].item() == pytest.approx(penalty.item(), rel=1e-5)
    assert any(not torch.allclose(a, b) for a, b in zip(grads_with, grads_without, strict=True))


def test_wgan_gp_critic_has_no_batch_norm_and_is_never_clipped(tmp_path):
    trainer = Trainer(tiny_config("wgan-gp", "train.lr_d=0.1", "model.critic_steps=1"), tmp_path)
    critic = trainer.objective.networks["critic"]
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    trainer.run_phase(_trainer_phase(trainer, "critic"))
    assert max(p.detach().abs().max().item() for p in critic.parameters()) > 0.01


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_penalty_critics_score_each_image_independently_of_its_batch(norm):
    critic = DCGANCritic(resolution=16, channels=1, width=4, norm=norm).train()
    images = torch.randn(4, 1, 16, 16)
    alone = torch.cat([critic(images[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(critic(images), alone)
