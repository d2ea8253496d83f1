"""CycleGAN (Zhu et al. 2017): networks of appendix 7.2, every term of eq. 3 and section 5.2, the
image pool, the LR schedule, exact resume, per-image statistics (tiles: the image's), and (slow)
that unpaired training on digits-edges learns edge maps."""

from __future__ import annotations

import copy
import time

import pytest
import torch
from torch import nn

import gankit.objectives.cyclegan  # noqa: F401  (registers the family)
from gankit.config import load_yaml, preset_path
from gankit.errors import ConfigError, GankitError
from gankit.nets.translation import PatchGANDiscriminator, ResidualBlock, ResNetTranslator
from gankit.objectives.cyclegan import CycleGAN, ImagePool
from gankit.resolve import build_config
from gankit.training import Trainer
from gankit.translate import normalisation
from tests.conftest import tiny_config
from tests.net_helpers import Recorder, held_out_digits_and_edges, parameters_of

GENERATORS, DISCRIMINATORS = ("generator", "generator_ba"), ("discriminator", "discriminator_a")


def _config(*overrides: str, data: dict | None = None, **model: object):
    """A tiny cyclegan config (tests/tiny_models.py) with these data and model changes."""
    return tiny_config("cyclegan", *overrides, data=data or {}, model=model)


def _l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).abs().mean()


# --------------------------------------------------------------------------------------------------
# Networks


