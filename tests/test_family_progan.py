"""ProGAN: the growth schedule, its blocks, and the terms of its critic loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import gankit
from gankit.errors import CheckpointError, ConfigError, GankitError
from gankit.nets.progan import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
    ProGANDiscriminator,
    ProGANGenerator,
)
from gankit.objectives import OBJECTIVES
from gankit.objectives.progan import progan_resets_optimizers, progan_schedule
from gankit.runfolder.checkpoint import load_checkpoint
from gankit.training import Trainer
from tests.conftest import tiny_config


def _objective(*overrides: str):
    cfg = tiny_config("progan", *overrides)
    torch.manual_seed(0)
    return OBJECTIVES.get("progan")(cfg)


def test_alpha_fades_in_over_a_phase_then_stays_one_while_stabilising():
    period, stages = 4, 3
    schedule = [progan_schedule(step, stages, period) for step in range(24)]
    assert schedule[:4] == [(0, 1.0)] * 4  # the first resolution has nothing to fade from
    assert schedule[4:8] == [(1, 0.0), (1, 0.25), (1, 0.5), (1, 0.75)]
    assert schedule[8:12] == [(1, 1.0)] * 4
    assert schedule[12:16] == [(2, 0.0), (2, 0.25), (2, 0.5), (2, 0.75)]
    assert schedule[16:] == [(2, 1.0)] * 8  # fully grown from step P * (2K - 1) = 20 on
    assert progan_schedule(10**9, stages, period) == (2, 1.0)


def test_schedule_position_survives_extra_state_and_is_checked():
    trained = _objective("model.steps_per_phase=4")
    trained.set_step(14)
    assert (trained.stage, trained.alpha) == (2, 0.5)
    state = trained.extra_state()
    assert state == {"step": 14, "stage": 2, "alpha": 0.5}
    restored = _objective("model.steps_per_phase=4")
    restored.load_extra_state(state)
    assert (restored.stage, restored.alpha) == (2, 0.5)
    generator = restored.networks["generator"]
    assert int(generator.trained_stage) == 2 and float(generator.trained_alpha) == 0.5
    with pytest.raises(CheckpointError, match=r"stage 2, alpha 0\.75"):
        restored.load_extra_state({"step": 15, "stage": 2, "alpha": 0.5})


def test_checkpoint_holds_the_alpha_schedule_and_resume_restores_it(tmp_path):
    cfg = tiny_config("progan", "model.steps_per_phase=2", "train.steps=4")
    Trainer(cfg, tmp_path).fit()
    state = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    assert state["objective"] == {"step": 3, "stage": 1, "alpha": 0.5}  # step 3: 8x8 fading in
    assert int(state["networks"]["generator"]["trained_stage"]) == 1
    resumed = Trainer(tiny_config("progan", "model.steps_per_phase=2", "train.steps=6"), tmp_path,
                      resume=True)  # fmt: skip
    assert (resumed.objective.stage, resumed.objective.alpha) == (1, 0.5)
    exported = gankit.load(tmp_path)  # the export samples at the stage it was trained to
    assert int(exported.network.trained_stage) == 1
    assert exported.sample(2, seed=0).shape == (2, 1, 16, 16)


def test_optimisers_reset_when_new_layers_start_fading_in_and_when_they_are_in():
    """The reference resets whenever floor(lod) or ceil(lod) changes: the first fade-in step
    with alpha > 0 (P (2k - 1) + 1) and the first stabilisation step (2 k P), for k = 1, 2."""
    resets = [step for step in range(40) if progan_resets_optimizers(step, 3, 4)]
    assert resets == [5, 8, 13, 16]
    assert [step for step in range(40) if progan_resets_optimizers(step, 3, 1)] == [2, 4]
    assert not progan_resets_optimizers(0, 3, 4)  # nothing to clear before the first step
    objective = _objective("model.steps_per_phase=2")  # 16 px: stages 4, 8, 16
    assert [step for step in range(20) if objective.resets_optimizers(step)] == [3, 4, 7, 8]


def _adam_steps(trainer: Trainer) -> dict[str, int]:
    """The largest Adam step count over each optimiser's parameters."""
    return {
        name: int(max(float(state["step"]) for state in optimizer.state.values()))
        for name, optimizer in trainer.optimizers.items()
    }


