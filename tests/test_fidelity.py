"""PSNR and SSIM (gankit.metrics.fidelity) against hand-computed values and an independent SSIM."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from gankit.errors import MetricError
from gankit.metrics.fidelity import gaussian_window, luma, psnr, ssim


def _images(seed: int, shape: tuple[int, ...] = (2, 1, 24, 24)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_psnr_of_identical_images_is_infinite_and_ssim_is_one():
    x = _images(0, (3, 3, 16, 16)) * 2 - 1
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize(
    ("value_range", "offset"), [((0.0, 1.0), 0.1), ((-1.0, 1.0), 0.2), ((0.0, 255.0), 25.5)]
)
def test_psnr_of_a_constant_offset_is_minus_20_log10_of_the_relative_offset(value_range, offset):
    low, high = value_range
    x = low + _images(1) * (high - low) * 0.5
    # MSE = offset^2 on a peak of L = high - low: 10 log10(L^2 / offset^2) = 20 dB here.
    expected = 10 * math.log10((high - low) ** 2 / offset**2)
    assert expected == pytest.approx(20.0)
    assert psnr(x + offset, x, value_range).tolist() == pytest.approx([expected] * 2, abs=1e-9)


def test_psnr_by_hand_on_four_pixels():
    images = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    reference = torch.tensor([[[[0.0, 0.25], [0.5, 0.25]]]])
    mse = (0.25**2 + 0.5**2) / 4  # 0.078125
    assert psnr(images, reference, (0.0, 1.0)).item() == pytest.approx(10 * math.log10(1 / mse))
    assert psnr(images, reference, (0.0, 1.0)).item() == pytest.approx(11.0721, abs=1e-4)


def test_luminance_psnr_uses_bt601_luma():
    gray = _images(2, (1, 1, 16, 16)).expand(-1, 3, -1, -1) * 0.5
    # On gray pixels Y = (16 + 219 v) / 255, so an RGB offset d moves Y by 219 d / 255.
    d = 0.1
    expected = -20 * math.log10(219 * d / 255)
    assert psnr(gray + d, gray, (0.0, 1.0), luminance=True).item() == pytest.approx(expected)
    white, black = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
    assert luma(white.double()).item() == pytest.approx(235 / 255, abs=1e-6)
    assert luma(black.double()).item() == pytest.approx(16 / 255)
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    assert luma(red).item() == pytest.approx((16 + 65.481) / 255)


def test_crop_drops_the_border():
    x = _images(3, (1, 1, 16, 16))
    y = x.clone()
    y[..., :4, :] += 0.5  # only the top border differs
    assert math.isfinite(psnr(y, x, (0.0, 1.0)).item())
    assert math.isinf(psnr(y, x, (0.0, 1.0), crop=4).item())


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = 0.5, 0.6
    x = torch.full((1, 1, 13, 17), a, dtype=torch.float64)
    y = torch.full((1, 1, 13, 17), b, dtype=torch.float64)
    c1 = (0.01 * 1) ** 2
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)  # sigma = 0: the contrast term is C2 / C2
    assert ssim(x, y, (0.0, 1.0)).item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.983609, abs=1e-6)


def _ssim_one_window(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two 11x11 images (one window position), written out from Wang et al. 2004."""
    offsets = np.arange(11) - 5.0
    w = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    mu_x, mu_y = (w * x).sum(), (w * y).sum()
    sigma_x2 = (w * (x - mu_x) ** 2).sum()
    sigma_y2 = (w * (y - mu_y) ** 2).sum()
    sigma_xy = (w * (x - mu_x) * (y - mu_y)).sum()
    c1, c2 = 0.01**2, 0.03**2
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    contrast_structure = (2 * sigma_xy + c2) / (sigma_x2 + sigma_y2 + c2)
    return float(luminance * contrast_structure)


def test_ssim_of_one_window_matches_the_papers_formula_written_out():
    rng = np.random.default_rng(4)
    x = rng.random((11, 11))
    y = np.clip(x + 0.2 * rng.standard_normal((11, 11)), 0, 1)
    got = ssim(torch.from_numpy(y)[None, None], torch.from_numpy(x)[None, None], (0.0, 1.0))
    assert got.item() == pytest.approx(_ssim_one_window(y, x), rel=1e-10)


def test_ssim_map_matches_a_scipy_gaussian_filter_on_the_valid_region():
    rng = np.random.default_rng(5)
    x = rng.random((20, 26))
    y = np.clip(0.7 * x + 0.1 + 0.1 * rng.standard_normal((20, 26)), 0, 1)
    w = gaussian_window().numpy()

    def mean(t: np.ndarray) -> np.ndarray:  # positions where the window fits inside
        return ndimage.correlate(t, w, mode="constant")[5:-5, 5:-5]

    mu_x, mu_y = mean(x), mean(y)
    var_x, var_y, cov = mean(x * x) - mu_x**2, mean(y * y) - mu_y**2, mean(x * y) - mu_x * mu_y
    c1, c2 = 1e-4, 9e-4
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    to_batch = lambda t: torch.from_numpy(t)[None, None]  # noqa: E731
    assert ssim(to_batch(x), to_batch(y), (0.0, 1.0)).item() == pytest.approx(index.mean())
    assert gaussian_window().shape == (11, 11) and gaussian_window().sum().item() == 1.0


def test_ssim_is_symmetric_bounded_and_decreases_with_noise():
    x = _images(6, (4, 3, 24, 24)) * 2 - 1
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    scores = [ssim((x + s * noise).clamp(-1, 1), x) for s in (0.02, 0.1, 0.3, 1.0)]
    for less, more in itertools.pairwise(scores):
        assert (more < less).all()
    y = (x + 0.3 * noise).clamp(-1, 1)
    assert torch.allclose(ssim(x, y), ssim(y, x), rtol=0, atol=1e-14)
    inverted = -x  # anticorrelated structure: negative SSIM, still >= -1
    values = ssim(inverted, x)
    assert (values < 0).all() and (values >= -1).all()


def test_ssim_depends_only_on_the_data_relative_to_its_range():
    x, y = _images(8), _images(9)
    on_unit = ssim(x, y, (0.0, 1.0))
    assert torch.allclose(ssim(x * 255, y * 255, (0.0, 255.0)), on_unit, atol=1e-12)
    assert torch.allclose(ssim(x * 2 - 1, y * 2 - 1), on_unit, atol=1e-12)  # default (-1, 1)
    assert not torch.allclose(ssim(x, y, (0.0, 255.0)), on_unit)  # the stated range matters


def test_one_value_per_image_and_shape_errors():
    x, y = _images(10, (5, 3, 16, 16)), _images(11, (5, 3, 16, 16))
    assert psnr(x, y).shape == (5,) and ssim(x, y).shape == (5,)
    assert psnr(x, y, luminance=True).shape == (5,) and ssim(x, y, luminance=True).shape == (5,)
    separate = torch.cat([ssim(x[i : i + 1], y[i : i + 1]) for i in range(5)])
    assert torch.allclose(ssim(x, y), separate)
    with pytest.raises(MetricError, match="one shape"):
        psnr(x, y[:, :1])
    with pytest.raises(MetricError, match="one shape"):
        ssim(x[0], y[0])
    with pytest.raises(MetricError, match="at least 11x11"):
        ssim(x[..., :10, :], y[..., :10, :])
    with pytest.raises(MetricError, match="needs RGB"):
        psnr(x[:, :1], y[:, :1], luminance=True)
    with pytest.raises(MetricError, match="value_range"):
        psnr(x, y, (1.0, 1.0))
    with pytest.raises(MetricError, match="crop"):
        psnr(x, y, crop=8)
