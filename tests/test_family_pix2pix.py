"""pix2pix (Isola et al. 2017): the U-Net and conditional PatchGAN of appendix 6.1, each term of
eq. 1-4, deterministic tiles in evaluation, paired data only, exact resume, and (slow) that it
learns digit edge maps far better than the baselines."""

from __future__ import annotations

import copy
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gankit.objectives.pix2pix  # noqa: F401  (registers the family)
from gankit.config import load_yaml, preset_path
from gankit.errors import ConfigError
from gankit.nets.augment import attach_diffaugment
from gankit.nets.translation import EvalDropout, UNetTranslator, unet_depth
from gankit.objectives.pix2pix import Pix2Pix
from gankit.resolve import build_config
from gankit.training import Trainer
from gankit.translate import normalisation
from tests.conftest import tiny_config
from tests.net_helpers import Recorder, held_out_digits_and_edges, parameters_of


def _config(*overrides: str, data: dict | None = None, **model: object):
    """A tiny pix2pix config (tests/tiny_models.py) with these data and model changes."""
    return tiny_config("pix2pix", *overrides, data=data or {}, model=model)


# --------------------------------------------------------------------------------------------------
# Networks


def test_unet_at_256_pixels_is_the_papers_encoder_and_decoder():
    unet = UNetTranslator(in_channels=3, out_channels=3, num_downs=8)
    encoder = [next(m for m in layer if isinstance(m, nn.Conv2d)) for layer in unet.encoder]
    assert [c.out_channels for c in encoder] == [64, 128, 256, 512, 512, 512, 512, 512]
    normed = [any(isinstance(m, nn.BatchNorm2d) for m in layer) for layer in unet.encoder]
    assert normed == [False] + [True] * 6 + [False]  # not on C64, not on the 1x1 bottleneck
    assert all(isinstance(layer[0], nn.LeakyReLU) for layer in unet.encoder[1:])
    decoder = [
        next(m for m in layer if isinstance(m, nn.ConvTranspose2d)) for layer in unet.decoder
    ]
    assert [c.out_channels for c in decoder] == [512, 512, 512, 512, 256, 128, 64]
    # inputs: the bottleneck, then [decoder output, skip] concatenated
    assert [c.in_channels for c in decoder] == [512, 1024, 1024, 1024, 1024, 512, 256]
    dropouts = [any(isinstance(m, EvalDropout) for m in layer) for layer in unet.decoder]
    assert dropouts == [True] * 3 + [False] * 4  # CD512-CD512-CD512-C512-C256-C128-C64
    assert all(isinstance(layer[0], nn.ReLU) for layer in unet.decoder)  # not leaky
    assert unet.to_image[1].in_channels == 128 and unet.to_image[1].out_channels == 3
    bottleneck = []
    unet.encoder[-1].register_forward_hook(lambda m, i, o: bottleneck.append(o.shape))
    assert unet.eval()(torch.zeros(1, 3, 256, 256)).shape == (1, 3, 256, 256)
    assert bottleneck == [(1, 512, 1, 1)]


@pytest.mark.parametrize(("resolution", "depth"), [(16, 4), (32, 5), (256, 8), (28, 2), (24, 3)])
def test_unet_depth_follows_the_resolution(resolution, depth):
    assert unet_depth(resolution) == depth
    objective = Pix2Pix(_config(data={"resolution": resolution}, d_layers=1))
    assert len(objective.networks["generator"].encoder) == depth


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_networks_map_images_and_pairs_of_each_resolution(resolution):
    objective = Pix2Pix(_config(data={"resolution": resolution}))
    images = torch.rand(3, 1, resolution, resolution) * 2 - 1
    out = objective.networks["generator"](images)
    assert out.shape == images.shape and out.abs().max() <= 1
    side = resolution // 4 - 2
    assert objective.judge(images, out).shape == (3, 1, side, side)
    assert objective.networks["discriminator"].net[0].in_channels == 2  # D(x, y): C_a + C_b


