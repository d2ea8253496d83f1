"""Siamese GAN for HD images (the Combo method): patch cutting, loss terms, who trains on what."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

import gankit
import gankit.objectives.siamese  # registers "siamese"
from gankit.config import load_yaml, preset_path
from gankit.errors import ConfigError
from gankit.nets.augment import attach_diffaugment
from gankit.nets.siamese import (
    PatchGenerator,
    SiameseDiscriminator,
    cut_patches,
    join_patches,
)
from gankit.objectives.siamese import (
    SiameseGAN,
    content_term,
    margin_term,
    pair_indices,
    real_term,
)
from gankit.resolve import build_config
from gankit.training import Trainer
from gankit.training.optim import resolve_phase
from tests.conftest import tiny_config

DATA = {"source": "digits-edges", "paired": False, "resolution": 16}
TINY_MODEL = {"patch": 8, "vector_length": 8, "g_width": 4, "g_residual_blocks": 1, "d_width": 4,
              "max_channels": 8}  # fmt: skip


def _config(*overrides: str, **model: object):
    """A tiny siamese config: 16 px digits -> edges, 8 px patches, tiny widths."""
    return tiny_config("siamese", *overrides, data=DATA, model={**TINY_MODEL, **model})


class Recorder:
    """Records every forward pass of a module: its first input and its output (kept in the
    graph, with retain_grad, so tests can read the loss's gradient with respect to it)."""

    def __init__(self, module: nn.Module) -> None:
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if output.requires_grad:
            output.retain_grad()
        self.inputs.append(args[0].detach().clone())
        self.outputs.append(output)


def _batch(trainer: Trainer) -> dict[str, torch.Tensor]:
    return next(trainer.loader)


# --------------------------------------------------------------------------------------------------
# Cutting and joining


def test_cut_and_join_patches_are_exact_inverses_in_row_major_order():
    images = torch.randn(3, 2, 16, 24)
    patches = cut_patches(images, 8)
    assert patches.shape == (3 * 2 * 3, 2, 8, 8)
    assert torch.equal(patches[0], images[0, :, :8, :8])
    assert torch.equal(patches[1], images[0, :, :8, 8:16])
    assert torch.equal(patches[3], images[0, :, 8:, :8])
    assert torch.equal(patches[6], images[1, :, :8, :8])
    assert torch.equal(join_patches(patches, 2, 3), images)
    with pytest.raises(ValueError, match="do not split"):
        cut_patches(images, 5)


def test_combo_translates_each_patch_alone_and_puts_it_back(tmp_path):
    objective = SiameseGAN(_config())
    a = torch.rand(3, 1, 16, 16) * 2 - 1
    assert torch.equal(objective.combo(a, nn.Identity()), a)  # untranslated patches: the input
    generator = objective.networks["generator"].eval()
    with torch.no_grad():
        out = objective.combo(a)
        for rows in (slice(0, 8), slice(8, 16)):
            for cols in (slice(0, 8), slice(8, 16)):
                alone = generator(a[:, :, rows, cols])
                assert torch.allclose(out[:, :, rows, cols], alone, atol=1e-6)
        # G on the whole image differs from the combo at the tile borders: G sees across them
        whole = generator(a)
        assert (whole - out).abs().max() > 1e-2 * out.abs().max()


def test_training_feeds_the_generator_one_batch_of_four_patches_per_image(tmp_path):
    trainer = Trainer(_config(), tmp_path)
    recorder = Recorder(trainer.objective.networks["generator"])
    trainer.objective.loss("generator", _batch(trainer))
    [patches] = recorder.inputs
    assert patches.shape == (4 * trainer.cfg.train.batch_size, 1, 8, 8)


# --------------------------------------------------------------------------------------------------
# Networks


def test_translate_works_on_a_patch_an_image_and_odd_sizes():
    objective = SiameseGAN(_config())
    objective.eval()
    with torch.no_grad():
        for shape in ((2, 1, 8, 8), (2, 1, 16, 16), (1, 1, 13, 10), (1, 1, 40, 24)):
            out = objective.translate(torch.rand(shape) * 2 - 1)
            assert out.shape == shape
            assert out.min() >= -1 and out.max() <= 1
    vectors = objective.networks["discriminator"](torch.zeros(5, 1, 16, 16))
    assert vectors.shape == (5, 8)


def test_generator_in_eval_mode_treats_every_tile_on_its_own():
    generator = PatchGenerator(in_channels=3, out_channels=3, width=4, residual_blocks=1)
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in generator.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in generator.modules())
    generator.train()
    generator(torch.randn(8, 3, 16, 16))  # running statistics move away from (0, 1)
    generator.eval()
    tiles = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        together = generator(tiles)
        for i in range(4):
            assert torch.allclose(together[i : i + 1], generator(tiles[i : i + 1]), atol=1e-6)
    plain = PatchGenerator(in_channels=1, out_channels=1, width=4, residual_blocks=1, norm="none")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())