def test_the_trainer_restarts_adam_at_each_reset(tmp_path):
    trainer = Trainer(tiny_config("progan", "model.steps_per_phase=2", "train.steps=10"), tmp_path)
    counts = []
    for _ in range(10):
        trainer.train_step()
        counts.append(_adam_steps(trainer))
    # resets before steps 3, 4, 7 and 8: Adam's count restarts at 1 there
    expected = [1, 2, 3, 1, 1, 2, 3, 1, 1, 2]
    assert counts == [{"discriminator": n, "generator": n} for n in expected]


def _training_tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    tensors = {f"net.{k}": v for k, v in trainer.objective.networks.state_dict().items()}
    for name, optimizer in trainer.optimizers.items():
        for index, state in optimizer.state_dict()["state"].items():
            tensors |= {f"{name}.{index}.{k}": torch.as_tensor(v) for k, v in state.items()}
    return tensors


def test_resume_across_a_reset_is_exact(tmp_path):
    """6 + 4 steps equal 10: the resumed run carries Adam's state from step 6 (3 steps since the
    reset at 4) and still clears it at steps 7 and 8."""
    straight = Trainer(tiny_config("progan", "model.steps_per_phase=2", "train.steps=10"),
                       tmp_path / "straight")  # fmt: skip
    straight.fit()
    Trainer(tiny_config("progan", "model.steps_per_phase=2", "train.steps=6"),
            tmp_path / "resumed").fit()  # fmt: skip
    resumed = Trainer(tiny_config("progan", "model.steps_per_phase=2", "train.steps=10"),
                      tmp_path / "resumed", resume=True)  # fmt: skip
    assert _adam_steps(resumed) == {"discriminator": 2, "generator": 2}  # steps 4 and 5
    resumed.fit()
    assert _adam_steps(resumed) == _adam_steps(straight) == {"discriminator": 2, "generator": 2}
    expected, actual = _training_tensors(straight), _training_tensors(resumed)
    assert expected.keys() == actual.keys()
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, different[:5]


def test_to_rgb_and_the_critic_score_layer_have_gain_one():
    """Reference networks.py: torgb and D's last dense layer use gain 1, all others sqrt(2)."""
    generator = ProGANGenerator(
        latent_dim=8, stages=[4, 8, 16], channels=3, width=4, max_channels=8
    )
    discriminator = ProGANDiscriminator(stages=[4, 8, 16], channels=3, width=4, max_channels=8)
    for to_rgb, channels in zip(generator.to_rgb, (8, 8, 4), strict=True):
        assert to_rgb.scale == pytest.approx(1 / math.sqrt(channels))  # 1x1 conv: fan_in = C
    score = discriminator.last[-1]
    assert isinstance(score, EqualizedLinear) and score.weight.shape == (1, 8)
    assert score.scale == pytest.approx(1 / math.sqrt(8))
    hidden = discriminator.last[-3]
    assert isinstance(hidden, EqualizedLinear)
    assert hidden.scale == pytest.approx(math.sqrt(2) / math.sqrt(8 * 4 * 4))
    assert generator.first_conv.scale == pytest.approx(math.sqrt(2 / (8 * 9)))
    torch.manual_seed(0)
    wide = ProGANGenerator(latent_dim=8, stages=[4], channels=1, width=256, max_channels=256)
    hidden = torch.randn(64, 256, 4, 4)  # pixel-normalised features: unit mean square
    hidden = hidden * torch.rsqrt(hidden.square().mean(dim=1, keepdim=True))
    with torch.no_grad():  # gain 1: the output keeps the input's unit scale (sqrt(2) would not)
        assert wide.to_rgb[0](hidden).std().item() == pytest.approx(1.0, rel=0.1)


