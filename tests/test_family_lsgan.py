"""LSGAN: the least-squares losses with the configured a-b-c coding, and the paper's settings."""

from __future__ import annotations

import pytest
import torch

from gankit.config import load_yaml, preset_path
from gankit.objectives import OBJECTIVES
from gankit.resolve import build_config
from gankit.training import Trainer
from gankit.training.optim import resolve_phase
from tests.conftest import tiny_config


def test_lsgan_preset_uses_the_0_1_1_coding_and_adam():
    cfg = build_config(load_yaml(preset_path("lsgan", "mnist")), family="lsgan")
    objective = OBJECTIVES.get("lsgan")(cfg)
    m = objective.model_cfg
    assert (m.a, m.b, m.c) == (0.0, 1.0, 1.0)
    for phase in objective.phases():
        phase = resolve_phase(phase, cfg.train)
        assert (phase.optimizer, phase.lr, phase.betas) == ("adam", 2e-4, (0.5, 0.999))


@pytest.mark.parametrize(("a", "b", "c"), [(0.0, 1.0, 1.0), (-1.0, 1.0, 0.0)])
def test_losses_are_least_squares_with_the_configured_targets(a, b, c, tmp_path):
    cfg = tiny_config("lsgan", f"model.a={a}", f"model.b={b}", f"model.c={c}")
    trainer = Trainer(cfg, tmp_path)
    objective, batch = trainer.objective, next(trainer.loader)
    discriminator, real = objective.networks["discriminator"], batch["image"]
    torch.manual_seed(0)
    loss, stats = objective.loss("discriminator", batch)
    torch.manual_seed(0)
    fake = objective.generate(objective.sample_inputs(real.shape[0]))
    real_scores, fake_scores = discriminator(real), discriminator(fake)
    expected = 0.5 * ((real_scores - b) ** 2).mean() + 0.5 * ((fake_scores - a) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert stats["d_real"].item() == pytest.approx(real_scores.mean().item(), rel=1e-5, abs=1e-6)
    torch.manual_seed(1)
    loss, _ = objective.loss("generator", None)
    torch.manual_seed(1)
    fake = objective.generate(objective.sample_inputs(trainer.cfg.train.batch_size))
    expected = 0.5 * ((discriminator(fake) - c) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_targets_change_the_loss(tmp_path):
    losses = []
    for a in (0.0, -1.0):
        trainer = Trainer(tiny_config("lsgan", f"model.a={a}"), tmp_path / str(a))
        torch.manual_seed(0)
        losses.append(trainer.objective.loss("discriminator", next(trainer.loader))[0].item())
    assert losses[0] != pytest.approx(losses[1])


@pytest.mark.parametrize("resolution", [16, 32])
def test_lsgan_images_and_scores_shapes(resolution, tmp_path):
    cfg = tiny_config("lsgan", f"data.resolution={resolution}")
    objective = Trainer(cfg, tmp_path).objective
    images = objective.sample(3, seed=0)
    assert images.shape == (3, 1, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1
    assert objective.networks["discriminator"](images).shape == (3,)
