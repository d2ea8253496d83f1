"""SRGAN (Ledig et al. 2017): SRResNet x4, the 8-conv discriminator, MSE + 1e-3 adversarial loss."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gankit
from gankit.config import DataConfig, RunConfig, load_yaml, preset_path
from gankit.data.sources import mnist_bundled
from gankit.errors import ConfigError
from gankit.losses import bce_discriminator_loss
from gankit.metrics.fidelity import psnr, ssim
from gankit.nets.srgan import ResidualBlock, SRGANDiscriminator, SRResNet, bicubic_downsample
from gankit.objectives import srgan as srgan_family  # noqa: F401  (registers "srgan")
from gankit.resolve import build_config
from gankit.training import Trainer
from tests.conftest import tiny_config

TINY_MODEL = {"g_width": 4, "num_blocks": 2, "d_width": 4, "d_dense": 8, "d_pool": 1}


def srgan_config(*overrides: str, model: dict[str, Any] | None = None, **data: Any) -> RunConfig:
    """tests.conftest.tiny_config's data and train settings (16x16 bundled digits: LR 4x4) with
    a tiny SRGAN (tiny_config itself adds model.latent_dim, which a translator has no use for)."""
    base = tiny_config("dcgan").to_dict()
    base["family"], base["model"] = "srgan", {**TINY_MODEL, **(model or {})}
    base["data"] |= {"source": "mnist-bundled", "resolution": 16, **data}
    return build_config(base, overrides)


class Recorder:
    """Records the positional inputs and the outputs of every forward pass of a module."""

    def __init__(self, module: nn.Module) -> None:
        self.calls: list[tuple[tuple[torch.Tensor, ...], torch.Tensor]] = []
        module.register_forward_hook(lambda _m, args, out: self.calls.append((args, out)))


# --------------------------------------------------------------------------------------------------
# Networks


@pytest.mark.parametrize(("channels", "height", "width"), [(1, 4, 4), (3, 5, 7), (1, 8, 8)])
def test_generator_upscales_x4(channels, height, width):
    generator = SRResNet(channels=channels, width=4, num_blocks=2)
    images = generator(torch.rand(2, channels, height, width) * 2 - 1)
    assert images.shape == (2, channels, 4 * height, 4 * width)
    assert images.min() >= -1 and images.max() <= 1


def test_generator_is_the_papers_srresnet():
    generator = SRResNet(channels=3)
    blocks = [m for m in generator.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 16
    layer_types = [type(m) for m in blocks[0].body]
    assert layer_types == [nn.Conv2d, nn.BatchNorm2d, nn.PReLU, nn.Conv2d, nn.BatchNorm2d]
    shuffles = [m for m in generator.modules() if isinstance(m, nn.PixelShuffle)]
    assert [s.upscale_factor for s in shuffles] == [2, 2]
    convs = [m for m in generator.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (9, 9) and convs[-1].kernel_size == (9, 9)
    assert convs[0].out_channels == 64 and convs[-1].out_channels == 3
    assert sum(c.kernel_size == (3, 3) for c in convs) == 2 * 16 + 1 + 2
    # The global skip: with the BN after the residual trunk silenced, the trunk adds nothing
    # and the output of the first PReLU goes straight to the upsampling blocks.
    generator.eval()
    x = torch.rand(1, 3, 6, 6) * 2 - 1
    with torch.no_grad():
        generator.blocks_out[1].weight.zero_()
        generator.blocks_out[1].bias.zero_()
        expected = torch.tanh(generator.to_image(generator.upsample(generator.head(x))))
    assert torch.allclose(generator(x), expected, atol=1e-6)


def test_discriminator_has_the_papers_eight_convolutions_and_two_dense_layers():
    discriminator = SRGANDiscriminator(channels=3)
    convs = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in discriminator.modules()) == 7
    slopes = {m.negative_slope for m in discriminator.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    dense = [m for m in discriminator.modules() if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(512 * 36, 1024), (1024, 1)]
    features = discriminator.features(torch.zeros(2, 3, 96, 96))
    assert features.shape == (2, 512, 6, 6)  # at 96 px the 6x6 pooling changes nothing
    assert torch.equal(discriminator.pool(features), features)
    assert discriminator(torch.zeros(2, 3, 96, 96)).shape == (2,)


@pytest.mark.parametrize("resolution", [16, 32, 40])
def test_discriminator_takes_any_resolution(resolution):
    discriminator = SRGANDiscriminator(channels=1, width=4, dense=8, pool=2)
    assert discriminator(torch.randn(3, 1, resolution, resolution)).shape == (3,)


def test_bicubic_downsampling_is_antialiased_bicubic_clamped():
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    small = bicubic_downsample(images, 4)
    expected = F.interpolate(images, size=(4, 4), mode="bicubic", antialias=True)
    assert small.shape == (2, 3, 4, 4)
    assert torch.equal(small, expected.clamp(-1, 1))
    assert small.min() >= -1 and small.max() <= 1
    constant = torch.full((1, 1, 8, 8), 0.25)
    assert torch.allclose(bicubic_downsample(constant, 4), torch.full((1, 1, 2, 2), 0.25))
    stripes = torch.tensor([1.0, -1.0]).repeat(8).view(1, 1, 1, 16).expand(1, 1, 16, 16)
    assert bicubic_downsample(stripes, 4).abs().max() < 0.1  # antialiased: no aliasing
    with pytest.raises(ConfigError, match="multiple of 4"):
        bicubic_downsample(torch.zeros(1, 1, 18, 16), 4)


# --------------------------------------------------------------------------------------------------
# Data


def test_low_resolution_inputs_are_the_training_images_downsampled(tmp_path):
    trainer = Trainer(srgan_config(), tmp_path)
    objective = trainer.objective
    assert trainer.fixed_inputs["a"].shape == (4, 1, 4, 4)
    batch = next(trainer.loader)
    assert set(batch) == {"image", "label"}
    assert torch.equal(objective.source_images(batch), bicubic_downsample(batch["image"], 4))
    grid = objective.generate_eval({"a": objective.source_images(batch)[:2]})
    assert grid.shape == (2, 1, 16, 32)  # LR shown enlarged (nearest) beside the x4 output


def test_two_domain_sources_train_on_domain_b(tmp_path):
    trainer = Trainer(srgan_config(source="digits-edges"), tmp_path)
    batch = next(trainer.loader)
    assert set(batch) == {"a", "b"}
    low = trainer.objective.source_images(batch)
    assert torch.equal(low, bicubic_downsample(batch["b"], 4))
    trainer.train_step()


def test_resolution_must_be_a_multiple_of_four(tmp_path):
    with pytest.raises(ConfigError, match=r"data.resolution=18.*multiple of 4"):
        Trainer(srgan_config(resolution=18), tmp_path)


# --------------------------------------------------------------------------------------------------
# Losses and phases


def test_discriminator_loss_is_the_cross_entropy_of_real_and_generated_images(tmp_path):
    trainer = Trainer(srgan_config(), tmp_path)
    objective = trainer.objective
    recorder = Recorder(objective.networks["discriminator"])
    batch = next(trainer.loader)
    loss, stats = objective.loss("discriminator", batch)
    (real_args, real_logits), (fake_args, fake_logits) = recorder.calls
    assert torch.equal(real_args[0], batch["image"])  # reals and fakes in separate BN batches
    with torch.no_grad():  # G in training mode: BN of the batch, as in the D phase
        expected_fakes = objective.networks["generator"](bicubic_downsample(batch["image"], 4))
    assert torch.equal(fake_args[0], expected_fakes)
    d_real, d_fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
    manual = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)
    assert loss.item() == pytest.approx(bce_discriminator_loss(real_logits, fake_logits).item())
    assert stats["d_real"].item() == pytest.approx(d_real.mean().item(), rel=1e-6)


def test_generator_loss_is_mse_plus_a_thousandth_of_the_adversarial_loss(tmp_path):
    trainer = Trainer(srgan_config(), tmp_path)
    objective = trainer.objective.eval()  # BN running statistics: repeated calls agree
    generator_recorder = Recorder(objective.networks["generator"])
    recorder = Recorder(objective.networks["discriminator"])
    batch = next(trainer.loader)
    loss, stats = objective.loss("generator", batch)
    [(_, fake)] = generator_recorder.calls
    [(args, logits)] = recorder.calls
    assert torch.equal(args[0], fake)  # D judges G's own output
    mse = ((fake - batch["image"]) ** 2).mean()
    adversarial = -torch.log(torch.sigmoid(logits)).mean()  # eq. 6, -log D(G(LR))
    assert stats["loss_content"].item() == pytest.approx(mse.item(), rel=1e-6)
    assert stats["loss_g_adv"].item() == pytest.approx(adversarial.item(), rel=1e-5)
    assert loss.item() == pytest.approx(mse.item() + 1e-3 * adversarial.item(), rel=1e-6)
    assert stats["psnr"].item() == pytest.approx(10 * torch.log10(4 / mse).item(), rel=1e-5)
    objective.model_cfg.adversarial_weight = 0.0
    without, stats_without = objective.loss("generator", batch)
    assert without.item() == pytest.approx(loss.item() - 1e-3 * adversarial.item(), rel=1e-6)
    assert without.item() == stats_without["loss_content"].item()
    assert "loss_g_adv" not in stats_without and len(recorder.calls) == 1  # D not even called


def test_both_generator_loss_terms_reach_every_generator_parameter(tmp_path):
    trainer = Trainer(srgan_config(), tmp_path)
    objective = trainer.objective
    objective.networks["discriminator"].requires_grad_(False)
    generator = objective.networks["generator"]
    batch = next(trainer.loader)
    fake = generator(objective.source_images(batch))
    terms = {
        "content": F.mse_loss(fake, batch["image"]),
        "adversarial": F.softplus(-objective.networks["discriminator"](fake)).mean(),
    }
    parameters = list(generator.parameters())
    for name, term in terms.items():
        grads = torch.autograd.grad(term, parameters, retain_graph=True)
        assert all(g.abs().sum() > 0 for g in grads), f"{name} leaves some of G untrained"


def test_each_phase_updates_all_of_its_networks_and_nothing_else(tmp_path):
    trainer = Trainer(srgan_config(), tmp_path)
    networks = trainer.objective.networks
    assert [(p.name, p.networks, p.needs_data, p.betas) for p in trainer.phases] == [
        ("discriminator", ("discriminator",), True, (0.5, 0.999)),
        ("generator", ("generator",), True, (0.5, 0.999)),
    ]
    for phase in trainer.phases:
        before = {n: {k: v.detach().clone() for k, v in net.named_parameters()}
                  for n, net in networks.items()}  # fmt: skip
        trainer.run_phase(phase)
        for name, network in networks.items():
            changed = {
                k for k, v in network.named_parameters() if not torch.equal(before[name][k], v)
            }
            expected = (
                {k for k, _ in network.named_parameters()} if name in phase.networks else set()
            )
            assert changed == expected, f"{phase.name}: {name} {sorted(changed ^ expected)[:3]}"


def test_pretraining_steps_use_the_content_loss_alone(tmp_path):
    trainer = Trainer(srgan_config(model={"pretrain_steps": 2}), tmp_path)
    objective = trainer.objective
    recorder = Recorder(objective.networks["discriminator"])
    for step in range(3):
        calls_before = len(recorder.calls)
        trainer.train_step()
        # Pretraining: D is not called at all; then its phase (real, fake) and G's adversarial term
        assert len(recorder.calls) - calls_before == (0 if step < 2 else 2 + 1), step
    assert objective.adversarial_weight == 1e-3


def _state(trainer: Trainer, name: str = "discriminator") -> dict[str, torch.Tensor]:
    """A network's parameters and buffers (BN statistics, counts), detached copies."""
    network = trainer.objective.networks[name]
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def test_the_discriminator_trains_only_from_the_gan_stage_on(tmp_path):
    """Ledig et al. section 3.2: the SRResNet (the first pretrain_steps) has no discriminator."""
    trainer = Trainer(srgan_config(model={"pretrain_steps": 3}), tmp_path)
    assert [(p.name, p.start) for p in trainer.phases] == [("discriminator", 3), ("generator", 0)]
    initial, d_optimizer = _state(trainer), trainer.optimizers["discriminator"]
    generator = _state(trainer, "generator")
    for _ in range(3):
        trainer.train_step()
    after_pretraining = _state(trainer)
    assert all(torch.equal(initial[k], v) for k, v in after_pretraining.items())
    assert d_optimizer.state_dict()["state"] == {}  # Adam never stepped
    g_now = _state(trainer, "generator")
    assert any(not torch.equal(v, g_now[k]) for k, v in generator.items())  # G did train
    trainer.train_step()  # step 3: the GAN stage
    changed = {k for k, v in _state(trainer).items() if not torch.equal(initial[k], v)}
    assert changed == set(initial)  # every weight, BN statistic and count moved
    assert {int(s["step"]) for s in d_optimizer.state_dict()["state"].values()} == {1}