def test_resnet_translator_is_the_papers_c7s1_d_r_u_c7s1_layout():
    generator = ResNetTranslator(in_channels=3, out_channels=3)  # 256 px: 9 blocks
    convs = [m for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [c.out_channels for c in convs] == [64, 128, 256] + [256] * 18 + [128, 64, 3]
    assert [c.kernel_size[0] for c in convs] == [7, 3, 3] + [3] * 18 + [3, 3, 7]
    assert [c.stride[0] for c in convs] == [1, 2, 2] + [1] * 18 + [2, 2, 1]
    assert [type(c) for c in convs[-3:-1]] == [nn.ConvTranspose2d] * 2  # u128, u64
    assert sum(isinstance(m, ResidualBlock) for m in generator.modules()) == 9
    assert all(c.padding_mode == "reflect" for c in convs if isinstance(c, nn.Conv2d))
    norms = [m for m in generator.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == len(convs) - 1 and all(n.track_running_stats for n in norms)
    image = torch.rand(1, 3, 32, 48) * 2 - 1
    assert generator.eval()(image).shape == (1, 3, 32, 48)


def test_patchgan_is_c64_c128_c256_c512_with_70_pixel_patches():
    discriminator = PatchGANDiscriminator(in_channels=3)
    convs = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert isinstance(discriminator.net[1], nn.LeakyReLU)  # no norm on C64
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in discriminator.modules()) == 3
    assert discriminator.receptive_field == 70
    assert discriminator(torch.zeros(2, 3, 256, 256)).shape == (2, 1, 30, 30)
    # The pixels one score depends on (no norm: nothing image-wide) form a 70 x 70 square.
    linear = PatchGANDiscriminator(in_channels=3, width=8, norm="none")
    images = torch.randn(1, 3, 128, 128, requires_grad=True)
    (grad,) = torch.autograd.grad(linear(images)[0, 0, 5, 5], images)
    rows, columns = grad.abs().sum(dim=(0, 1)).nonzero().unbind(1)
    assert rows.max() - rows.min() + 1 == columns.max() - columns.min() + 1 == 70


@pytest.mark.parametrize(("resolution", "n_blocks", "expected"),
                         [(128, None, 6), (256, None, 9), (32, None, 6), (32, 2, 2)])  # fmt: skip
def test_residual_blocks_follow_the_papers_rule_unless_set(resolution, n_blocks, expected):
    objective = CycleGAN(_config(data={"resolution": resolution}, n_blocks=n_blocks))
    for name in GENERATORS:
        network = objective.networks[name]
        assert sum(isinstance(m, ResidualBlock) for m in network.modules()) == expected


@pytest.mark.parametrize("resolution", [16, 24, 32])
def test_networks_map_images_of_each_resolution(resolution):
    objective = CycleGAN(_config(data={"resolution": resolution}))
    images = torch.rand(3, 1, resolution, resolution) * 2 - 1
    for name in GENERATORS:
        out = objective.networks[name](images)
        assert out.shape == images.shape and out.abs().max() <= 1
    side = resolution // 4 - 2  # two stride-2 layers, two 4x4 stride-1 ones
    for name in DISCRIMINATORS:
        assert objective.networks[name](images).shape == (3, 1, side, side)


def test_translate_keeps_the_size_of_non_square_and_odd_images():
    objective = CycleGAN(_config()).eval()
    for height, width in [(16, 40), (13, 21)]:
        images = torch.rand(2, 1, height, width) * 2 - 1
        assert objective.translate(images).shape == (2, 1, height, width)


def test_domains_may_have_different_channels_without_the_identity_loss():
    objective = CycleGAN(_config(data={"channels_a": 3}, identity_weight=0.0))  # RGB A, gray B
    a, b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1
    assert objective.networks["generator"](a).shape == b.shape
    assert objective.networks["generator_ba"](b).shape == a.shape
    assert objective.networks["discriminator"](b).shape[:2] == (2, 1)  # D_B judges B
    assert objective.networks["discriminator_a"](a).shape[:2] == (2, 1)
    objective.loss("generator", {"a": a, "b": b})[0].backward()
    with pytest.raises(ConfigError, match=r"identity_weight=0.5 .*\(A: 3, B: 1\)") as error:
        CycleGAN(_config(data={"channels_a": 3}))
    assert "\n" not in str(error.value)


def test_a_patchgan_too_large_for_the_resolution_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"model.d_layers=3 .*70-pixel.* >= 24; got 16") as e:
        CycleGAN(_config(d_layers=3))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_evaluation_normalises_each_image_by_itself_as_in_training(norm, tmp_path):
    """The reference's InstanceNorm2d(track_running_stats=False) (and pix2pix's test batch of
    one): in evaluation each image gets its own statistics, as a training batch of one does;
    the running averages (moved by training) are kept but unused."""
    trainer = Trainer(_config(norm=norm, data={"resolution": 32}), tmp_path)
    trainer.train_step()  # running statistics away from their initial (0, 1)
    generator = trainer.objective.networks["generator"]
    norms = [m for m in generator.modules() if isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d))]
    assert norms and all(not torch.equal(n.running_mean, torch.zeros_like(n.running_mean))
                         for n in norms)  # fmt: skip
    torch.manual_seed(1)
    images = torch.rand(2, 1, 48, 48) * 2 - 1
    with torch.no_grad():
        evaluated = generator.eval()(images)
        alone = copy.deepcopy(generator).train()(images[1:])  # a training batch of one
        torch.testing.assert_close(evaluated[1:], alone, atol=1e-5, rtol=0)
        with normalisation(generator, "running"):  # the running averages: another function
            assert (generator(images) - evaluated).abs().max() > 1e-2


def test_tiles_with_the_images_statistics_agree_with_the_whole_image(tmp_path):
    """With the whole image's statistics frozen, a crop's translation equals the same crop of
    the whole translation wherever the receptive field stays inside the crop."""
    trainer = Trainer(_config(data={"resolution": 32}), tmp_path)
    trainer.train_step()
    generator = trainer.objective.networks["generator"].eval()
    torch.manual_seed(1)
    image = torch.rand(1, 1, 96, 96) * 2 - 1
    crop = image[..., 32:, 32:]  # shares the bottom and right borders with the image
    layers = [m for m in generator.modules() if isinstance(m, nn.InstanceNorm2d)]
    with torch.no_grad():
        stages: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

        def record(layer: nn.Module, args: tuple[torch.Tensor]) -> None:
            stages[layer] = (args[0].mean((0, 2, 3)), args[0].var((0, 2, 3), unbiased=False))

        hooks = [layer.register_forward_pre_hook(record) for layer in layers]
        whole = generator(image)
        for hook in hooks:
            hook.remove()
        with normalisation(generator, "image", stages):
            tile = generator(crop)
        torch.testing.assert_close(tile[..., 32:, 32:], whole[..., 64:, 64:], atol=1e-5, rtol=0)
        # The check can fail: the crop normalised by its own statistics.
        assert (generator(crop)[..., 32:, 32:] - whole[..., 64:, 64:]).abs().max() > 1e-3