def test_domains_may_have_different_channels():
    objective = Pix2Pix(_config(data={"channels_a": 3}))  # e.g. RGB -> gray
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    y = objective.networks["generator"](x)
    assert y.shape == (2, 1, 16, 16)
    assert objective.networks["discriminator"].net[0].in_channels == 4
    assert objective.judge(x, y).shape == (2, 1, 2, 2)


def test_translate_keeps_the_size_of_non_square_and_odd_images():
    objective = Pix2Pix(_config()).eval()
    for height, width in [(16, 48), (13, 21)]:
        images = torch.rand(2, 1, height, width) * 2 - 1
        assert objective.translate(images).shape == (2, 1, height, width)


def test_evaluation_uses_the_test_batchs_statistics_each_image_alone(tmp_path):
    """Section 3.3: batch norm at test time with the statistics of the test batch, a batch of
    one (the reference tests one image at a time): each image normalised by its own statistics,
    whatever else is in the batch, and no dropout (deterministic)."""
    trainer = Trainer(_config(data={"resolution": 32}), tmp_path)
    trainer.train_step()  # running statistics away from (0, 1): evaluation must not use them
    generator = trainer.objective.networks["generator"].eval()
    torch.manual_seed(1)
    images = torch.rand(3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        together = generator(images)
        assert torch.equal(together, generator(images))  # no dropout in evaluation
        reference = copy.deepcopy(generator).train()
        for module in reference.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
        for i in range(3):  # a training-mode batch norm over a batch of one image
            torch.testing.assert_close(together[i : i + 1], reference(images[i : i + 1]),
                                       atol=1e-5, rtol=0)  # fmt: skip
        with normalisation(generator, "running"):  # the running averages: another function
            assert (generator(images) - together).abs().max() > 1e-2


def test_eval_dropout_keeps_the_papers_test_time_noise():
    objective = Pix2Pix(_config(eval_dropout=True)).eval()
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    assert not torch.equal(objective.translate(images), objective.translate(images))


# --------------------------------------------------------------------------------------------------
# Phases and losses


def test_each_phase_updates_every_parameter_of_its_network_and_no_other(tmp_path):
    trainer = Trainer(_config(), tmp_path)
    networks = trainer.objective.networks
    assert [(p.name, p.networks) for p in trainer.phases] == [
        ("discriminator", ("discriminator",)), ("generator", ("generator",))
    ]  # fmt: skip
    assert all(p.needs_data and p.lr == 2e-4 and p.betas == (0.5, 0.999) for p in trainer.phases)
    for phase in trainer.phases:
        before = {name: parameters_of(net) for name, net in networks.items()}
        trainer.run_phase(phase)
        for name, network in networks.items():
            changed = {
                k for k, v in parameters_of(network).items() if not torch.equal(v, before[name][k])
            }
            expected = set(before[name]) if name in phase.networks else set()
            assert changed == expected, f"{phase.name}: {name}"


def test_discriminator_loss_is_half_the_cgan_loss_on_real_and_fake_pairs(tmp_path):
    trainer = Trainer(_config(), tmp_path)
    objective, batch = trainer.objective, next(trainer.loader)
    recorder, generated = (
        Recorder(objective.networks["discriminator"]),
        Recorder(objective.networks["generator"]),
    )
    loss, stats = objective.loss("discriminator", batch)
    (real_pair, real_logits), (fake_pair, fake_logits) = recorder.calls
    [(_, fake)] = generated.calls
    assert torch.equal(real_pair, torch.cat([batch["a"], batch["b"]], 1))
    assert torch.equal(fake_pair, torch.cat([batch["a"], fake], 1))
    # -(1/2)(E log D(x, y) + E log(1 - D(x, G(x)))), averaged over patches (eq. 1, section 3.3)
    expected = -0.5 * (
        torch.log(torch.sigmoid(real_logits)).mean()
        + torch.log(1 - torch.sigmoid(fake_logits)).mean()
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert stats["d_real"].item() == pytest.approx(
        torch.sigmoid(real_logits).mean().item(), rel=1e-5
    )


def test_generator_loss_is_eq4_with_the_non_saturating_gan_term(tmp_path):
    trainer = Trainer(_config(), tmp_path)
    objective, batch = trainer.objective, next(trainer.loader)
    recorder, generated = (
        Recorder(objective.networks["discriminator"]),
        Recorder(objective.networks["generator"]),
    )
    loss, stats = objective.loss("generator", batch)
    [(pair, logits)], [(_, fake)] = recorder.calls, generated.calls
    assert torch.equal(pair, torch.cat([batch["a"], fake], 1))
    gan = -torch.log(torch.sigmoid(logits)).mean()
    l1 = (batch["b"] - fake).abs().mean()
    assert stats["loss_gan"].item() == pytest.approx(gan.item(), rel=1e-5)
    assert stats["loss_l1"].item() == pytest.approx(l1.item(), rel=1e-5)
    assert loss.item() == pytest.approx((gan + 100 * l1).item(), rel=1e-5)
    objective.model_cfg.lambda_l1 = 0.0
    torch.manual_seed(0)
    without_l1, stats = objective.loss("generator", batch)
    assert without_l1.item() == pytest.approx(stats["loss_gan"].item(), rel=1e-6)
    assert without_l1.item() < loss.item() - 10


def test_both_generator_terms_have_gradients_in_the_generator(tmp_path):
    trainer = Trainer(_config(), tmp_path)
    objective, batch = trainer.objective, next(trainer.loader)
    terms = objective.generator_terms(batch["a"], batch["b"])
    assert set(terms) == {"gan", "l1"}
    parameters = list(objective.networks["generator"].parameters())
    for name, term in terms.items():
        grads = torch.autograd.grad(term, parameters, retain_graph=True)
        norm = torch.stack([grad.norm() for grad in grads]).norm()
        assert torch.isfinite(norm) and norm > 0, name


def test_pix2pix_refuses_unpaired_data_with_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"pix2pix trains on pairs.*data.paired=true") as error:
        Trainer(_config(data={"paired": False}), tmp_path)
    assert "\n" not in str(error.value)


def test_a_patchgan_too_large_for_the_resolution_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"model.d_layers=3 .* >= 24; got 16") as error:
        Pix2Pix(_config(d_layers=3))
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------------------------------
# Resume and presets