@pytest.mark.parametrize(("resolution", "convolutions"), [(16, 2), (32, 3), (128, 5), (24, 3)])
def test_discriminator_is_resolution_parametric(resolution, convolutions):
    network = SiameseDiscriminator(
        resolution=resolution, channels=3, vector_length=16, width=4, spectral_norm=True
    )
    assert sum(isinstance(m, nn.Conv2d) for m in network.modules()) == convolutions
    assert network(torch.zeros(2, 3, resolution, resolution)).shape == (2, 16)


# --------------------------------------------------------------------------------------------------
# Loss terms


def test_margin_term_is_a_squared_hinge_on_the_norm_with_no_gradient_beyond_the_margin():
    vectors = torch.tensor([[0.3, 0.4], [3.0, 4.0], [0.0, 2.0]], requires_grad=True)  # 0.5, 5, 2
    loss = margin_term(vectors, margin=2.0)
    assert loss.item() == pytest.approx((2.0 - 0.5) ** 2 / 3)
    loss.backward()
    assert torch.count_nonzero(vectors.grad[1:]) == 0  # at or beyond the margin: nothing to do
    # inside it, descent pushes the vector outward (the gradient points to the origin)
    assert torch.dot(vectors.grad[0], vectors[0].detach()) < 0
    assert margin_term(vectors.detach() * 10, margin=2.0).item() == 0.0


def test_real_term_is_the_mean_squared_norm():
    vectors = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    assert real_term(vectors).item() == pytest.approx((5.0 + 9.0) / 2)


def test_content_term_compares_the_transformation_vectors_of_all_pairs():
    torch.manual_seed(0)
    vectors_a, vectors_ab = torch.randn(4, 5), torch.randn(4, 5)
    loss, cosine, distance = content_term(vectors_a, vectors_ab, lambda_distance=0.5)
    cosines, distances = [], []
    for i in range(4):
        for j in range(i + 1, 4):
            v, w = vectors_a[i] - vectors_a[j], vectors_ab[i] - vectors_ab[j]
            cosines.append(torch.dot(v, w) / (v.norm() * w.norm()))
            distances.append((v - w).square().sum())
    assert len(cosines) == 6 and pair_indices(4)[0].shape == (6,)
    assert cosine.item() == pytest.approx(torch.stack(cosines).mean().item(), rel=1e-5)
    assert distance.item() == pytest.approx(torch.stack(distances).mean().item(), rel=1e-5)
    assert loss.item() == pytest.approx(1 - cosine.item() + 0.5 * distance.item(), rel=1e-5)
    # vectors moved alike (scaled and shifted): cosine 1; the distance term sees the scale
    loss, cosine, distance = content_term(vectors_a, 2 * vectors_a + 3, lambda_distance=0.0)
    assert cosine.item() == pytest.approx(1.0) and loss.item() == pytest.approx(0.0, abs=1e-6)
    assert distance.item() > 0