def test_weights_written_with_running_statistics_in_evaluation_still_load(monkeypatch):
    """Checkpoints and exports of the previous instance norm (track_running_stats=True, used in
    evaluation) hold running_mean / running_var: they load as they are, are kept, and are
    what stats="running" applies, giving the old evaluation output exactly."""
    from gankit.nets import translation

    def old_norm(kind: str, channels: int) -> nn.Module:
        return nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)

    with monkeypatch.context() as patch:
        patch.setattr(translation, "norm_layer", old_norm)
        old = ResNetTranslator(in_channels=1, out_channels=1, width=4, n_blocks=1)
    old.train()(torch.rand(4, 1, 16, 16))  # running averages away from (0, 1)
    new = ResNetTranslator(in_channels=1, out_channels=1, width=4, n_blocks=1)
    new.load_state_dict(old.state_dict())  # strict: the same keys
    images = torch.rand(2, 1, 24, 24) * 2 - 1
    with torch.no_grad():
        with normalisation(new.eval(), "running"):
            torch.testing.assert_close(new(images), old.eval()(images))
        assert (new(images) - old(images)).abs().max() > 1e-3  # now: each image by itself


# --------------------------------------------------------------------------------------------------
# Phases and losses


def test_each_phase_updates_every_parameter_of_its_networks_and_no_others(tmp_path):
    trainer = Trainer(_config(), tmp_path)
    networks = trainer.objective.networks
    assert [(p.name, p.networks) for p in trainer.phases] == [
        ("generator", GENERATORS), ("discriminator", DISCRIMINATORS)
    ]  # fmt: skip
    assert all(p.lr == 2e-4 and p.betas == (0.5, 0.999) for p in trainer.phases)
    assert [p.needs_data for p in trainer.phases] == [True, False]  # D: the G phase's batch
    for phase in trainer.phases:
        before = {name: parameters_of(net) for name, net in networks.items()}
        trainer.run_phase(phase)
        for name, network in networks.items():
            changed = {
                k for k, v in parameters_of(network).items() if not torch.equal(v, before[name][k])
            }
            expected = set(before[name]) if name in phase.networks else set()
            assert changed == expected, f"{phase.name}: {name}"


def test_generator_loss_is_eq3_plus_half_lambda_identity_with_each_term_as_in_the_paper(
    tmp_path,
):
    trainer = Trainer(_config(), tmp_path)
    objective, batch = trainer.objective, next(trainer.loader)
    a, b = batch["a"], batch["b"]
    g, f = objective.networks["generator"], objective.networks["generator_ba"]
    d_b, d_a = objective.networks["discriminator"], objective.networks["discriminator_a"]
    loss, stats = objective.loss("generator", batch)
    with torch.no_grad():
        fake_b, fake_a = g(a), f(b)
        gan = (d_b(fake_b) - 1).square().mean() + (d_a(fake_a) - 1).square().mean()
        cycle = _l1(f(fake_b), a) + _l1(g(fake_a), b)
        identity = _l1(g(b), b) + _l1(f(a), a)
    for name, value in {"gan": gan, "cycle": cycle, "identity": identity}.items():
        assert stats[f"loss_{name}"].item() == pytest.approx(value.item(), rel=1e-5), name
    assert loss.item() == pytest.approx((gan + 10 * cycle + 5 * identity).item(), rel=1e-5)

    objective.model_cfg.identity_weight = 0.0  # no identity term: nor its cost
    loss, stats = objective.loss("generator", batch)
    assert "loss_identity" not in stats
    assert loss.item() == pytest.approx((gan + 10 * cycle).item(), rel=1e-5)
    objective.model_cfg.lambda_cycle = 0.0
    assert objective.loss("generator", batch)[0].item() == pytest.approx(gan.item(), rel=1e-5)


