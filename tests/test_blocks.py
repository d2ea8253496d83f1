"""The shared blocks of the ResNet GANs: shapes and the math of each block."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import ConfigError
from gankit.nets.blocks import (
    ClassConditionalBatchNorm2d,
    ConditionalBatchNorm2d,
    ProjectionHead,
    ResBlockDown,
    ResBlockUp,
    SelfAttention,
    sn,
)
from gankit.nets.resnet import ResNetDiscriminator, ResNetGenerator, split_sizes


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_residual_blocks_resample_by_two():
    up = ResBlockUp(in_channels=8, out_channels=4, spectral=True)
    assert up(torch.randn(2, 8, 5, 5)).shape == (2, 4, 10, 10)
    down = ResBlockDown(in_channels=4, out_channels=8)
    assert down(torch.randn(2, 4, 10, 10)).shape == (2, 8, 5, 5)
    first = ResBlockDown(in_channels=1, out_channels=8, first=True)
    assert first(torch.randn(2, 1, 16, 16)).shape == (2, 8, 8, 8)
    same = ResBlockDown(in_channels=8, out_channels=8, downsample=False)
    assert same.shortcut is None  # identity shortcut when the shape is unchanged
    assert same(torch.randn(2, 8, 4, 4)).shape == (2, 8, 4, 4)


def test_down_blocks_follow_the_paper_order():
    # The optimised first block: conv -> ReLU -> conv -> pool, shortcut pool -> conv1x1.
    first = ResBlockDown(in_channels=1, out_channels=4, first=True, spectral=False)
    x = torch.randn(2, 1, 8, 8)
    expected = F.avg_pool2d(first.conv2(F.relu(first.conv1(x))), 2)
    torch.testing.assert_close(first(x), expected + first.shortcut(F.avg_pool2d(x, 2)))
    # Later blocks: ReLU -> conv -> ReLU -> conv -> pool, shortcut conv1x1 -> pool.
    later = ResBlockDown(in_channels=4, out_channels=8, spectral=False)
    x = torch.randn(2, 4, 8, 8)
    expected = F.avg_pool2d(later.conv2(F.relu(later.conv1(F.relu(x)))), 2)
    torch.testing.assert_close(later(x), expected + F.avg_pool2d(later.shortcut(x), 2))


def _double(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def test_up_block_follows_the_paper_order():
    up = ResBlockUp(in_channels=4, out_channels=2)
    x = torch.randn(3, 4, 5, 5)
    h = up.conv1(_double(F.relu(up.norm1(x))))
    expected = up.conv2(F.relu(up.norm2(h))) + up.shortcut(_double(x))
    torch.testing.assert_close(up(x), expected)


def test_self_attention_is_the_identity_at_init():
    attention = SelfAttention(16)
    x = torch.randn(2, 16, 6, 6)
    assert torch.equal(attention(x), x)


def test_self_attention_matches_the_paper_equations():
    attention = SelfAttention(16)
    with torch.no_grad():
        attention.gamma.fill_(0.7)
    x = torch.randn(2, 16, 4, 5)
    f, g, h = (layer(x).flatten(2) for layer in (attention.f, attention.g, attention.h))
    s = torch.einsum("nci,ncj->nij", f, g)  # s_ij = f(x_i)^T g(x_j)
    beta = s.softmax(dim=1)  # beta_{j,i}: normalised over i (eq. 1)
    o = torch.einsum("nij,nci->ncj", beta, h).reshape(2, -1, 4, 5)  # sum_i beta_{j,i} h(x_i)
    expected = 0.7 * attention.v(o) + x  # eqs. 2 and 3
    torch.testing.assert_close(attention(x), expected, rtol=1e-4, atol=1e-5)
    assert attention.f.out_channels == 16 // 8


@pytest.mark.parametrize("shape", [(30, 20), (8, 4, 3, 3)])
def test_spectral_norm_bounds_the_largest_singular_value(shape):
    layer = nn.Linear(shape[1], shape[0]) if len(shape) == 2 else nn.Conv2d(4, 8, 3)
    with torch.no_grad():
        layer.weight.mul_(10)
    layer = sn(layer)
    x = torch.randn(4, *((shape[1],) if len(shape) == 2 else (4, 6, 6)))
    for _ in range(30):  # one power iteration per training-mode forward pass
        layer(x)
    sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=1e-3)
    raw = torch.linalg.matrix_norm(layer.parametrizations.weight.original.detach().flatten(1), 2)
    assert raw.item() > 2.0  # the raw weight is unchanged: only its use is normalised
    assert sn(nn.Linear(3, 3), enabled=False).__class__ is nn.Linear


def test_conditional_batch_norm_applies_gains_and_biases_from_the_condition():
    norm = ConditionalBatchNorm2d(channels=6, condition_dim=5)
    x, c = torch.randn(4, 6, 3, 3), torch.randn(4, 5)
    normalised = F.batch_norm(x, None, None, training=True, eps=norm.norm.eps)
    gain = 1 + c @ norm.gain.weight.T + norm.gain.bias
    bias = c @ norm.bias.weight.T + norm.bias.bias
    expected = gain[:, :, None, None] * normalised + bias[:, :, None, None]
    torch.testing.assert_close(norm(x, c), expected, rtol=1e-5, atol=1e-5)
    same_x = x[:1].expand(2, -1, -1, -1)
    out = norm(same_x, torch.randn(2, 5))
    assert not torch.allclose(out[0], out[1])


def test_class_conditional_batch_norm_differs_per_class():
    norm = ClassConditionalBatchNorm2d(6, num_classes=3)
    x = torch.randn(4, 6, 3, 3)
    plain = F.batch_norm(x, None, None, training=True, eps=norm.norm.eps)
    labels = torch.tensor([0, 1, 2, 1])
    torch.testing.assert_close(norm(x, labels), plain)  # gains 1, biases 0 at init
    with torch.no_grad():
        norm.gain.weight.normal_(1.0, 0.5)
        norm.bias.weight.normal_(0.0, 0.5)
    as_zero, as_one = norm(x, torch.zeros(4, dtype=torch.long)), norm(x, torch.ones(4).long())
    assert (as_zero - as_one).abs().max() > 0.1
    expected = norm.gain.weight[1][:, None, None] * plain + norm.bias.weight[1][:, None, None]
    torch.testing.assert_close(as_one, expected.expand_as(as_one))


def test_projection_head_adds_the_inner_product_with_the_class_embedding():
    head = ProjectionHead(features=8, num_classes=4).eval()  # eval: fixed u, v, so fixed weights
    features = torch.randn(3, 8)
    labels = torch.tensor([0, 2, 3])
    psi = features @ head.psi.weight.T + head.psi.bias
    expected = psi.squeeze(1) + (head.embed.weight[labels] * features).sum(1)
    torch.testing.assert_close(head(features, labels), expected)
    other = head(features, (labels + 1) % 4)
    assert (other - head(features, labels)).abs().min() > 1e-4
    assert ProjectionHead(features=8).eval()(features).shape == (3,)


@pytest.mark.parametrize("resolution", [16, 28, 32, 64])
def test_resnet_shapes_at_several_resolutions(resolution):
    attention = resolution // 2
    g = ResNetGenerator(latent_dim=12, resolution=resolution, channels=3, width=4, num_classes=5,
                        attention_at=attention, spectral_norm=True, hierarchical=True,
                        shared_embedding_dim=6)  # fmt: skip
    d = ResNetDiscriminator(
        resolution=resolution, channels=3, width=4, num_classes=5, attention_at=attention
    )
    images = g(torch.randn(2, 12), torch.tensor([0, 4]))
    assert images.shape == (2, 3, resolution, resolution)
    assert images.abs().max() <= 1
    assert d(images, torch.tensor([1, 2])).shape == (2,)


def test_resnet_refuses_unfit_resolutions_and_attention_sizes():
    with pytest.raises(ConfigError, match=r"data\.resolution=72"):
        ResNetGenerator(
            latent_dim=8, resolution=24 * 3, channels=1, width=4
        )  # 72 = 9 * 8: no s0 in 4..7
    with pytest.raises(ConfigError, match="attention_at=32"):
        ResNetDiscriminator(resolution=32, channels=1, width=4, attention_at=32)
    assert split_sizes(10, 4) == [3, 3, 2, 2]
