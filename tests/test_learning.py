"""Slow: each family learns real MNIST, judged by a metric, not by its losses."""

from __future__ import annotations

import pytest
import torch
import yaml

from gankit.config import build_config, preset_path
from gankit.train import Trainer
from tests.conftest import SHARED_MNIST

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="needs ../shared/data/mnist"),
]

# digit-fd (n=2,000 vs the first 2,000 training digits): real MNIST test digits score about 40,
# an untrained generator thousands. Each case: model and train overrides of the family's MNIST
# preset, steps, and a threshold set from a measured run (in the comment) with some margin.
CASES: dict[str, tuple[dict, dict, int, float]] = {
    "gan": ({"latent_dim": 64}, {}, 4000, 1000.0),  # 733 measured
    "dcgan": ({"latent_dim": 64, "g_width": 32, "d_width": 32}, {}, 2500, 300.0),  # 219
    "lsgan": ({"g_width": 32, "d_width": 32}, {}, 1500, 300.0),  # 193
    "wgan": ({"g_width": 32, "critic_width": 32}, {}, 1500, 900.0),  # 865 after 300 steps
    "wgan-gp": ({"g_width": 32, "critic_width": 32}, {}, 1000, 300.0),  # 157
    "cgan": ({}, {}, 1000, 450.0),  # 223 after 800 steps on the bundled digits
    "sngan": ({"g_width": 16, "d_width": 16}, {}, 1000, 450.0),  # 291
    "sagan": ({"g_width": 16, "d_width": 16}, {}, 1000, 900.0),  # 675
    "biggan": ({"g_width": 16, "d_width": 16}, {"ema": False}, 1000, 600.0),  # 360
    "progan": ({"latent_dim": 128, "g_width": 16, "d_width": 16, "max_channels": 128,
                "steps_per_phase": 300}, {"ema": False}, 2500, 700.0),  # 481
    "cogan": ({}, {}, 1500, 900.0),  # 643 (domain A)
}  # fmt: skip


@pytest.mark.parametrize("family", sorted(CASES))
def test_family_learns_mnist_digits(family, tmp_path):
    model, train, steps, threshold = CASES[family]
    preset = yaml.safe_load(preset_path(family, "mnist").read_text())
    cfg = build_config(
        preset,
        family=family,
        data={"source": "mnist", "root": str(SHARED_MNIST)},
        model=model,
        train={**train, "steps": steps, "progress": False, "sample_every": 0,
               "checkpoint_every": 0},
        eval={"metrics": ["digit-fd"], "n": 2000},
        output={"tensorboard": False},
    )  # fmt: skip
    trainer = Trainer(cfg, tmp_path / family)
    result = trainer.fit()
    [digit_fd] = result.metrics
    print(f"{family}: digit-fd after {steps} steps = {digit_fd.value:.1f}")
    assert digit_fd.value < threshold
    if family == "cgan" or getattr(cfg.model, "conditional", False):
        assert requested_class_agreement(trainer) >= 0.8


def requested_class_agreement(trainer: Trainer) -> float:
    """The fraction of 500 samples (50 per class) that the bundled digit classifier assigns to
    the class they were generated for."""
    from gankit.metrics.digits import DigitFeatures
    from gankit.train.images import to_uint8

    labels = torch.arange(10).repeat_interleave(50)
    network = trainer.ema.shadow if trainer.ema else None
    images = trainer.objective.sample(500, network, seed=0, labels=labels)
    predicted = DigitFeatures().classify(to_uint8(images))
    agreement = (predicted == labels).float().mean().item()
    print(
        f"{trainer.cfg.family}: the classifier agrees with the requested class on {agreement:.1%}"
    )
    return agreement