def test_every_generator_term_has_gradients_in_both_generators(tmp_path):
    trainer = Trainer(_config(), tmp_path)
    objective, batch = trainer.objective, next(trainer.loader)
    terms, _ = objective.generator_terms(batch["a"], batch["b"])
    assert set(terms) == {"gan", "cycle", "identity"}
    for term_name, term in terms.items():
        for name in GENERATORS:
            parameters = list(objective.networks[name].parameters())
            grads = torch.autograd.grad(term, parameters, retain_graph=True)
            norm = torch.stack([grad.norm() for grad in grads]).norm()
            assert torch.isfinite(norm) and norm > 0, f"{term_name} does not reach {name}"


def test_discriminators_see_the_generator_phases_reals_and_fakes(tmp_path):
    trainer = Trainer(_config(pool_size=50), tmp_path)
    objective = trainer.objective
    g, f = objective.networks["generator"], objective.networks["generator_ba"]
    recorders = {name: Recorder(objective.networks[name]) for name in DISCRIMINATORS}
    generator_batch = next(trainer.loader)
    objective.loss("generator", generator_batch)
    with torch.no_grad():
        fakes = {"discriminator": g(generator_batch["a"]),
                 "discriminator_a": f(generator_batch["b"])}  # fmt: skip
    for recorder in recorders.values():
        recorder.calls.clear()
    loss, _ = objective.loss("discriminator", None)  # as the trainer calls it: no batch
    expected = 0.0
    for name, domain in (("discriminator", "b"), ("discriminator_a", "a")):
        (real_in, real_scores), (fake_in, fake_scores) = recorders[name].calls
        assert torch.equal(real_in, generator_batch[domain])
        torch.testing.assert_close(fake_in, fakes[name])  # the pool is not full: passed through
        expected += 0.5 * (real_scores - 1).square().mean() + 0.5 * fake_scores.square().mean()
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)
    assert objective.pools["a"].count == objective.pools["b"].count == 8


# --------------------------------------------------------------------------------------------------
# The image pool


def _distinct(start: int, n: int) -> torch.Tensor:
    """n images (n, 1, 2, 2) told apart by their value."""
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2)


def _ids(images: torch.Tensor) -> list[int]:
    return images[:, 0, 0, 0].long().tolist()


def test_pool_fills_to_50_then_returns_a_stored_image_half_of_the_time():
    torch.manual_seed(0)
    pool = ImagePool(50)
    for start in range(0, 48, 8):
        assert _ids(pool.query(_distinct(start, 8))) == list(range(start, start + 8))
    assert pool.count == 48
    returned = _ids(pool.query(_distinct(48, 8)))
    assert returned[:2] == [48, 49] and pool.count == 50  # filled; then the coin flips begin
    stored_then_returned = 0
    for start in range(56, 56 + 4000, 8):
        stored_before = set(_ids(pool.images))
        new = list(range(start, start + 8))
        returned = _ids(pool.query(_distinct(start, 8)))
        for i, (image, out) in enumerate(zip(new, returned, strict=True)):
            if out != image:  # a stored image came back and the new one took its place
                assert out in stored_before | set(new[:i])
                stored_then_returned += 1
        assert set(_ids(pool.images)) | set(returned) == stored_before | set(new)
        assert len(set(_ids(pool.images))) == 50
    assert 0.46 < stored_then_returned / 4000 < 0.54  # 1/2, within 5 standard deviations


def test_an_empty_pool_passes_images_through():
    images = _distinct(0, 8)
    assert ImagePool(0).query(images) is images


def test_a_restored_pool_makes_the_same_choices():
    torch.manual_seed(0)
    pool = ImagePool(10)
    pool.query(_distinct(0, 16))
    state = {
        k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in pool.state_dict().items()
    }
    rng = torch.get_rng_state()
    first = pool.query(_distinct(100, 16))
    restored = ImagePool(10)
    restored.load_state_dict(state)
    torch.set_rng_state(rng)
    assert torch.equal(restored.query(_distinct(100, 16)), first)
    assert torch.equal(restored.images, pool.images) and restored.count == 10


# --------------------------------------------------------------------------------------------------
# Schedule, resume, presets