def test_weights_saved_at_the_old_output_gain_load_as_the_same_function():
    """State dicts without ``output_gain`` had toRGB and the score layer at gain sqrt(2): on
    loading, their weights are scaled by sqrt(2) so that the networks compute what they did."""
    torch.manual_seed(0)
    stages = [4, 8, 16]
    generator = ProGANGenerator(latent_dim=8, stages=stages, channels=1, width=4, max_channels=8)
    discriminator = ProGANDiscriminator(stages=stages, channels=1, width=4, max_channels=8)
    z, images = torch.randn(4, 8), torch.randn(4, 1, 16, 16)
    for network, inputs, outputs in (
        (generator, z, ("to_rgb.0.weight", "to_rgb.1.weight", "to_rgb.2.weight")),
        (discriminator, images, ("last.6.weight",)),
    ):
        expected = network(inputs, 2, 0.5)
        old = {k: v for k, v in network.state_dict().items() if k != "output_gain"}
        for key in outputs:  # the same function at gain sqrt(2): weights / sqrt(2)
            old[key] = old[key] / math.sqrt(2)
        latent = {"latent_dim": 8} if network is generator else {}
        fresh = type(network)(**latent, stages=stages, channels=1, width=4, max_channels=8)
        fresh.load_state_dict(old)
        torch.testing.assert_close(fresh(inputs, 2, 0.5), expected)
        assert "output_gain" in fresh.state_dict()
        fresh.load_state_dict(network.state_dict())  # a current state dict loads unchanged
        assert torch.equal(fresh.state_dict()[outputs[0]], network.state_dict()[outputs[0]])


def test_equalized_layers_scale_unit_normal_weights_by_he_constant():
    torch.manual_seed(0)
    conv, linear = (
        EqualizedConv2d(in_channels=64, out_channels=32, kernel_size=3),
        EqualizedLinear(512, 256),
    )
    for layer, fan_in in ((conv, 64 * 9), (linear, 512)):
        assert layer.weight.std().item() == pytest.approx(1.0, rel=0.03)
        effective = (layer.weight * layer.scale).std().item()
        assert effective == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)
        assert torch.count_nonzero(layer.bias) == 0
    x = torch.randn(2, 64, 5, 5)
    expected = F.conv2d(x, conv.weight * math.sqrt(2 / (64 * 9)), conv.bias, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = 7 * torch.randn(3, 16, 5, 5) + 2
    mean_square = PixelNorm()(x).square().mean(dim=1)
    assert torch.allclose(mean_square, torch.ones_like(mean_square), atol=1e-5)


def test_minibatch_stddev_adds_one_channel_of_group_statistics():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4)
    out = MinibatchStdDev(group_size=4)(x)
    assert out.shape == (8, 4, 4, 4)
    assert torch.equal(out[:, :3], x)
    # Group size 4 over 8 samples: sample n is in group n mod 2, e.g. {0, 2, 4, 6}.
    group = x[[0, 2, 4, 6]]
    expected = (group.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    assert torch.allclose(out[[0, 2, 4, 6], 3], expected.expand(4, 4, 4), atol=1e-6)
    same = MinibatchStdDev()(torch.ones(4, 2, 3, 3))
    assert same[:, 2].max().item() < 1e-3  # identical samples: no spread


@pytest.mark.parametrize("stages", [[4, 8, 16], [7, 14, 28]])
def test_networks_output_the_stage_resolution_at_every_stage(stages):
    torch.manual_seed(0)
    generator = ProGANGenerator(latent_dim=8, stages=stages, channels=3, width=4, max_channels=8)
    discriminator = ProGANDiscriminator(stages=stages, channels=3, width=4, max_channels=8)
    z = torch.randn(4, 8)
    for stage, side in enumerate(stages):
        for alpha in (0.0, 0.5, 1.0):
            images = generator(z, stage, alpha)
            assert images.shape == (4, 3, side, side)
            assert discriminator(images, stage, alpha).shape == (4,)


def test_fade_in_starts_from_the_previous_resolution():
    torch.manual_seed(0)
    stages = [4, 8, 16]
    generator = ProGANGenerator(latent_dim=8, stages=stages, channels=1, width=4, max_channels=8)
    discriminator = ProGANDiscriminator(stages=stages, channels=1, width=4, max_channels=8)
    z = torch.randn(4, 8)
    previous = F.interpolate(generator(z, 1, 1.0), scale_factor=2, mode="nearest")
    assert torch.allclose(generator(z, 2, 0.0), previous, atol=1e-6)
    images = torch.randn(4, 1, 16, 16)
    assert torch.allclose(
        discriminator(images, 2, 0.0), discriminator(F.avg_pool2d(images, 2), 1, 1.0), atol=1e-5
    )
    assert not torch.allclose(generator(z, 2, 0.5), previous, atol=1e-4)


def test_real_images_are_pooled_to_the_stage_and_faded_like_the_generator():
    objective = _objective("model.steps_per_phase=2")
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    objective.set_step(3)  # stage 1 (8x8), alpha 0.5
    pooled = F.avg_pool2d(images, 2)
    lower = F.interpolate(F.avg_pool2d(pooled, 2), scale_factor=2, mode="nearest")
    assert torch.allclose(objective.real_images(images), 0.5 * lower + 0.5 * pooled, atol=1e-6)
    objective.set_step(4)  # stage 1, alpha 1
    assert torch.allclose(objective.real_images(images), pooled)


def test_critic_loss_holds_the_gradient_penalty_and_the_drift_term():
    objective = _objective("model.steps_per_phase=2")
    objective.set_step(3)  # a fade-in step: stage 1, alpha 0.5
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    torch.manual_seed(1)
    loss, stats = objective.loss("discriminator", {"image": images})

    torch.manual_seed(1)  # the same draws: z, then the interpolation weights
    generator, critic = objective.networks["generator"], objective.networks["discriminator"]
    real = objective.real_images(images)
    fake = generator(torch.randn(8, 8), 1, 0.5).detach()
    eps = torch.rand(8, 1, 1, 1)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, 1, 0.5).sum(), mixed)
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    real_scores, fake_scores = critic(real, 1, 0.5), critic(fake, 1, 0.5)
    drift = (real_scores**2).mean()
    expected = fake_scores.mean() - real_scores.mean() + 10 * penalty + 0.001 * drift
    assert penalty.item() > 0 and drift.item() > 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert stats["gradient_penalty"].item() == pytest.approx(penalty.item(), rel=1e-5)
    assert stats["drift"].item() == pytest.approx(drift.item(), rel=1e-5)
    assert not stats["loss_d"].requires_grad


