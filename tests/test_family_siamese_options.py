"""The Siamese GAN's options beyond the Combo method: a residual G, D's detail input, the
identity and low-pass terms (the family's method and contract: test_family_siamese.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.nets.siamese import PatchGenerator, SiameseDiscriminator, detail
from gankit.objectives.siamese import SiameseGAN, lowpass_term
from gankit.training import Trainer
from tests.test_family_siamese import _batch, _config


def test_residual_generator_starts_as_the_identity_and_learns_a_change():
    generator = PatchGenerator(in_channels=3, out_channels=3, width=4, downsamplings=2,
                               residual_blocks=1, residual=True)  # fmt: skip
    images = torch.rand(2, 3, 14, 18) * 2 - 1  # odd sizes: padded and cropped back
    assert torch.equal(generator(images), images)
    target = (images * 0.8 + 0.1).detach()  # a colour change that keeps the layout
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
    start = (generator(images) - target).abs().mean().item()
    for _ in range(40):
        optimizer.zero_grad()
        (generator(images) - target).abs().mean().backward()
        optimizer.step()
    assert (generator(images) - target).abs().mean().item() < 0.8 * start
    assert generator(images * 4).abs().max() <= 1  # clamped to the image range
    with pytest.raises(ValueError, match="C_in == C_out"):
        PatchGenerator(in_channels=1, out_channels=3, residual=True)


def test_the_detail_input_is_the_images_and_their_amplified_high_pass_layer():
    flat = torch.full((2, 3, 8, 8), 0.3)
    assert detail(flat, 16)[:, 3:].abs().max() < 1e-5  # nothing where the image is flat
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    layers = detail(images, 16)
    assert torch.equal(layers[:, :3], images)
    mean = (images[0, 0, 2:5, 3:6]).mean()  # an inner pixel's 3 x 3 box
    assert torch.allclose(layers[0, 3, 3, 4], 16 * (images[0, 0, 3, 4] - mean), atol=1e-5)
    assert torch.allclose(detail(images, 4)[:, 3:] * 4, layers[:, 3:], atol=1e-5)
    network = SiameseDiscriminator(resolution=16, channels=3, vector_length=8, width=4,
                                   spectral_norm=True, detail_gain=16)  # fmt: skip
    first = next(m for m in network.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 6 and network(images.repeat(1, 1, 2, 2)).shape == (2, 8)
    cfg = _config("model.d_detail_gain=8")
    assert SiameseGAN(cfg).networks["discriminator"].detail_gain == 8


def test_identity_term_adds_the_l1_distance_of_translated_b_images_to_themselves(tmp_path):
    trainer = Trainer(_config(), tmp_path)
    objective, batch = trainer.objective, _batch(trainer)
    torch.manual_seed(0)
    without, _ = objective.loss("generator", batch)
    objective.model_cfg.lambda_identity = 3.0
    torch.manual_seed(0)
    with_identity, stats = objective.loss("generator", batch)
    b = batch["b"]
    with torch.no_grad():
        expected = (objective.combo(b) - b).abs().mean()
    assert stats["g_identity"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert (with_identity - without).item() == pytest.approx(3 * expected.item(), rel=1e-4)
    generator = objective.networks["generator"]
    generator.zero_grad()
    (with_identity - without).backward()  # the identity term alone reaches G's weights
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())


def test_lowpass_term_is_the_l1_distance_of_the_window_means():
    source = torch.rand(2, 3, 8, 8)
    texture = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(4, 4)  # mean 0 in every 2 x 2
    assert lowpass_term(source + texture, source, 2).item() == pytest.approx(0, abs=1e-6)
    assert lowpass_term(source + 0.25, source, 4).item() == pytest.approx(0.25)
    assert lowpass_term(source + texture, source, 1).item() == pytest.approx(1)


def test_lowpass_term_adds_its_weight_times_the_translations_pooled_distance(tmp_path):
    trainer = Trainer(_config("model.g_residual=true"), tmp_path)
    objective, batch = trainer.objective, _batch(trainer)
    m = objective.model_cfg
    m.lambda_lowpass, m.lowpass_window = 2.0, 4
    _, stats = objective.loss("generator", batch)
    assert stats["g_lowpass"].item() == 0  # a residual G starts as the identity
    generator = objective.networks["generator"]
    last = [module for module in generator.modules() if isinstance(module, nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias.fill_(0.1)  # every output 0.1 brighter (where not clamped)
    objective.networks["discriminator"].eval()  # spectral norm's power iteration stays put
    torch.manual_seed(0)
    with_lowpass, stats = objective.loss("generator", batch)
    m.lambda_lowpass = 0.0
    torch.manual_seed(0)
    without, stats_without = objective.loss("generator", batch)
    assert "g_lowpass" not in stats_without
    a = batch["a"]
    with torch.no_grad():
        expected = lowpass_term(objective.combo(a), a, 4)
    assert stats["g_lowpass"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert 0.05 < expected.item() <= 0.1
    assert (with_lowpass - without).item() == pytest.approx(2 * expected.item(), rel=1e-4)
    with pytest.raises(ConfigError, match=r"model\.lowpass_window=5 must divide") as error:
        SiameseGAN(_config("model.lambda_lowpass=1", "model.lowpass_window=5"))
    assert "\n" not in str(error.value)