def test_the_gan_stage_starts_with_fresh_optimisers_and_resumes_exactly_across_it(tmp_path):
    cfg = srgan_config(model={"pretrain_steps": 2})
    objective = Trainer(cfg, tmp_path / "probe").objective
    assert [objective.resets_optimizers(s) for s in (0, 1, 2, 3)] == [False, False, True, False]
    assert not Trainer(srgan_config(), tmp_path / "none").objective.resets_optimizers(0)
    straight = Trainer(srgan_config("train.steps=4", model={"pretrain_steps": 2}),
                       tmp_path / "straight")  # fmt: skip
    straight.fit()
    for name in ("generator", "discriminator"):  # steps 2 and 3 after the reset
        state = straight.optimizers[name].state_dict()["state"]
        assert {int(s["step"]) for s in state.values()} == {2}, name
    Trainer(srgan_config("train.steps=2", model={"pretrain_steps": 2}), tmp_path / "resumed").fit()
    resumed = Trainer(srgan_config("train.steps=4", model={"pretrain_steps": 2}),
                      tmp_path / "resumed", resume=True)  # fmt: skip
    resumed.fit()
    for name, network in straight.objective.networks.items():
        other = resumed.objective.networks[name].state_dict()
        different = [k for k, v in network.state_dict().items() if not torch.equal(v, other[k])]
        assert not different, f"{name}: {different[:3]} differ after resume"