def test_discriminator_loss_is_real_plus_margin_plus_content(tmp_path):
    trainer = Trainer(_config("model.margin=0.5", "model.lambda_travel=3"), tmp_path)
    objective, batch = trainer.objective, _batch(trainer)
    recorder = Recorder(objective.networks["discriminator"])
    loss, stats = objective.loss("discriminator", batch)
    [images], [vectors] = recorder.inputs, recorder.outputs
    n = batch["a"].shape[0]
    assert torch.equal(images[:n], batch["b"]) and torch.equal(images[2 * n :], batch["a"])
    with torch.no_grad():
        assert torch.allclose(images[n : 2 * n], objective.combo(batch["a"]), atol=1e-6)
    real, fake, a = vectors.detach().split(n)
    real_part = real.square().sum(1).mean()
    margin_part = torch.relu(0.5 - fake.norm(dim=1)).square().mean()
    content_part = content_term(a, fake)[0]
    assert real_part > 0 and margin_part > 0 and content_part > 0  # every term is there
    expected = real_part + margin_part + 3 * content_part
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert stats["d_margin"].item() == pytest.approx(margin_part.item(), rel=1e-5)
    # a margin the fakes already pass: the hinge vanishes from the loss
    objective.model_cfg.margin = float(fake.norm(dim=1).min()) / 2
    _, stats = objective.loss("discriminator", batch)
    assert stats["d_margin"].item() == 0.0


def test_generator_loss_is_adversarial_plus_content(tmp_path):
    trainer = Trainer(_config("model.lambda_adversarial=2", "model.lambda_distance=0.1"), tmp_path)
    objective, batch = trainer.objective, _batch(trainer)
    recorder = Recorder(objective.networks["discriminator"])
    loss, stats = objective.loss("generator", batch)
    [images], [vectors] = recorder.inputs, recorder.outputs
    n = batch["a"].shape[0]
    assert torch.equal(images[n:], batch["a"])
    fake, a = vectors.detach().split(n)
    adversarial = fake.square().sum(1).mean()
    content = content_term(a, fake, lambda_distance=0.1)[0]
    expected = 2 * adversarial + objective.model_cfg.lambda_travel * content
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert stats["g_adversarial"].item() == pytest.approx(adversarial.item(), rel=1e-5)


def _gradient_on_fake_vectors(objective: SiameseGAN, phase: str, batch, travel: float):
    """d loss / d D(AB), the loss of ``phase`` with lambda_travel = ``travel``."""
    objective.model_cfg.lambda_travel = travel
    recorder = Recorder(objective.networks["discriminator"])
    loss, _ = objective.loss(phase, batch)
    loss.backward()
    recorder.handle.remove()
    [vectors] = recorder.outputs
    n = batch["a"].shape[0]
    start = n if phase == "discriminator" else 0  # D's input: [B, AB, A] or [AB, A]
    return vectors.grad[start : start + n].clone()


def test_d_and_g_compete_on_the_adversarial_terms_and_cooperate_on_the_content_term(tmp_path):
    trainer = Trainer(_config("model.margin=10"), tmp_path)
    objective, batch = trainer.objective, _batch(trainer)
    objective.requires_grad_(True)
    objective.networks["discriminator"].eval()  # spectral norm's u stays put: the same D each call
    d_adversarial = _gradient_on_fake_vectors(objective, "discriminator", batch, 0.0)
    g_adversarial = _gradient_on_fake_vectors(objective, "generator", batch, 0.0)
    # on every fake's vector: D's descent moves it outward (toward the margin), G's inward
    per_fake = (d_adversarial * g_adversarial).sum(dim=1)
    assert (per_fake < 0).all(), per_fake
    d_content = _gradient_on_fake_vectors(objective, "discriminator", batch, 1.0) - d_adversarial
    g_content = _gradient_on_fake_vectors(objective, "generator", batch, 1.0) - g_adversarial
    assert d_content.abs().sum() > 0
    assert torch.allclose(d_content, g_content, rtol=1e-4, atol=1e-7)  # the same objective

    # and the content term's gradients reach the parameters of both networks
    a = batch["a"]
    first, second = objective.combo(a), objective.networks["discriminator"]
    vectors = second(torch.cat([first, a]))
    content = content_term(vectors[len(a) :], vectors[: len(a)])[0]
    for name in ("generator", "discriminator"):
        parameters = list(objective.networks[name].parameters())
        grads = torch.autograd.grad(content, parameters, retain_graph=True)
        assert all(g.abs().sum() > 0 for g in grads), name