def test_penalty_weights_move_the_loss_by_weight_times_term():
    objective = _objective()
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    losses = {}
    # epsilon_drift = 1 rather than 0.001: a difference of 1e-5 would drown in rounding.
    for gp_lambda, epsilon_drift in ((10.0, 1.0), (0.0, 1.0), (10.0, 0.0)):
        objective.model_cfg.gp_lambda, objective.model_cfg.epsilon_drift = gp_lambda, epsilon_drift
        torch.manual_seed(2)
        losses[gp_lambda, epsilon_drift] = objective.loss("discriminator", {"image": images})
    full, stats = losses[10.0, 1.0]
    assert (full - losses[0.0, 1.0][0]).item() == pytest.approx(
        10 * stats["gradient_penalty"].item(), rel=1e-4
    )
    assert (full - losses[10.0, 0.0][0]).item() == pytest.approx(stats["drift"].item(), rel=1e-4)


def test_generate_samples_the_trained_stage_at_the_data_resolution():
    objective = _objective("model.steps_per_phase=2")
    objective.set_step(3)  # stage 1: 8x8
    inputs = objective.sample_inputs(3, torch.Generator().manual_seed(0))
    images = objective.generate(inputs)
    assert images.shape == (3, 1, 16, 16) and images.abs().max() <= 1
    small = objective.networks["generator"](inputs["z"], 1, 0.5).clamp(-1, 1)
    assert torch.equal(images, F.interpolate(small, scale_factor=2, mode="nearest"))
    # A fresh objective (as `gankit.load` builds one) takes the stage from G's saved buffers.
    loaded = _objective("model.steps_per_phase=2")
    loaded.networks["generator"].load_state_dict(objective.networks["generator"].state_dict())
    assert torch.equal(loaded.generate(inputs), images)


def test_phases_use_the_paper_optimiser_settings_from_the_preset():
    from gankit.config import load_yaml, preset_path
    from gankit.resolve import build_config

    cfg = build_config(load_yaml(preset_path("progan", "mnist")), family="progan")
    assert cfg.train.lr_g == cfg.train.lr_d == 1e-3 and cfg.train.betas == (0.0, 0.99)
    assert (cfg.model.gp_lambda, cfg.model.epsilon_drift, cfg.model.critic_steps) == (
        10.0, 0.001, 1,
    )  # fmt: skip


def test_bad_stages_and_conditions_are_refused():
    with pytest.raises(ConfigError, match=r"model\.stages"):
        _objective("model.stages=[4,8]")  # ends below data.resolution=16
    with pytest.raises(ConfigError, match=r"model\.stages"):
        _objective("model.stages=[4,12,16]")
    with pytest.raises(GankitError, match="truncation"):
        _objective().sample(2, truncation=0.5)
