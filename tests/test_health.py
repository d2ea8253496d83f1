"""Health warnings: mode collapse from the fixed-noise samples' diversity, and a discriminator
that wins every time, from the d_accuracy the families log."""

from __future__ import annotations

import pytest
import torch

from gankit.objectives import OBJECTIVES
from gankit.objectives.base import discriminator_accuracy
from gankit.training import Trainer
from gankit.training.health import HealthMonitor, diversity
from tests.conftest import tiny_config


def test_discriminator_accuracy():
    real, fake = torch.tensor([2.0, 1.0, -1.0, 3.0]), torch.tensor([-2.0, -1.0, 0.5, -3.0])
    assert discriminator_accuracy(real, fake).item() == pytest.approx((3 / 4 + 3 / 4) / 2)
    assert discriminator_accuracy(real + 10, fake + 10, threshold=None).item() == 0.75
    assert discriminator_accuracy(real, fake, threshold=5.0).item() == 0.5


def test_diversity_is_zero_for_identical_samples():
    image = torch.rand(1, 1, 8, 8)
    assert diversity(image.expand(5, -1, -1, -1)) == 0
    assert diversity(torch.rand(5, 1, 8, 8)) > 0.2


def test_the_monitor_warns_once_per_episode_after_the_warmup():
    monitor = HealthMonitor(real_diversity=0.5, total_steps=2000)  # warm-up: 200 steps
    assert monitor.check_samples(150, 0.01) is None
    assert "mode collapse" in monitor.check_samples(200, 0.1)
    assert monitor.check_samples(300, 0.1) is None  # still collapsed: no repeat
    assert monitor.check_samples(400, 0.9) is None
    assert monitor.check_samples(500, 0.1) is not None  # a new episode
    warnings = [monitor.check_stats(step, {"d_accuracy": 1.0}) for step in (200, 300, 400, 500)]
    assert HealthMonitor(0.5, total_steps=10).warmup == 100
    assert warnings[:2] == [None, None] and "discriminator wins" in warnings[2]
    assert warnings[3] is None


@pytest.mark.parametrize("family", OBJECTIVES.names())
def test_every_discriminator_phase_logs_its_accuracy(family, tmp_path):
    if OBJECTIVES.get(family).task != "generate":
        pytest.skip("translators log their own D statistics")
    trainer = Trainer(tiny_config(family), tmp_path)
    phase = trainer.phases[0]
    trainer.run_phase(phase)
    means = trainer.stats.read(trainer.dist)
    assert "d_accuracy" in means, sorted(means)
    assert 0 <= means["d_accuracy"] <= 1


def test_a_collapsed_generator_is_reported_in_the_log(tmp_path):
    cfg = tiny_config("dcgan", "train.steps=110", "train.sample_every=110", "train.log_every=110")
    trainer = Trainer(cfg, tmp_path)
    generator = trainer.objective.networks["generator"]
    generator.register_forward_hook(lambda module, args, out: out[:1].expand_as(out).clone())
    trainer.fit()
    assert "possible mode collapse" in (tmp_path / "log.txt").read_text()
