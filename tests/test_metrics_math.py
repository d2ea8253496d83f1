"""The metrics' numerical core against closed forms and independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from gankit.metrics.math import (
    MetricError,
    frechet_distance,
    gaussian_stats,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _random_spd(dims: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(dims, dims))
    return a @ a.T / dims + 0.1 * np.eye(dims)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr (S1 S2)^(1/2) = sum of sqrt(eigenvalues of S1^(1/2) S2 S1^(1/2)), via eigh."""
    values, vectors = np.linalg.eigh(sigma1)
    root = (vectors * np.sqrt(values)) @ vectors.T
    eigenvalues = np.linalg.eigvalsh(root @ sigma2 @ root)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def test_gaussian_stats_are_mean_and_unbiased_covariance():
    features = _rng().normal(size=(200, 5))
    mu, sigma = gaussian_stats(features)
    centred = features - features.mean(0)
    assert mu.shape == (5,) and sigma.shape == (5, 5) and mu.dtype == np.float64
    np.testing.assert_allclose(sigma, centred.T @ centred / 199)


def test_fid_of_a_set_against_itself_is_zero():
    features = _rng().normal(size=(500, 32)) * np.linspace(0.5, 2.0, 32)
    mu, sigma = gaussian_stats(features)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-3


def test_fid_of_a_rank_deficient_set_against_itself_is_zero():
    mu, sigma = gaussian_stats(_rng().normal(size=(40, 64)))  # N < D: singular covariance
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-3


def test_fid_of_diagonal_gaussians_matches_closed_form():
    rng = _rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2.0 * np.sqrt(s1 * s2))
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-9)


def test_fid_of_general_gaussians_matches_eigendecomposition():
    rng = _rng(2)
    sigma1, sigma2 = _random_spd(10, rng), _random_spd(10, rng)
    assert not np.allclose(sigma1 @ sigma2, sigma2 @ sigma1)  # really non-commuting
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    expected = (
        np.sum((mu1 - mu2) ** 2)
        + np.trace(sigma1)
        + np.trace(sigma2)
        - 2.0 * _trace_sqrt_product(sigma1, sigma2)
    )
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8)


def test_fid_equals_the_reference_sqrtm_computation():
    """The TTUR / pytorch-fid formula with scipy.linalg.sqrtm(S1 @ S2) gives the same number."""
    from scipy import linalg

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 64)), rng.normal(size=(300, 64)) @ rng.normal(size=(64, 64))
    (mu1, s1), (mu2, s2) = gaussian_stats(a), gaussian_stats(b + 0.5)
    reference = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9, abs=1e-9)


def test_fid_refuses_mismatched_shapes_in_one_line():
    with pytest.raises(MetricError) as error:
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    assert "\n" not in str(error.value)


def test_kid_of_a_set_against_itself_is_near_zero():
    features = _rng(3).normal(size=(400, 16))
    mean, std = kernel_inception_distance(features, features, num_subsets=10, subset_size=400)
    # Unbiased MMD^2 of a sample with itself is -2 (mean k(x,x) - mean k(x,y)) / (m - 1): tiny.
    assert abs(mean) < 0.05 and std < 1e-9


def test_kid_is_unbiased_for_equal_distributions_and_positive_otherwise():
    rng = _rng(4)
    first, second = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    shifted = rng.normal(size=(1000, 16)) + 0.5
    same_mean, same_std = kernel_inception_distance(first, second, num_subsets=30, subset_size=500)
    diff_mean, _ = kernel_inception_distance(first, shifted, num_subsets=30, subset_size=500)
    assert abs(same_mean) < 0.02 and same_std > 0.0
    assert diff_mean > 0.5


def test_kid_matches_a_direct_unbiased_mmd_on_one_full_subset():
    rng = _rng(5)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) + 0.3
    kernel = lambda a, b: (a @ b.T / 4 + 1.0) ** 3  # noqa: E731
    m = 30
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    expected = (
        (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
        + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        - 2.0 * k_xy.mean()
    )
    # subset_size above N is capped at N: every subset is the whole set, reordered.
    mean, std = kernel_inception_distance(x, y, num_subsets=3, subset_size=1000)
    assert mean == pytest.approx(expected, rel=1e-10) and std < 1e-12


def test_precision_recall_of_a_set_against_itself_is_one():
    features = _rng(6).normal(size=(300, 8))
    assert precision_recall(features, features, k=3) == (1.0, 1.0)


def test_precision_recall_of_separated_sets_is_zero():
    rng = _rng(7)
    real, fake = rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + 100.0
    assert precision_recall(real, fake, k=3) == (0.0, 0.0)


def test_precision_counts_the_fake_samples_on_the_real_manifold():
    rng = _rng(8)
    real = rng.normal(size=(200, 8))
    fake = np.concatenate([real[:100], rng.normal(size=(100, 8)) + 100.0])
    precision, _ = precision_recall(real, fake, k=3)
    assert precision == 0.5


def test_precision_recall_does_not_depend_on_the_batch_size():
    rng = _rng(9)
    real, fake = rng.normal(size=(150, 6)), rng.normal(size=(120, 6)) * 1.3
    assert precision_recall(real, fake, batch_size=7) == precision_recall(real, fake)


def test_inception_score_of_uniform_predictions_is_one():
    mean, std = inception_score(np.full((100, 10), 0.1), splits=10)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0)
    assert inception_score(np.zeros((100, 10)), splits=5)[0] == pytest.approx(1.0)  # logits


def test_inception_score_of_confident_balanced_predictions_is_the_number_of_classes():
    labels = np.arange(100) % 10  # every split of 10 rows holds each class once
    one_hot = np.eye(10)[labels]
    mean, std = inception_score(one_hot, splits=10)
    assert mean == pytest.approx(10.0) and std == pytest.approx(0.0, abs=1e-12)
    logits_mean, _ = inception_score(one_hot * 50.0, splits=10)  # near-one-hot after softmax
    assert logits_mean == pytest.approx(10.0, rel=1e-6)


def test_inception_score_matches_closed_form_for_two_classes():
    a = 0.8
    probs = np.array([[a, 1 - a]] * 5 + [[1 - a, a]] * 5)  # p(y) = (1/2, 1/2)
    expected = np.exp(np.log(2.0) + a * np.log(a) + (1 - a) * np.log(1 - a))
    assert inception_score(probs, splits=1)[0] == pytest.approx(expected, rel=1e-12)


def test_inception_score_refuses_more_splits_than_rows():
    with pytest.raises(MetricError, match="splits"):
        inception_score(np.full((5, 3), 1 / 3), splits=10)
