"""BigGAN (Brock et al. 2019): orthogonal regularisation in G's loss, hierarchical latent with a
shared embedding, truncation, EMA and the paper's optimiser settings."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import gankit
from gankit.cli import cli
from gankit.config import load_yaml, preset_path
from gankit.errors import ConfigError, GankitError
from gankit.losses import hinge_discriminator_loss, hinge_generator_loss
from gankit.nets.blocks import ConditionalBatchNorm2d
from gankit.objectives.biggan import BigGAN, off_diagonal_gram_energy, orthogonal_regularization
from gankit.resolve import build_config
from gankit.training import Trainer
from tests.conftest import tiny_config
from tests.test_family_sngan import Recorder


def _independent_ortho(network: nn.Module) -> float:
    """sum over conv/linear layers of ||W W^T * (1 - I)||_F^2, W the raw weight as (out, -1)."""
    total = torch.zeros((), dtype=torch.float64)
    for name, param in network.named_parameters():
        if name.endswith("weight.original") or (name.endswith("weight") and param.dim() > 1):
            if name.startswith("shared."):  # the shared class embedding is no conv/linear
                continue
            w = param.detach().double().reshape(param.shape[0], -1)
            gram = w @ w.T
            total += (gram * (1 - torch.eye(len(w), dtype=torch.float64))).square().sum()
    return total.item()


def test_off_diagonal_energy_matches_the_direct_formula_for_wide_and_tall_weights():
    for shape in [(5, 40), (40, 5), (6, 3, 3, 3), (7, 7)]:
        w = torch.randn(shape)
        flat = w.double().reshape(shape[0], -1)
        direct = ((flat @ flat.T) * (1 - torch.eye(shape[0], dtype=torch.float64))).square().sum()
        assert off_diagonal_gram_energy(w).item() == pytest.approx(direct.item(), rel=1e-4)
    assert off_diagonal_gram_energy(torch.linalg.qr(torch.randn(6, 6))[0]).abs() < 1e-4


def test_orthogonal_regularisation_adds_exactly_half_beta_times_r_to_the_generator_loss(tmp_path):
    beta = 0.01  # large enough for the term to dominate the float tolerance
    trainer = Trainer(tiny_config("biggan", f"model.ortho_beta={beta}"), tmp_path)
    objective = trainer.objective
    recorder = Recorder(objective.networks["discriminator"])
    loss, stats = objective.loss("generator", None)
    (_, scores), = recorder.calls  # fmt: skip
    regulariser = _independent_ortho(objective.networks["generator"])
    assert regulariser > 1.0
    expected = hinge_generator_loss(scores).item() + beta * regulariser / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert stats["ortho_penalty"].item() == pytest.approx(beta * regulariser / 2, rel=1e-5)
    assert orthogonal_regularization(objective.networks["generator"]).item() == pytest.approx(
        regulariser / 2, rel=1e-5
    )


def _reference_ortho_gradient(weight: torch.Tensor, beta: float) -> torch.Tensor:
    """What the authors' code adds to a weight's gradient, written out by hand:
    beta * 2 (W W^T (.) (1 - I)) W with W the weight as (out, -1), in float64."""
    w = weight.detach().double().reshape(weight.shape[0], -1)
    off_diagonal = (w @ w.T) * (1 - torch.eye(len(w), dtype=torch.float64))
    return (beta * 2 * off_diagonal @ w).reshape(weight.shape)


def test_orthogonal_regularisation_gradient_equals_the_reference_codes_at_the_same_beta():
    torch.manual_seed(0)
    beta = 1e-4
    # wide (out < k), tall (out > k: the W^T W path) and a conv weight (out, in, kh, kw)
    network = nn.Sequential(nn.Linear(6, 3), nn.Linear(3, 7), nn.Conv2d(2, 4, 3))
    (beta * orthogonal_regularization(network)).backward()
    for layer in (network[0], network[1], network[2]):
        expected = _reference_ortho_gradient(layer.weight, beta)
        assert expected.abs().max() > 1e-6
        torch.testing.assert_close(layer.weight.grad.double(), expected, rtol=1e-5, atol=1e-12)
    # By hand: W = [[1, 2], [3, -1]] has W W^T off its diagonal = 1 * 3 + 2 * -1 = 1, so the
    # sum is 1/2 (1^2 + 1^2) = 1 and the gradient 2 [[0, 1], [1, 0]] W = [[6, -2], [2, 4]].
    layer = nn.Linear(2, 2, bias=False)
    layer.weight = nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))
    penalty = orthogonal_regularization(layer)
    penalty.backward()
    assert penalty.item() == 1.0
    torch.testing.assert_close(layer.weight.grad, torch.tensor([[6.0, -2.0], [2.0, 4.0]]))


def test_ortho_beta_zero_leaves_the_hinge_loss(tmp_path):
    trainer = Trainer(tiny_config("biggan", "model.ortho_beta=0"), tmp_path)
    recorder = Recorder(trainer.objective.networks["discriminator"])
    loss, stats = trainer.objective.loss("generator", None)
    (_, scores), = recorder.calls  # fmt: skip
    assert loss.item() == pytest.approx(hinge_generator_loss(scores).item(), rel=1e-6)
    assert "ortho_penalty" not in stats


def test_orthogonal_regularisation_gradient_reaches_generator_weights(tmp_path):
    objective = Trainer(tiny_config("biggan"), tmp_path).objective
    generator = objective.networks["generator"]
    orthogonal_regularization(generator).backward()
    conv = generator.blocks[0].conv1.parametrizations.weight.original
    assert conv.grad is not None and conv.grad.abs().sum() > 0
    assert generator.shared.weight.grad is None  # the shared embedding is not regularised


def test_discriminator_loss_is_the_hinge_loss(tmp_path):
    trainer = Trainer(tiny_config("biggan"), tmp_path)
    recorder = Recorder(trainer.objective.networks["discriminator"])
    batch = next(trainer.loader)
    loss, _ = trainer.objective.loss("discriminator", batch)
    (args, scores), = recorder.calls  # fmt: skip
    n = batch["image"].shape[0]
    assert torch.equal(args[1][:n], batch["label"])
    assert loss.item() == pytest.approx(hinge_discriminator_loss(scores[:n], scores[n:]).item())


def test_hierarchical_latent_and_shared_embedding_condition_every_block():
    objective = BigGAN(tiny_config("biggan"), num_classes=10)
    generator = objective.networks["generator"].eval()
    assert generator.chunk_sizes == [3, 3, 2]  # latent 8 over the linear layer and 2 blocks
    for i, block in enumerate(generator.blocks):
        for norm in (block.norm1, block.norm2):
            assert isinstance(norm, ConditionalBatchNorm2d)
            assert norm.gain.in_features == generator.chunk_sizes[i + 1] + 4  # + shared_dim
    z, labels = torch.randn(2, 8), torch.tensor([1, 2])
    base = generator(z, labels)
    for start, stop in [(0, 3), (3, 6), (6, 8)]:  # each chunk alone changes the images
        moved = z.clone()
        moved[:, start:stop] += 1
        assert (generator(moved, labels) - base).abs().max() > 1e-6
    assert (generator(z, torch.tensor([5, 6])) - base).abs().max() > 1e-6


@pytest.mark.parametrize("truncation", [1.0, 0.5, 0.05])
def test_truncation_bounds_every_latent_entry(truncation):
    objective = BigGAN(tiny_config("biggan"), num_classes=10)
    z = objective.sample_inputs(400, torch.Generator().manual_seed(0), truncation=truncation)["z"]
    assert z.shape == (400, 8)
    assert z.abs().max().item() <= truncation
    assert z.std().item() > truncation / 4  # spread over [-t, t], not collapsed to 0
    again = objective.sample_inputs(400, torch.Generator().manual_seed(0), truncation=truncation)
    assert torch.equal(z, again["z"])
    untruncated = objective.sample_inputs(400, torch.Generator().manual_seed(0))["z"]
    assert untruncated.abs().max() > 2


def test_truncated_sampling_with_labels_and_bad_values():
    objective = BigGAN(tiny_config("biggan"), num_classes=10)
    labels = torch.tensor([0, 9])
    images = objective.sample(2, seed=0, labels=labels, truncation=0.5)
    assert images.shape == (2, 1, 16, 16) and images.abs().max() <= 1
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(GankitError, match=r"truncation must be > 0, got"):
            objective.sample_inputs(2, truncation=bad)


@pytest.mark.parametrize("truncation", [1.5, 4.0])
def test_truncation_above_one_is_allowed_and_still_bounds_z(truncation):
    objective = BigGAN(tiny_config("biggan"), num_classes=10)
    z = objective.sample_inputs(2000, torch.Generator().manual_seed(0), truncation=truncation)["z"]
    assert z.abs().max().item() <= truncation
    assert z.abs().max().item() > min(truncation, 3.0) * 0.9  # not truncated to 1
    images = objective.sample(2, seed=0, labels=torch.tensor([0, 1]), truncation=truncation)
    assert images.shape == (2, 1, 16, 16)


def test_preset_has_the_papers_settings_and_ema():
    cfg = build_config(load_yaml(preset_path("biggan", "mnist")), family="biggan")
    assert (cfg.train.lr_g, cfg.train.lr_d, cfg.train.betas) == (1e-4, 4e-4, (0.0, 0.999))
    assert cfg.train.ema and cfg.train.ema_decay == 0.999
    assert cfg.model.d_steps == 2 and cfg.model.ortho_beta == 1e-4 and cfg.model.hierarchical
    objective = BigGAN(cfg, num_classes=10)
    assert objective.networks["generator"].chunk_sizes == [20, 20, 20]
    assert {p.name: p.repeats for p in objective.phases()} == {"discriminator": 2, "generator": 1}
    default = build_config(load_yaml(preset_path("biggan", "default")), family="biggan")
    assert default.train.ema and default.model.latent_dim == 128
    assert BigGAN(default, num_classes=10).networks["generator"].chunk_sizes == [32] * 4


def test_ema_export_reloads_and_samples_with_truncation(tmp_path):
    trainer = Trainer(tiny_config("biggan", "train.ema=true", "train.steps=2"), tmp_path)
    result = trainer.fit()
    labels = torch.tensor([1, 2])
    expected = trainer.objective.sample(
        2, network=trainer.ema.shadow, seed=0, labels=labels, truncation=0.5
    )
    loaded = gankit.load(result.export_dir)  # spectral-norm weights and u, v via safetensors
    images = loaded.sample(2, seed=0, labels=labels, truncation=0.5)
    torch.testing.assert_close(images, expected)
    assert images.shape == (2, 1, 16, 16) and torch.isfinite(images).all()
    # The commands take any t > 0 too (t > 1: a wider truncation than N(0, I)'s bulk).
    for command in ("sample", "interpolate"):
        out = tmp_path / f"{command}.png"
        args = [command, str(result.export_dir), "--truncation", "2.5", "--out", str(out)]
        answer = CliRunner().invoke(cli, args)
        assert answer.exit_code == 0 and out.is_file(), answer.output
    refused = CliRunner().invoke(cli, ["sample", str(result.export_dir), "--truncation", "0"])
    assert refused.exit_code == 2 and "--truncation" in refused.output


def test_needs_labels_unless_unconditional():
    with pytest.raises(ConfigError, match="needs class labels"):
        BigGAN(tiny_config("biggan"), num_classes=0)
    objective = BigGAN(tiny_config("biggan", "model.conditional=false"), num_classes=0)
    assert objective.networks["generator"].shared is None
    assert objective.sample(2, seed=0, truncation=0.5).shape == (2, 1, 16, 16)