def test_lr_is_constant_for_the_first_half_then_decays_linearly_to_zero(tmp_path):
    for preset in ("default", "digits-edges"):  # section 4: 100 epochs constant, 100 decaying
        cfg = build_config(load_yaml(preset_path("cyclegan", preset)), family="cyclegan")
        assert cfg.train.lr_decay_start == 0.5
    trainer = Trainer(_config("train.steps=4", "train.lr_decay_start=0.5"), tmp_path)
    seen = []
    for _ in range(4):  # decays from step 2: 1, 1, 1, 1/2
        trainer.train_step()
        seen.append([trainer.optimizers[p.name].param_groups[0]["lr"] for p in trainer.phases])
    assert seen == [[pytest.approx(2e-4 * f)] * 2 for f in (1, 1, 1, 1 / 2)]


def _train_and_resume(tmp_path, load_pools: bool = True) -> tuple[Trainer, Trainer]:
    straight = Trainer(_config("train.steps=4"), tmp_path / "straight")
    straight.fit()
    Trainer(_config("train.steps=2"), tmp_path / "resumed").fit()
    resumed = Trainer(_config("train.steps=4"), tmp_path / "resumed", resume=True)
    if not load_pools:
        resumed.objective.pools = {"a": ImagePool(6), "b": ImagePool(6)}
    resumed.fit()
    return straight, resumed


def _tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    state = {"networks": trainer.objective.networks.state_dict(),
             "optimizers": {k: o.state_dict()["state"] for k, o in trainer.optimizers.items()},
             "pools": trainer.objective.extra_state()}  # fmt: skip

    def flatten(tree: object, prefix: str) -> dict[str, torch.Tensor]:
        if isinstance(tree, dict):
            return {
                k: v
                for key, sub in tree.items()
                for k, v in flatten(sub, f"{prefix}.{key}").items()
            }
        return {prefix: torch.as_tensor(tree)}

    return flatten(state, "")


def test_training_resumes_bit_identically_with_the_pools(tmp_path):
    """2 + 2 steps equal 4 steps in every tensor. With a pool of 6 and batches of 8 the pools
    fill in the first step and swap images from then on, so their contents matter."""
    straight, resumed = _train_and_resume(tmp_path)
    expected, actual = _tensors(straight), _tensors(resumed)
    assert expected.keys() == actual.keys() and any(".pools.pool_a.images" in k for k in expected)
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, different[:5]


def test_resuming_without_the_pools_would_not_be_exact(tmp_path):
    straight, resumed = _train_and_resume(tmp_path, load_pools=False)
    weights, other = straight.objective.state_dict(), resumed.objective.state_dict()
    assert any(not torch.equal(v, other[k]) for k, v in weights.items())


def test_presets_have_the_papers_settings():
    cfg = build_config(load_yaml(preset_path("cyclegan", "default")), family="cyclegan")
    m, train = cfg.model, cfg.train
    assert (m.lambda_cycle, m.identity_weight, m.pool_size, cfg.train.lr_decay_start) == (
        10, 0.5, 50, 0.5,
    )  # fmt: skip
    assert (m.g_width, m.d_width, m.d_layers, m.norm, m.n_blocks) == (64, 64, 3, "instance", None)
    assert (train.lr_g, train.lr_d, train.betas, train.batch_size) == (2e-4, 2e-4, (0.5, 0.999), 1)
    assert cfg.data.resolution == 256 and not cfg.data.paired and cfg.data.channels == 3
    digits = build_config(load_yaml(preset_path("cyclegan", "digits-edges")), family="cyclegan")
    assert digits.data.source == "digits-edges" and not digits.data.paired
    assert (digits.model.lambda_cycle, digits.train.betas) == (10, (0.5, 0.999))
    CycleGAN(digits)  # builds at its resolution


# --------------------------------------------------------------------------------------------------
# Slow: learning


