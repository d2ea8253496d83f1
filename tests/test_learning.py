"""Slow: each family learns real MNIST, judged by a metric, not by its losses."""

from __future__ import annotations

import pytest

from gankit.config import build_config
from gankit.train import Trainer
from tests.conftest import SHARED_MNIST

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="needs ../shared/data/mnist"),
]

# digit-fd (n=2,000 vs the first 2,000 training digits) of real MNIST test digits is about 40;
# an untrained generator scores in the thousands.
CASES = {
    "gan": ({"latent_dim": 64}, 4000, 450.0),
    "dcgan": ({"latent_dim": 64, "g_width": 32, "d_width": 32}, 2500, 300.0),
}


@pytest.mark.parametrize("family", sorted(CASES))
def test_family_learns_mnist_digits(family, tmp_path):
    model, steps, threshold = CASES[family]
    cfg = build_config(
        {
            "family": family,
            "data": {"source": "mnist", "root": str(SHARED_MNIST), "resolution": 28},
            "model": model,
            "train": {"steps": steps, "progress": False, "sample_every": 0, "checkpoint_every": 0},
            "eval": {"metrics": ["digit-fd"], "n": 2000},
            "output": {"tensorboard": False},
        }
    )
    result = Trainer(cfg, tmp_path / family).fit()
    [digit_fd] = result.metrics
    print(f"{family}: digit-fd after {steps} steps = {digit_fd.value:.1f}")
    assert digit_fd.value < threshold
