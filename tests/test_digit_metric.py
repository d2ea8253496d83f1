"""The fast digit metric: DigitNet's shipped weights, its features, and their Fréchet distances.

Everything runs offline on the 10,000 MNIST test digits bundled in the package (held-out data: the
classifier was trained on the 60k training split only).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from gankit.data.idx import read_idx
from gankit.errors import CheckpointError, GankitError, MetricError
from gankit.metrics.base import FeatureExtractor
from gankit.metrics.digits import (
    WEIGHTS_PATH,
    DigitFeatures,
    DigitNet,
    class_coverage,
    images_to_input,
    load_digitnet,
)

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "gankit" / "data" / "bundled"


@pytest.fixture(scope="module")
def extractor() -> DigitFeatures:
    return DigitFeatures()


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled MNIST test split: images (10000, 1, 28, 28) uint8, labels (10000,) int64."""
    images = read_idx(BUNDLED / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(BUNDLED / "t10k-labels-idx1-ubyte.gz")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


@pytest.fixture(scope="module")
def digit_features(extractor, digits) -> np.ndarray:
    return extractor.features(digits[0]).double().numpy()


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to features a (N, D) and b (M, D), float64.

    tr sqrt(S1 S2) is computed as the sum of square roots of the eigenvalues of the symmetric
    matrix sqrt(S1) S2 sqrt(S1), which needs only numpy (scipy's sqrtm gives the same value).
    """
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(s1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.linalg.eigvalsh(root1 @ s2 @ root1)
    trace_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)


def test_shipped_weights_are_small_safetensors_with_matching_hash(extractor):
    assert WEIGHTS_PATH.is_file()
    assert WEIGHTS_PATH.stat().st_size < 1_000_000
    assert WEIGHTS_PATH.read_bytes()[8:9] == b"{"  # safetensors: u64 header length, JSON header
    assert extractor.hash == hashlib.sha256(WEIGHTS_PATH.read_bytes()).hexdigest()
    assert isinstance(extractor, FeatureExtractor)
    assert extractor.name == "mnist-digitnet-v1-penultimate-preact"
    assert "fid" not in extractor.name.lower()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 32])
def test_features_have_the_documented_shape_and_dtype(extractor, channels, size):
    images = torch.randint(0, 256, (5, channels, size, size), dtype=torch.uint8)
    features = extractor.features(images)
    assert features.shape == (5, extractor.dims) == (5, 128)
    assert features.dtype == torch.float32 and features.device.type == "cpu"
    assert torch.isfinite(features).all()
    assert extractor.logits(images).shape == (5, 10)
    classes = extractor.classify(images)
    assert classes.shape == (5,) and classes.dtype == torch.int64


def test_features_are_deterministic_and_independent_of_batching(extractor, digits):
    images = digits[0][:300]
    first = extractor.features(images)
    assert torch.equal(first, extractor.features(images))
    in_small_batches = DigitFeatures(batch_size=64).features(images)
    torch.testing.assert_close(in_small_batches, first, rtol=1e-4, atol=1e-4)


def test_gray_repeated_to_rgb_gives_the_same_features(extractor, digits):
    gray = digits[0][:200]
    assert torch.equal(extractor.features(gray.repeat(1, 3, 1, 1)), extractor.features(gray))


def test_rgb_is_converted_with_pil_integer_luma():
    colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 31]]
    rows = torch.tensor(colours, dtype=torch.uint8).repeat(7, 1)  # (28, 3): row i has colour i % 4
    images = rows.T.reshape(1, 3, 28, 1).expand(1, 3, 28, 28).contiguous()
    luma = images_to_input(images)[0, 0, :, 0] * 255  # 28 x 28: not resampled
    expected = [76.0, 150.0, 29.0, 124.0]  # PIL's "L" values for these colours
    assert luma.tolist() == pytest.approx(expected * 7, abs=1e-4)


def test_upscaled_digits_keep_their_class(extractor, digits):
    images, labels = digits[0][:1000], digits[1][:1000]
    larger = F.interpolate(images.float(), size=32, mode="bilinear", antialias=True)
    larger = larger.round().clamp(0, 255).to(torch.uint8)
    accuracy = (extractor.classify(larger) == labels).float().mean().item()
    assert accuracy >= 0.97


def test_classifier_is_accurate_on_the_held_out_test_digits(extractor, digits):
    images, labels = digits
    accuracy = (extractor.classify(images) == labels).float().mean().item()
    assert accuracy >= 0.98
    assert class_coverage(extractor.classify(images)) == 1.0


def test_class_coverage_counts_the_classes_present():
    assert class_coverage(torch.tensor([3, 3, 3])) == pytest.approx(0.1)
    assert class_coverage(torch.arange(10).repeat(2)) == 1.0


def test_frechet_distance_orders_real_shifted_and_noise(digit_features, digits):
    # The two halves of the test split are disjoint samples of the same distribution.
    half = len(digit_features) // 2
    real_vs_real = frechet(digit_features[:half], digit_features[half:])
    generator = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (half, 1, 28, 28), dtype=torch.uint8, generator=generator)
    noise_features = DigitFeatures().features(noise).double().numpy()
    real_vs_noise = frechet(digit_features[:half], noise_features)
    degraded = _shift_and_blur(digits[0][half:])
    degraded_features = DigitFeatures().features(degraded).double().numpy()
    real_vs_degraded = frechet(digit_features[:half], degraded_features)
    print(f"FD real/real {real_vs_real:.3f}, real/shifted+blurred {real_vs_degraded:.3f}, "
          f"real/noise {real_vs_noise:.3f}")  # fmt: skip
    assert real_vs_real < 0.02 * real_vs_noise
    assert 5 * real_vs_real < real_vs_degraded < 0.5 * real_vs_noise


def test_local_frechet_matches_scipy_sqrtm(digit_features):
    linalg = pytest.importorskip("scipy.linalg")
    a, b = digit_features[:2000], digit_features[2000:4000]
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    assert frechet(a, b) == pytest.approx(expected, rel=1e-3, abs=1e-4)


def _shift_and_blur(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) uint8 -> the same digits moved 3 px right and down and 3x3 box-blurred."""
    shifted = torch.roll(images.float(), shifts=(3, 3), dims=(2, 3))
    blurred = F.avg_pool2d(shifted, 3, stride=1, padding=1, count_include_pad=False)
    return blurred.round().to(torch.uint8)


@pytest.mark.parametrize(
    "images",
    [
        torch.zeros(2, 1, 28, 28),  # float, not uint8
        torch.zeros(2, 28, 28, dtype=torch.uint8),  # no channel axis
        torch.zeros(2, 4, 28, 28, dtype=torch.uint8),  # RGBA
        torch.zeros(2, 1, 0, 28, dtype=torch.uint8),  # empty image
    ],
)
def test_bad_images_are_a_one_line_metric_error(extractor, images):
    with pytest.raises(MetricError) as caught:
        extractor.features(images)
    assert "\n" not in str(caught.value)


def test_no_images_give_no_features(extractor):
    features = extractor.features(torch.zeros(0, 1, 28, 28, dtype=torch.uint8))
    assert features.shape == (0, 128) and features.dtype == torch.float32


def test_missing_or_foreign_weights_are_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        DigitFeatures(tmp_path / "absent.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read safetensors"):
        load_digitnet(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    with pytest.raises(GankitError, match="not DigitNet v1"):
        load_digitnet(foreign)


def test_untrained_network_maps_digits_to_features_and_logits():
    net = DigitNet().eval()
    x = torch.rand(4, 1, 28, 28)
    assert net.features(x).shape == (4, 128)
    assert net(x).shape == (4, 10)