@pytest.mark.slow
def test_unpaired_training_learns_to_draw_edge_maps(tmp_path):
    """digits-edges unpaired (A: the first 4,000 digits, B: edges of the next 4,000, no digit in
    both), the digits-edges preset: 2,000 steps (measured: L1 0.119 in 553 s, one thread on 2
    busy cores, with one batch per step for both phases; 0.120 in 366 s when D read its own).
    G(held-out digit) must be close to that digit's true edge map, which training never saw:
    mean L1 below 0.2 and below 2/3 of predicting the mean edge map (0.302) and of returning
    the digit itself (0.275).
    """
    cfg = build_config(load_yaml(preset_path("cyclegan", "digits-edges")), family="cyclegan",
                       data={"max_images": 8000}, train={"progress": False},
                       output={"dir": str(tmp_path), "tensorboard": False})  # fmt: skip
    start = time.perf_counter()
    trainer = Trainer(cfg, tmp_path)
    trainer.fit()
    seconds = time.perf_counter() - start
    digits, edges = held_out_digits_and_edges(cfg.data.resolution, 8000)
    translated = trainer.objective.generate_eval({"a": digits})[..., cfg.data.resolution :]
    error = _l1(translated, edges).item()
    mean_edges = trainer.images.images_b.float().div(127.5).sub(1).mean(0, keepdim=True)
    baseline_mean, baseline_input = _l1(mean_edges, edges).item(), _l1(digits, edges).item()
    print(
        f"cyclegan digits-edges: L1 {error:.3f} after {cfg.train.steps} steps ({seconds:.0f} s); "
        f"mean edge map {baseline_mean:.3f}, the digit itself {baseline_input:.3f}"
    )
    assert error < 0.2 and error < 2 / 3 * min(baseline_mean, baseline_input)


# --------------------------------------------------------------------------------------------------
# The discriminator phase judges the generator phase's batch (one batch per step)


class _CountingLoader:
    """The trainer's loader, recording every batch it hands out."""

    def __init__(self, loader: object) -> None:
        self.loader, self.batches = loader, []

    def __next__(self) -> dict[str, torch.Tensor]:
        batch = next(self.loader)
        self.batches.append({k: v.clone() for k, v in batch.items()})
        return batch

    def __getattr__(self, name: str) -> object:
        return getattr(self.loader, name)


def test_each_step_reads_one_batch_and_d_judges_the_reals_g_translated(tmp_path):
    """The reference (optimize_parameters): set_input once, then G and F, then D_A and D_B on
    the same real_A, real_B. Nothing of a step is left over for the next."""
    trainer = Trainer(_config(pool_size=0), tmp_path)
    objective = trainer.objective
    loader = trainer.loader = _CountingLoader(trainer.loader)
    names = (*GENERATORS, *DISCRIMINATORS)
    recorders = {name: Recorder(objective.networks[name]) for name in names}
    for step in range(2):
        for recorder in recorders.values():
            recorder.calls.clear()
        trainer.train_step()
        assert len(loader.batches) == step + 1  # one batch per step, for both phases
        batch = loader.batches[-1]
        fake_b = recorders["generator"].calls[0][1]  # G(a), before G's update
        fake_a = recorders["generator_ba"].calls[0][1]  # F(b)
        for name, domain, fake in (("discriminator", "b", fake_b),
                                   ("discriminator_a", "a", fake_a)):  # fmt: skip
            *_, (real_in, _), (fake_in, _) = recorders[name].calls  # the D phase's two calls
            assert torch.equal(real_in, batch[domain]), (step, name)
            assert torch.equal(fake_in, fake.float())  # no pool: G's fakes of this batch
        assert objective._step_images is None  # consumed: a checkpoint now holds all there is


def test_the_d_phase_without_this_steps_generator_phase_is_an_error(tmp_path):
    trainer = Trainer(_config(), tmp_path)
    objective, batch = trainer.objective, next(trainer.loader)
    objective.set_step(0)
    with pytest.raises(GankitError, match="generator phase"):
        objective.loss("discriminator", None)
    objective.loss("generator", batch)
    objective.set_step(1)  # a new step drops the last one's batch and fakes
    with pytest.raises(GankitError, match="generator phase"):
        objective.loss("discriminator", None)
    loss, _ = objective.loss("discriminator", batch)  # a batch given: judged with its own fakes
    assert torch.isfinite(loss)