def test_each_phase_updates_all_of_its_network_and_nothing_else(tmp_path):
    trainer = Trainer(_config(), tmp_path)
    networks = trainer.objective.networks
    assert [(p.name, p.networks, p.needs_data) for p in trainer.phases] == [
        ("discriminator", ("discriminator",), True),
        ("generator", ("generator",), True),
    ]
    for phase in trainer.phases:
        before = {
            n: {k: v.clone() for k, v in net.named_parameters()} for n, net in networks.items()
        }
        trainer.run_phase(phase)
        for name, network in networks.items():
            changed = {
                k for k, v in network.named_parameters() if not torch.equal(before[name][k], v)
            }
            if name in phase.networks:
                assert changed == set(before[name]), f"{phase.name} left {name} partly unchanged"
            else:
                assert not changed, f"{phase.name} changed {name}"


def test_resume_continues_bit_for_bit_and_the_export_translates(tmp_path):
    straight = Trainer(_config("train.steps=4"), tmp_path / "straight")
    straight.fit()
    Trainer(_config("train.steps=2"), tmp_path / "resumed").fit()
    resumed = Trainer(_config("train.steps=4"), tmp_path / "resumed", resume=True)
    resumed.fit()
    for name, network in straight.objective.networks.items():
        other = resumed.objective.networks[name].state_dict()
        for key, value in network.state_dict().items():
            assert torch.equal(value, other[key]), f"{name}.{key}"
    loaded = gankit.load(tmp_path / "resumed")
    for side in (8, 16):
        assert loaded.translate(torch.zeros(2, 1, side, side)).shape == (2, 1, side, side)


# --------------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("data.resolution=32",), r"data\.resolution=32 must be 2 \* model\.patch = 16"),
        (("model.patch=6",), r"data\.resolution=16 must be 2 \* model\.patch = 12"),
        (("data.resolution=12", "model.patch=6"), r"model\.patch=6 must be a multiple of"),
        (("train.batch_size=1",), r"train\.batch_size=1"),
        (("model.vector_length=1",), r"model\.vector_length"),
        (("model.margin=0",), r"model\.margin"),
        (("model.margin=-1",), r"model\.margin"),
        (("model.g_norm=instance",), r"model\.g_norm"),
    ],
)
def test_bad_settings_are_one_line_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        SiameseGAN(_config(*overrides))
    assert "\n" not in str(error.value)


def test_one_domain_data_is_refused(tmp_path):
    base = _config().to_dict()
    base["data"]["source"] = "mnist-bundled"
    with pytest.raises(ConfigError, match="two-domain"):
        Trainer(build_config(base), tmp_path)


def test_kept_size_images_train_and_mismatched_channels_are_refused(tmp_path):
    """Photos kept at their own sizes (lists of (C, H_i, W_i)) train like a stacked tensor;
    domains with different channels are one ConfigError."""
    from gankit.data import ImageSet

    gen = torch.Generator().manual_seed(0)
    a = [torch.randint(0, 256, (1, 16 + i, 20), generator=gen, dtype=torch.uint8) for i in range(4)]
    b = [torch.randint(0, 256, (1, 24, 17 + i), generator=gen, dtype=torch.uint8) for i in range(4)]
    cfg = _config("train.steps=2", "data.channels=1")
    images = ImageSet(a, None, None, "kept sizes", images_b=b)
    Trainer(cfg, tmp_path / "ok", images=images).fit()
    rgb = [image.expand(3, -1, -1).contiguous() for image in b]
    with pytest.raises(ConfigError, match="same channels") as error:
        Trainer(cfg, tmp_path / "bad", images=ImageSet(a, None, None, "mixed", images_b=rgb))
    assert "\n" not in str(error.value)


def test_presets_build_and_follow_the_method():
    default = build_config(load_yaml(preset_path("siamese", "default")), family="siamese")
    assert (default.model.patch, default.model.vector_length) == (64, 128)
    assert default.data.resolution == 128
    small = build_config(load_yaml(preset_path("siamese", "digits-edges")), family="siamese")
    assert small.data.resolution == 2 * small.model.patch and not small.data.paired
    for cfg in (default, small):
        phases = [resolve_phase(p, cfg.train) for p in SiameseGAN(cfg).phases()]
        assert [p.lr for p in phases] == [cfg.train.lr_d, cfg.train.lr_g]