def _tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every tensor of the networks and optimisers, by a dotted path."""

    def flatten(tree: object, prefix: str) -> dict[str, torch.Tensor]:
        if isinstance(tree, dict):
            return {
                k: v
                for key, sub in tree.items()
                for k, v in flatten(sub, f"{prefix}.{key}").items()
            }
        return {prefix: torch.as_tensor(tree)}

    optimizers = {k: o.state_dict()["state"] for k, o in trainer.optimizers.items()}
    return flatten(
        {"networks": trainer.objective.networks.state_dict(), "optimizers": optimizers}, ""
    )


def test_training_resumes_bit_identically(tmp_path):
    """2 + 2 steps equal 4 steps in every tensor (dropout draws from the saved torch RNG)."""
    straight = Trainer(_config("train.steps=4"), tmp_path / "straight")
    straight.fit()
    Trainer(_config("train.steps=2"), tmp_path / "resumed").fit()
    resumed = Trainer(_config("train.steps=4"), tmp_path / "resumed", resume=True)
    resumed.fit()
    expected, actual = _tensors(straight), _tensors(resumed)
    assert expected.keys() == actual.keys() and len(expected) > 50
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, different[:5]


def test_presets_have_the_papers_settings():
    cfg = build_config(load_yaml(preset_path("pix2pix", "default")), family="pix2pix")
    m, train = cfg.model, cfg.train
    assert (m.lambda_l1, m.dropout, m.dropout_layers, m.norm, m.d_layers) == (
        100,
        0.5,
        3,
        "batch",
        3,
    )
    assert (m.g_width, m.d_width, m.num_downs, m.eval_dropout) == (64, 64, None, False)
    assert (train.lr_g, train.lr_d, train.betas, train.batch_size) == (2e-4, 2e-4, (0.5, 0.999), 1)
    assert (cfg.data.resolution, cfg.data.resize, cfg.data.crop, cfg.data.flip) == (
        256,
        286,
        "random",
        True,
    )
    assert cfg.data.paired
    digits = build_config(load_yaml(preset_path("pix2pix", "digits-edges")), family="pix2pix")
    assert digits.data.source == "digits-edges" and digits.data.paired
    assert (digits.model.lambda_l1, digits.train.betas) == (100, (0.5, 0.999))
    Pix2Pix(digits)  # builds at its resolution


# --------------------------------------------------------------------------------------------------
# Slow: learning


@pytest.mark.slow
def test_paired_training_draws_edge_maps_of_held_out_digits(tmp_path):
    """digits-edges paired, the first 9,000 bundled digits, the digits-edges preset: 1,500 steps
    (measured: L1 0.058 in 91 s, one thread on 2 busy cores). On the other 1,000 digits G(digit)
    must be near its true edge map: mean L1 below 0.12 and below 0.4 x that of predicting the
    mean edge map (0.302) or of returning the digit itself (0.266)."""
    cfg = build_config(load_yaml(preset_path("pix2pix", "digits-edges")), family="pix2pix",
                       data={"max_images": 9000}, train={"progress": False},
                       output={"tensorboard": False})  # fmt: skip
    start = time.perf_counter()
    trainer = Trainer(cfg, tmp_path)
    trainer.fit()
    seconds = time.perf_counter() - start
    digits, edges = held_out_digits_and_edges(cfg.data.resolution, 9000)
    translated = trainer.objective.generate_eval({"a": digits})[..., cfg.data.resolution :]
    error = F.l1_loss(translated, edges).item()
    mean_edges = trainer.images.images_b.float().div(127.5).sub(1).mean(0, keepdim=True)
    baseline_mean = F.l1_loss(mean_edges.expand_as(edges), edges).item()
    baseline_input = F.l1_loss(digits, edges).item()
    print(
        f"pix2pix digits-edges: L1 {error:.3f} after {cfg.train.steps} steps ({seconds:.0f} s); "
        f"mean edge map {baseline_mean:.3f}, the digit itself {baseline_input:.3f}"
    )
    assert error < 0.12 and error < 0.4 * min(baseline_mean, baseline_input)


# --------------------------------------------------------------------------------------------------
# DiffAugment on the conditional pair [x | y]


def _seen_by_discriminator(objective: Pix2Pix) -> list[torch.Tensor]:
    """D's inputs after DiffAugment (a pre-hook registered after it sees its output)."""
    seen: list[torch.Tensor] = []
    objective.networks["discriminator"].register_forward_pre_hook(
        lambda _m, args: seen.append(args[0])
    )
    return seen


def _with_diffaugment(objective: Pix2Pix, policy: list[str]) -> Pix2Pix:
    """DiffAugment on the objective's discriminators, as the trainer attaches it."""
    for name in objective.discriminators:
        attach_diffaugment(objective.networks[name], policy)
    return objective


def test_diffaugment_colours_y_only_and_moves_and_cuts_x_and_y_alike():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 16, 16) * 2 - 1
    coloured = _with_diffaugment(Pix2Pix(_config()), ["color"])
    seen = _seen_by_discriminator(coloured)
    coloured.judge(x, x.clone())
    [pair] = seen
    assert torch.equal(pair[:, :1], x)  # the condition keeps its values
    assert (pair[:, 1:] - x).abs().mean() > 0.1  # the judged image is recoloured
    moved = _with_diffaugment(Pix2Pix(_config()), ["translation", "cutout"])
    seen = _seen_by_discriminator(moved)
    moved.judge(x, x.clone())
    [pair] = seen
    assert not torch.equal(pair[:, :1], x)
    assert torch.equal(pair[:, :1], pair[:, 1:])  # one shift and one hole for both parts