def test_learning_rates_drop_tenfold_at_lr_drop_step(tmp_path):
    trainer = Trainer(srgan_config(model={"lr_drop_step": 2}), tmp_path)
    objective = trainer.objective
    assert [objective.lr_factor(s) for s in (0, 1, 2, 100)] == [1.0, 1.0, 0.1, 0.1]
    for _ in range(3):
        trainer.train_step()
    for phase in trainer.phases:
        [group] = trainer.optimizers[phase.name].param_groups
        assert group["lr"] == pytest.approx(0.1 * phase.lr)


def test_presets_have_the_papers_settings():
    default = build_config(load_yaml(preset_path("srgan", "default")), family="srgan")
    train, model = default.train, default.model
    assert (train.lr_g, train.lr_d, train.betas, train.batch_size) == (1e-4, 1e-4, (0.9, 0.999),
                                                                       16)  # fmt: skip
    assert (model.num_blocks, model.g_width, model.d_width, model.d_dense) == (16, 64, 64, 1024)
    assert (model.adversarial_weight, default.data.resolution, model.d_pool) == (1e-3, 96, 6)
    digits = build_config(load_yaml(preset_path("srgan", "mnist-bundled")), family="srgan")
    assert digits.data.resolution % 4 == 0 and digits.train.betas == (0.9, 0.999)