# --------------------------------------------------------------------------------------------------
# Learning


@pytest.mark.slow
def test_learns_edge_maps_from_unpaired_digits(tmp_path):
    """Unpaired digits -> edge maps at 32 px (S = 16): the digits-edges preset, 1500 steps.

    The answer is known although no pair was ever seen: each digit's own Sobel edge map. Training
    uses the first 4000 bundled digits (A: 2000 digits, B: the edge maps of 2000 others); the last
    500 of the 10000 are judged. Baselines: the identity (L1 0.252) and the per-pixel median edge
    map of domain B, the best answer that ignores the input (0.266). Measured with this test on one
    idle core: L1 0.122, retrieval 0.99 (chance 0.002) in 90 s; tuning runs of the same setting
    (other seeds, busy machine) gave L1 0.13-0.15 and retrieval 0.89-0.97.
    """
    from gankit.config import DataConfig
    from gankit.data.sources import mnist_bundled
    from gankit.data.transforms import edge_map

    cfg = build_config(load_yaml(preset_path("siamese", "digits-edges")), family="siamese",
                       data={"max_images": 4000},
                       train={"device": "cpu", "progress": False, "sample_every": 0,
                              "checkpoint_every": 0},
                       output={"tensorboard": False})  # fmt: skip
    start = time.perf_counter()
    trainer = Trainer(cfg, tmp_path)
    trainer.fit()
    elapsed = time.perf_counter() - start
    every_digit = mnist_bundled(DataConfig(resolution=32, channels=1)).images
    digits = every_digit[-500:].float() / 127.5 - 1  # never seen, as A or as B
    truth = edge_map(digits)
    median = (trainer.images.images_b.float() / 127.5 - 1).median(dim=0).values
    translated = trainer.objective.generate_eval({"a": digits})[..., 32:]
    l1 = (translated - truth).abs().mean().item()
    identity = (digits - truth).abs().mean().item()
    constant = (median - truth).abs().mean().item()
    # content: the true edge map nearest (L1) to a translation is that digit's own
    nearest = torch.cdist(translated.flatten(1), truth.flatten(1), p=1).argmin(dim=1)
    retrieval = (nearest == torch.arange(len(truth))).float().mean().item()
    print(
        f"siamese digits-edges: {cfg.train.steps} steps in {elapsed:.0f} s; L1 {l1:.3f} "
        f"(identity {identity:.3f}, median edge map {constant:.3f}); retrieval {retrieval:.2f}"
    )
    assert identity > 0.24 and constant > 0.25  # the baselines are what the docstring says
    assert l1 < 0.75 * min(identity, constant)  # measured 0.12-0.15 against 0.19
    assert retrieval > 0.6  # measured 0.89-0.99


# --------------------------------------------------------------------------------------------------
# DiffAugment: A_i and AB_i get one transform


def test_diffaugment_gives_a_and_its_translation_one_transform_and_b_its_own(tmp_path):
    objective = SiameseGAN(_config())
    attach_diffaugment(objective.networks["discriminator"], ["color", "translation", "cutout"])
    objective.combo = lambda images, network=None: images.clone()  # AB = A: pairs must stay equal
    seen: list[torch.Tensor] = []
    objective.networks["discriminator"].register_forward_pre_hook(
        lambda _m, args: seen.append(args[0])
    )
    torch.manual_seed(0)
    a = torch.rand(4, 1, 16, 16) * 2 - 1
    objective.loss("discriminator", {"a": a, "b": a.clone()})
    objective.loss("generator", {"a": a})
    d_step, g_step = seen
    b, fake, a_seen = d_step.split(4)
    assert torch.equal(fake, a_seen)  # the content term compares like with like
    assert not torch.equal(b, a_seen)  # the real batch is augmented on its own
    assert not torch.equal(a_seen, a)
    fake, a_seen = g_step.split(4)
    assert torch.equal(fake, a_seen)
    assert not torch.equal(fake[0], fake[1])  # every pair draws its own transform
