"""CoGAN: weight sharing really shares, samples are pairs, and both domains are in the losses."""

from __future__ import annotations

import pytest
import torch

import gankit
from gankit.data.transforms import edge_map
from gankit.errors import ConfigError, GankitError
from gankit.losses import bce_discriminator_loss, non_saturating_generator_loss
from gankit.nets.cogan import CoupledDiscriminator, CoupledGenerator
from gankit.objectives import OBJECTIVES
from gankit.objectives.cogan import to_domain_b
from gankit.training import Trainer
from tests.conftest import tiny_config


def _objective(*overrides: str):
    torch.manual_seed(0)
    return OBJECTIVES.get("cogan")(tiny_config("cogan", *overrides))


def _ids(module: torch.nn.Module) -> set[int]:
    return {id(p) for p in module.parameters()}


def test_generators_share_their_first_layers_and_discriminators_their_last():
    generator = CoupledGenerator(latent_dim=8, resolution=16, channels=1, width=4)
    discriminator = CoupledDiscriminator(resolution=16, channels=1, width=4)
    branch_a, branch_b = generator.branch("a"), generator.branch("b")
    assert branch_a[0] is branch_b[0] is generator.shared
    assert _ids(branch_a) & _ids(branch_b) == _ids(generator.shared)
    assert not _ids(generator.heads["a"]) & _ids(generator.heads["b"])
    critic_a, critic_b = discriminator.branch("a"), discriminator.branch("b")
    assert critic_a[-1] is critic_b[-1] is discriminator.shared
    assert _ids(critic_a) & _ids(critic_b) == _ids(discriminator.shared)
    # The pair module computes exactly what the two branches compute.
    generator.eval()
    z = torch.randn(3, 8)
    image_a, image_b = generator(z)
    assert torch.allclose(image_a, branch_a(z)) and torch.allclose(image_b, branch_b(z))
    _, logits_b = discriminator(image_a, image_b)
    assert torch.allclose(logits_b, critic_b(image_b).squeeze(1))


def test_domain_b_gradients_reach_the_shared_layers_and_not_domain_a_layers():
    generator = CoupledGenerator(latent_dim=8, resolution=16, channels=1, width=4)
    _, image_b = generator(torch.randn(4, 8))
    image_b.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.shared.parameters())
    assert all(p.grad is None for p in generator.heads["a"].parameters())

    discriminator = CoupledDiscriminator(resolution=16, channels=1, width=4)
    _, logits_b = discriminator(torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16))
    logits_b.sum().backward()
    shared = list(discriminator.shared.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in shared)
    assert all(p.grad is None for p in discriminator.heads["a"].parameters())


@pytest.mark.parametrize("resolution", [16, 28])
def test_samples_are_pairs_side_by_side(resolution):
    objective = _objective(f"data.resolution={resolution}")
    images = objective.sample(5, seed=0)
    assert images.shape == (5, 1, resolution, 2 * resolution)
    assert images.abs().max() <= 1
    inputs = objective.sample_inputs(5, torch.Generator().manual_seed(0))
    objective.eval()
    image_a, image_b = objective.domain_images(inputs)
    assert torch.equal(images[..., :resolution], image_a)
    assert torch.equal(images[..., resolution:], image_b)


def test_a_trained_export_samples_pairs(tmp_path):
    Trainer(tiny_config("cogan", "train.steps=2"), tmp_path).fit()
    assert gankit.load(tmp_path).sample(3, seed=0).shape == (3, 1, 16, 32)


def test_discriminator_loss_sums_both_domains_on_unpaired_halves():
    objective = _objective()
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    torch.manual_seed(3)
    loss, stats = objective.loss("discriminator", {"image": images})

    torch.manual_seed(3)
    real_a, real_b = images[:4], edge_map(images[4:])  # halves: no image in both domains
    fake_a, fake_b = objective.networks["generator"](torch.randn(4, 8))
    discriminator = objective.networks["discriminator"]
    real_logits_a, real_logits_b = discriminator(real_a, real_b)
    fake_logits_a, fake_logits_b = discriminator(fake_a, fake_b)
    term_a = bce_discriminator_loss(real_logits_a, fake_logits_a)
    term_b = bce_discriminator_loss(real_logits_b, fake_logits_b)
    assert loss.item() == pytest.approx((term_a + term_b).item(), rel=1e-5)
    assert stats["loss_d_a"].item() == pytest.approx(term_a.item(), rel=1e-5)
    assert stats["loss_d_b"].item() == pytest.approx(term_b.item(), rel=1e-5)
    assert term_a.item() > 0 and term_b.item() > 0


def test_generator_loss_sums_both_domains():
    objective = _objective()
    torch.manual_seed(4)
    loss, stats = objective.loss("generator", None)
    torch.manual_seed(4)
    fake_a, fake_b = objective.networks["generator"](torch.randn(8, 8))
    logits_a, logits_b = objective.networks["discriminator"](fake_a, fake_b)
    term_a = non_saturating_generator_loss(logits_a)
    term_b = non_saturating_generator_loss(logits_b)
    assert loss.item() == pytest.approx((term_a + term_b).item(), rel=1e-5)
    assert stats["loss_g_b"].item() == pytest.approx(term_b.item(), rel=1e-5)


def test_domain_b_transforms():
    images = torch.full((1, 1, 6, 6), -1.0)
    images[..., 3:] = 1.0  # a vertical black-to-white step edge
    assert torch.equal(to_domain_b(images, "negative"), -images)
    edges = to_domain_b(images, "edges")
    assert edges.shape == images.shape and edges.min() >= -1 and edges.max() <= 1
    assert torch.all(edges[..., 2:4] == 1.0)  # both sides of the step: a full edge
    assert torch.all(edges[..., :2] == -1.0) and torch.all(edges[..., 4:] == -1.0)  # flat: none
    objective = _objective("model.domain_b=negative")
    real_a, real_b = objective.split_domains(torch.arange(4.0).view(4, 1, 1, 1))
    assert real_a.flatten().tolist() == [0.0, 1.0] and real_b.flatten().tolist() == [-2.0, -3.0]


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="batch_size"):
        _objective("train.batch_size=1")
    with pytest.raises(ConfigError, match="domain_b"):
        _objective("model.domain_b=blur")
    with pytest.raises(GankitError, match="labels"):
        _objective().sample(2, labels=torch.zeros(2, dtype=torch.int64))


def test_metrics_see_domain_a_only(tmp_path):
    from gankit.training import Trainer
    from tests.conftest import tiny_config

    trainer = Trainer(tiny_config("cogan"), tmp_path)
    pairs = trainer.objective.sample(3, seed=0)
    view = trainer.objective.metric_view(pairs)
    assert view.shape[-1] * 2 == pairs.shape[-1]
    assert torch.equal(view, pairs[..., : view.shape[-1]])