# --------------------------------------------------------------------------------------------------
# Evaluation mode, resume, export


def test_evaluation_mode_uses_running_statistics_so_tiles_are_independent(tmp_path):
    trainer = Trainer(srgan_config(), tmp_path)
    trainer.train_step()
    objective = trainer.objective.eval()
    low = objective.source_images(next(trainer.loader))
    whole = objective.translate(low)
    alone = torch.cat([objective.translate(low[i : i + 1]) for i in range(3)])
    assert torch.allclose(whole[:3], alone, atol=1e-6)


def test_resume_is_bit_identical_and_the_export_upscales_x4(tmp_path):
    straight = Trainer(srgan_config("train.steps=4"), tmp_path / "straight")
    straight.fit()
    Trainer(srgan_config("train.steps=2"), tmp_path / "resumed").fit()
    resumed = Trainer(srgan_config("train.steps=4"), tmp_path / "resumed", resume=True)
    resumed.fit()
    for name, network in straight.objective.networks.items():
        other = resumed.objective.networks[name].state_dict()
        different = [k for k, v in network.state_dict().items() if not torch.equal(v, other[k])]
        assert not different, f"{name}: {different[:3]} differ after resume"
    loaded = gankit.load(tmp_path / "straight")
    low = torch.rand(2, 1, 5, 6) * 2 - 1
    upscaled = loaded.translate(low)
    assert upscaled.shape == (2, 1, 20, 24)
    straight.objective.eval()
    # same weights; the live network may be NHWC (the fast path), the export
    # NCHW: other convolution kernels, equal to float rounding
    expected = straight.objective.translate(low)
    torch.testing.assert_close(upscaled, expected, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# Learning (slow)

SLOW_OVERRIDES = [
    "data.max_images=9000",  # train on the first 9000 bundled digits, judge on the last 1000
    "train.device=cpu", "train.progress=false", "train.sample_every=0",
    "train.checkpoint_every=0", "output.tensorboard=false",
]  # fmt: skip


@pytest.mark.slow
def test_srgan_upscales_held_out_digits_better_than_bicubic(tmp_path):
    """The mnist-bundled preset for 2000 steps (1000 of them MSE-only pretraining, without D):
    32x32 digits from 8x8 ones. Measured (torch 2.13 CPU, 2 cores, one thread): PSNR 22.71 dB,
    SSIM 0.919 on the 1000 held-out digits (22.62 dB, 0.918 when D also trained during the
    pretraining); bicubic upsampling 15.99 dB, 0.510. About 4 minutes (238 s) on a machine
    shared with other jobs; 47 minutes once on one shared with 3 other jobs."""
    cfg = build_config(
        load_yaml(preset_path("srgan", "mnist-bundled")),
        [*SLOW_OVERRIDES, "train.steps=2000"],
        family="srgan",
    )
    start = time.perf_counter()
    trainer = Trainer(cfg, tmp_path)
    trainer.fit()
    seconds = time.perf_counter() - start
    digits = mnist_bundled(DataConfig(resolution=32)).images[9000:]
    high = digits.float() / 127.5 - 1
    low = bicubic_downsample(high, 4)
    objective = trainer.objective.eval()
    with torch.no_grad():
        upscaled = torch.cat([objective.translate(low[i : i + 200]) for i in range(0, 1000, 200)])
    bicubic = F.interpolate(low, scale_factor=4, mode="bicubic", align_corners=False).clamp(-1, 1)
    scores = {
        name: (psnr(images, high).mean().item(), ssim(images, high).mean().item())
        for name, images in (("srgan", upscaled), ("bicubic", bicubic))
    }
    print(f"srgan after 2000 steps ({seconds:.0f} s): PSNR/SSIM on 1000 held-out digits "
          f"{scores['srgan'][0]:.2f} dB / {scores['srgan'][1]:.3f}, bicubic "
          f"{scores['bicubic'][0]:.2f} dB / {scores['bicubic'][1]:.3f}")  # fmt: skip
    assert scores["srgan"][0] > scores["bicubic"][0] + 2.0
    assert scores["srgan"][1] > scores["bicubic"][1] + 0.2
