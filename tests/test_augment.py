"""DiffAugment: each transform does what the paper says, is differentiable, and reaches every
family's discriminator (and only it) when train.diffaugment is set."""

from __future__ import annotations

import pytest
import torch

from gankit.errors import ConfigError
from gankit.nets.augment import (
    attach_diffaugment,
    color,
    cutout,
    diffaugment,
    same_transform,
    set_image_channels,
    translation,
)
from gankit.objectives import OBJECTIVES
from gankit.resolve import build_config
from gankit.training import Trainer
from tests.conftest import tiny_config

POLICY = ["color", "translation", "cutout"]


def test_translation_shifts_each_image_by_at_most_an_eighth_with_zero_fill():
    torch.manual_seed(0)
    x = torch.arange(1, 4 * 2 * 16 * 16 + 1, dtype=torch.float32).view(4, 2, 16, 16)
    out = translation(x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))  # 16 / 8 = 2 pixels each way
    for image, original in zip(out, padded, strict=True):
        shifts = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(image, original[:, 2 + dy : 18 + dy, 2 + dx : 18 + dx])
        ]
        assert len(shifts) == 1
    assert not torch.equal(out, x)  # 4 images unshifted has probability (1/25)^4


def test_cutout_zeroes_one_square_of_half_the_size_clipped_by_the_border():
    torch.manual_seed(0)
    out = cutout(torch.ones(64, 3, 16, 16))
    zeros = out[:, 0] == 0
    assert torch.equal(zeros, (out == 0).all(dim=1))  # the same pixels in every channel
    for mask in zeros:
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        assert 0 < len(rows) <= 8 and 0 < len(cols) <= 8
        assert mask.sum() == len(rows) * len(cols)  # a rectangle
        assert rows.max() - rows.min() + 1 == len(rows)
    assert (zeros.sum(dim=(1, 2)) == 64).any()  # some squares lie fully inside


def test_color_draws_per_image_and_leaves_gray_pixels_gray():
    torch.manual_seed(0)
    gray = torch.rand(8, 1, 4, 4).expand(8, 3, 4, 4) * 2 - 1
    out = color(gray)
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    shifts = (out - gray).mean(dim=(1, 2, 3))
    assert shifts.unique().numel() == 8


def test_diffaugment_is_differentiable_in_the_images():
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    diffaugment(x, POLICY).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_the_hook_augments_images_and_passes_other_arguments():
    seen = []

    class Judge(torch.nn.Module):
        def forward(self, a, b, labels, alpha):
            seen.append((a, b, labels, alpha))
            return a.sum()

    judge = Judge()
    attach_diffaugment(judge, ["cutout"])
    a, b, labels = torch.ones(2, 1, 8, 8), torch.ones(2, 1, 8, 8), torch.tensor([1, 2])
    judge(a, b, labels, 0.5)
    got_a, got_b, got_labels, alpha = seen[0]
    assert (got_a == 0).any() and (got_b == 0).any()
    assert got_labels is labels and alpha == 0.5
    with pytest.raises(ValueError, match="valid: color, translation, cutout"):
        attach_diffaugment(judge, ["zoom"])


@pytest.mark.parametrize("family", OBJECTIVES.names())
def test_each_family_trains_with_diffaugment_on_its_discriminator_only(family, tmp_path):
    trainer = Trainer(tiny_config(family, train={"diffaugment": POLICY}), tmp_path)
    networks = trainer.objective.networks
    judged = set(trainer.objective.discriminators)
    for name, network in networks.items():
        assert bool(network._forward_pre_hooks) == (name in judged), name
    before = {k: v.clone() for k, v in networks.state_dict().items()}
    for phase in trainer.phases:
        trainer.run_phase(phase)
    after = networks.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    changed = {k.split(".")[0] for k, v in after.items() if not torch.equal(before[k], v)}
    assert changed == set(networks), f"unchanged: {set(networks) - changed}"


def test_a_diffaugment_run_resumes_bit_identically(tmp_path):
    train = {"diffaugment": POLICY}
    straight = Trainer(tiny_config("dcgan", "train.steps=4", train=train), tmp_path / "a")
    straight.fit()
    Trainer(tiny_config("dcgan", "train.steps=2", train=train), tmp_path / "b").fit()
    resumed = Trainer(tiny_config("dcgan", "train.steps=4", train=train), tmp_path / "b",
                      resume=True)  # fmt: skip
    resumed.fit()
    for key, value in straight.objective.state_dict().items():
        assert torch.equal(value, resumed.objective.state_dict()[key]), key


@pytest.mark.parametrize(
    ("value", "message"),
    [(["zoom"], "train.diffaugment"), (["color", "color"], "lists a policy twice")],
)
def test_bad_diffaugment_values_are_one_line_errors(value, message):
    with pytest.raises(ConfigError, match=message) as error:
        build_config({"family": "dcgan", "train": {"diffaugment": value}})
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------------------------------
# Conditional and paired inputs: colour on image channels only, one transform per pair


class Seen(torch.nn.Module):
    """A stand-in discriminator that keeps the (augmented) batches it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x)
        return x.mean()


def test_color_on_image_channels_leaves_the_condition_and_takes_its_means_from_the_image():
    x = torch.rand(6, 5, 8, 8) * 2 - 1  # 2 condition planes, then a 3-channel image
    torch.manual_seed(0)
    out = color(x, channels=slice(2, 5))
    assert torch.equal(out[:, :2], x[:, :2])
    torch.manual_seed(0)
    assert torch.allclose(out[:, 2:], color(x[:, 2:]))  # the same draws, the image's own means
    assert (out[:, 2:] - x[:, 2:]).abs().mean() > 0.1


def test_rows_with_one_index_get_one_transform_and_the_others_their_own():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    both = torch.cat([x, x])
    out = diffaugment(both, POLICY, rows=torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]))
    assert torch.equal(out[:4], out[4:])
    assert not torch.equal(out[0], out[1])
    independent = diffaugment(both, POLICY)
    assert not torch.equal(independent[:4], independent[4:])
    with pytest.raises(ValueError, match="one index per image"):
        diffaugment(both, POLICY, rows=torch.tensor([0, 1]))


def test_the_hook_colours_declared_image_channels_and_pairs_rows_only_inside_same_transform():
    judge = Seen()
    set_image_channels(judge, slice(1, 2))
    attach_diffaugment(judge, POLICY)
    torch.manual_seed(0)
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    pairs = torch.cat([x, x], dim=1)  # condition = image: geometry must keep them equal
    judge(pairs)
    with same_transform(judge, torch.tensor([0, 1, 2, 0, 1, 2])):
        judge(torch.cat([pairs, pairs]))
    judge(torch.cat([pairs, pairs]))
    alone, inside, after = judge.inputs
    # channel 0 was only moved and cut (every value one of x's or 0); channel 1 also recoloured
    values = torch.cat([x.flatten(), torch.zeros(1)])
    assert torch.isin(alone[:, 0], values).all()
    recoloured = alone[:, 1][alone[:, 1] != 0]
    assert len(recoloured) and not torch.isin(recoloured, values).any()
    assert torch.equal(inside[:3], inside[3:])
    assert not torch.equal(after[:3], after[3:])
