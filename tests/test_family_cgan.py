"""CGAN: both networks depend on the label; labels are required, validated and honoured."""

from __future__ import annotations

import pytest
import torch

from gankit.errors import ConfigError, GankitError
from gankit.losses import bce_discriminator_loss
from gankit.objectives import OBJECTIVES
from gankit.training import Trainer
from tests.conftest import tiny_config

CONV = ("model.architecture=conv", "model.g_width=4", "model.d_width=4", "data.resolution=16")


@pytest.fixture(params=["mlp", "conv"])
def objective(request, tmp_path):
    overrides = CONV if request.param == "conv" else ()
    objective = Trainer(tiny_config("cgan", *overrides), tmp_path).objective
    return objective.eval()


def test_cgan_needs_labels():
    with pytest.raises(ConfigError, match="cgan needs class labels"):
        OBJECTIVES.get("cgan")(tiny_config("cgan"), num_classes=0)


def test_same_z_with_another_label_gives_another_image(objective):
    inputs = objective.sample_inputs(2, torch.Generator().manual_seed(0))
    inputs["z"] = inputs["z"][:1].expand(2, -1)
    inputs["label"] = torch.tensor([3, 7])
    with torch.no_grad():
        images = objective.generate(inputs)
    assert (images[0] - images[1]).abs().max() > 1e-4


def test_discriminator_output_depends_on_the_label(objective):
    images = objective.sample(1, seed=0).expand(2, -1, -1, -1)
    with torch.no_grad():
        scores = objective.networks["discriminator"](images, torch.tensor([3, 7]))
    assert scores.shape == (2,)
    assert (scores[0] - scores[1]).abs() > 1e-6


def test_sampling_honours_labels_and_draws_them_from_the_seed(objective):
    labels = torch.tensor([0, 1, 2, 9])
    inputs = objective.sample_inputs(4, torch.Generator().manual_seed(5), labels=labels)
    assert torch.equal(inputs["label"], labels)
    images = objective.sample(4, seed=5, labels=labels)
    assert images.shape[0] == 4 and images.min() >= -1 and images.max() <= 1
    first = objective.sample_inputs(64, torch.Generator().manual_seed(5))
    again = objective.sample_inputs(64, torch.Generator().manual_seed(5))
    assert torch.equal(first["label"], again["label"]) and torch.equal(first["z"], again["z"])
    assert first["label"].dtype == torch.int64
    assert first["label"].min() >= 0 and first["label"].max() < 10
    assert len(first["label"].unique()) > 1
    torch.testing.assert_close(inputs["z"], first["z"][:4])  # z does not depend on the labels


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (torch.tensor([0, 10]), "label 10 is out of range: classes are 0..9"),
        (torch.tensor([-1, 0]), "label -1 is out of range"),
        (torch.tensor([0, 1, 2]), "labels must be 2 integer classes"),
        (torch.tensor([0.0, 1.0]), "labels must be 2 integer classes"),
    ],
)
def test_bad_labels_are_one_line_errors(objective, labels, message):
    with pytest.raises(GankitError, match=message) as error:
        objective.sample(2, labels=labels)
    assert "\n" not in str(error.value)


def test_truncation_is_refused(objective):
    with pytest.raises(GankitError, match="cgan does not support truncation"):
        objective.sample(2, truncation=0.5)


def test_noise_follows_the_configured_distribution(tmp_path):
    uniform = Trainer(tiny_config("cgan"), tmp_path / "u").objective.sample_inputs(256)["z"]
    assert uniform.min() >= 0 and uniform.max() < 1  # z ~ U[0, 1]^d, the paper's choice
    cfg = tiny_config("cgan", "model.noise=normal")
    assert (Trainer(cfg, tmp_path / "n").objective.sample_inputs(256)["z"] < 0).any()


def test_discriminator_loss_pairs_real_images_with_their_labels(tmp_path):
    trainer = Trainer(tiny_config("cgan"), tmp_path)
    objective, batch = trainer.objective, next(trainer.loader)
    discriminator = objective.networks["discriminator"]
    torch.manual_seed(0)
    loss, _ = objective.loss("discriminator", batch)
    torch.manual_seed(0)  # the same draws: z, labels, G's dropout, D's dropout (real, then fake)
    with torch.no_grad():
        inputs = objective.sample_inputs(batch["image"].shape[0])
        fake = objective.generate(inputs)
    real_logits = discriminator(batch["image"], batch["label"])
    expected = bce_discriminator_loss(real_logits, discriminator(fake, inputs["label"]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("resolution", [16, 32])
def test_conv_networks_shapes(resolution, tmp_path):
    cfg = tiny_config("cgan", *CONV, f"data.resolution={resolution}")
    objective = Trainer(cfg, tmp_path).objective
    images = objective.sample(3, seed=0, labels=torch.tensor([1, 2, 3]))
    assert images.shape == (3, 1, resolution, resolution)
    scores = objective.networks["discriminator"](images, torch.tensor([1, 2, 3]))
    assert scores.shape == (3,)
