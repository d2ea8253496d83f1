"""SAGAN (Zhang et al. 2019): attention in G and D, spectral norm in both, TTUR, hinge loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gankit.config import load_yaml, preset_path
from gankit.errors import ConfigError
from gankit.losses import hinge_discriminator_loss, hinge_generator_loss
from gankit.nets.blocks import SelfAttention
from gankit.objectives.sagan import SAGAN
from gankit.resolve import build_config
from gankit.training import Trainer
from gankit.training.optim import resolve_phase
from tests.conftest import tiny_config
from tests.test_family_sngan import Recorder

ATTENTION = ("model.attention_at=8",)  # the 8x8 feature maps of 16x16 tiny images


def _attention(network: nn.Module) -> list[SelfAttention]:
    return [m for m in network.modules() if isinstance(m, SelfAttention)]


def test_attention_sits_in_both_networks_at_the_configured_size(tmp_path):
    objective = Trainer(tiny_config("sagan", *ATTENTION), tmp_path).objective
    seen = []
    for name in ("generator", "discriminator"):
        (attention,) = _attention(objective.networks[name])
        attention.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[-2:]))
    objective.loss("generator", None)
    assert seen == [(8, 8), (8, 8)]  # G's attention, then D's


def test_spectral_norm_in_both_networks(tmp_path):
    objective = Trainer(tiny_config("sagan", *ATTENTION), tmp_path).objective
    for name in ("generator", "discriminator"):
        layers = [
            m for m in objective.networks[name].modules() if isinstance(m, (nn.Conv2d, nn.Linear))
        ]
        assert len(layers) > 8
        assert all(parametrize.is_parametrized(m, "weight") for m in layers), name


def test_losses_are_the_hinge_loss_with_labels(tmp_path):
    trainer = Trainer(tiny_config("sagan", *ATTENTION), tmp_path)
    objective = trainer.objective
    recorder = Recorder(objective.networks["discriminator"])
    batch = next(trainer.loader)
    loss_d, _ = objective.loss("discriminator", batch)
    loss_g, _ = objective.loss("generator", None)
    (d_args, d_scores), (g_args, g_scores) = recorder.calls
    n = batch["image"].shape[0]
    assert torch.equal(d_args[1][:n], batch["label"])  # projection D sees the real labels
    assert g_args[1].shape == (trainer.cfg.train.batch_size,)  # and the fakes' labels
    expected_d = hinge_discriminator_loss(d_scores[:n], d_scores[n:])
    assert loss_d.item() == pytest.approx(expected_d.item(), rel=1e-6)
    assert loss_g.item() == pytest.approx(hinge_generator_loss(g_scores).item(), rel=1e-6)


def test_two_steps_train_every_attention_parameter(tmp_path):
    # gamma starts at 0, so the first step moves only gamma; from the second on, f, g, h, v too.
    trainer = Trainer(tiny_config("sagan", *ATTENTION), tmp_path)
    networks = trainer.objective.networks
    before = {
        name: {k: v.detach().clone() for k, v in _attention(net)[0].named_parameters()}
        for name, net in networks.items()
    }
    trainer.train_step()
    for name, net in networks.items():
        params = dict(_attention(net)[0].named_parameters())
        assert params["gamma"].item() != 0, name
        assert torch.equal(params["f.parametrizations.weight.original"], before[name][
            "f.parametrizations.weight.original"])  # fmt: skip
    trainer.train_step()
    for name, net in networks.items():
        for key, value in _attention(net)[0].named_parameters():
            assert not torch.equal(value, before[name][key]), f"{name}: {key}"


def test_preset_has_the_papers_ttur_setting():
    cfg = build_config(load_yaml(preset_path("sagan", "mnist")), family="sagan")
    assert (cfg.train.lr_g, cfg.train.lr_d, cfg.train.betas) == (1e-4, 4e-4, (0.0, 0.9))
    assert cfg.model.d_steps == 1 and cfg.model.conditional and cfg.model.attention_at == 14
    phases = {p.name: resolve_phase(p, cfg.train) for p in SAGAN(cfg, num_classes=10).phases()}
    assert (phases["discriminator"].lr, phases["generator"].lr) == (4e-4, 1e-4)
    assert phases["discriminator"].repeats == 1
    default = build_config(load_yaml(preset_path("sagan", "default")), family="sagan")
    SAGAN(default, num_classes=10)  # attention_at=16 fits the 32x32 default
    # constant learning rates: no schedule in the paper or the PyTorch references
    assert cfg.train.lr_decay_start == default.train.lr_decay_start == 1.0


def test_conditional_by_default_and_refuses_unlabelled_data():
    with pytest.raises(ConfigError, match="needs class labels"):
        SAGAN(tiny_config("sagan"), num_classes=0)
    unconditional = SAGAN(tiny_config("sagan", "model.conditional=false"), num_classes=0)
    assert unconditional.networks["discriminator"].head.embed is None
    assert unconditional.sample(2, seed=1).shape == (2, 1, 16, 16)


def test_sampling_honours_labels(tmp_path):
    objective = SAGAN(tiny_config("sagan", *ATTENTION), num_classes=10)
    labels = torch.tensor([7, 7, 2])
    assert torch.equal(objective.sample_inputs(3, labels=labels)["label"], labels)
    images = objective.sample(3, seed=0, labels=labels)
    assert images.shape == (3, 1, 16, 16)
    with pytest.raises(Exception, match="truncation"):
        objective.sample(3, truncation=0.5)


def test_attention_size_must_exist_in_both_networks():
    with pytest.raises(ConfigError, match="attention_at=16"):
        SAGAN(tiny_config("sagan", "model.attention_at=16"), num_classes=10)
