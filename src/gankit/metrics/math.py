"""The numerical core of the metrics, on float64 NumPy arrays.

Every function takes features (or logits) already extracted, so it is cheap to test against closed
forms. Shapes: ``features`` is (N, D); ``mu`` is (D,); ``sigma`` is (D, D).
"""

from __future__ import annotations

import numpy as np

from gankit.errors import MetricError


def _as_features(features: np.ndarray, what: str, min_rows: int = 2) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < min_rows:
        raise MetricError(
            f"{what} must be an (N, D) array with N >= {min_rows}, got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise MetricError(f"{what} contain NaN or infinite values")
    return array


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), N >= 2, in float64.

    The Gaussian fitted to the features in Heusel et al. 2017, "GANs Trained by a Two Time-Scale
    Update Rule Converge to a Local Nash Equilibrium", Sec. 4 (FID).
    """
    array = _as_features(features, "features")
    return array.mean(axis=0), np.cov(array, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); mu: (D,), sigma: (D, D).

    Heusel et al. 2017, Eq. (6):  d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    Tr((S1 S2)^(1/2)) is computed without a general matrix square root: with R = S1^(1/2)
    (symmetric, from ``eigh``), S1 S2 is similar to the symmetric PSD matrix R S2 R, so the trace
    is the sum of the square roots of R S2 R's eigenvalues. This is the same number that
    ``scipy.linalg.sqrtm(S1 @ S2)`` gives in the reference implementations (TTUR ``fid.py``,
    pytorch-fid; a test compares them), in about 2 s instead of minutes at D = 2048 on a small
    CPU. Eigenvalues that round-off makes slightly negative are clipped to 0.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = (
        np.atleast_2d(sigma1).astype(np.float64),
        np.atleast_2d(sigma2).astype(np.float64),
    )
    dims = mu1.shape[0]
    if mu2.shape != (dims,) or sigma1.shape != (dims, dims) or sigma2.shape != (dims, dims):
        raise MetricError(
            f"Fréchet distance needs mu (D,) and sigma (D, D) of equal D, got {mu1.shape}, "
            f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}"
        )
    if not (np.isfinite(sigma1).all() and np.isfinite(sigma2).all()):
        raise MetricError("Fréchet distance: the covariances hold NaN or infinite values")
    values, vectors = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    product = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    return float(value)


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3 for all pairs; x: (n, d), y: (m, d) -> (n, m)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size samples x, y: (m, d) (Gretton et al. 2012, Eq. 3)."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    features1: np.ndarray,
    features2: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and std over random subsets of the unbiased MMD^2; features: (N1, D), (N2, D).

    Bińkowski et al. 2018, "Demystifying MMD GANs", Sec. 5 (KID) with the cubic polynomial kernel
    k(x, y) = (x . y / d + 1)^3 and the unbiased estimator of MMD^2 (their Eq. 2 / Gretton et al.
    2012, Eq. 3). Each of ``num_subsets`` draws ``m = min(subset_size, N1, N2)`` rows of each set
    without replacement (NumPy generator seeded with ``seed``); std is the population std (ddof 0)
    of the per-subset values, as in the reference code. Can be slightly negative when the sets
    come from the same distribution: the estimator is unbiased.
    """
    x_all = _as_features(features1, "KID features1")
    y_all = _as_features(features2, "KID features2")
    if x_all.shape[1] != y_all.shape[1]:
        raise MetricError(f"KID feature sizes differ: {x_all.shape[1]} vs {y_all.shape[1]}")
    if num_subsets < 1 or subset_size < 2:
        raise MetricError(
            f"KID needs num_subsets >= 1 and subset_size >= 2, got {num_subsets}, {subset_size}"
        )
    m = min(subset_size, x_all.shape[0], y_all.shape[0])
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for index in range(num_subsets):
        x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
        y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
        values[index] = _unbiased_mmd2(x, y)
    return float(values.mean()), float(values.std())


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """||a_i - b_j||^2 for a: (n, d), b: (m, d) -> (n, m), clipped at 0 against round-off."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(squared, 0.0)


def _knn_radii_squared(features: np.ndarray, k: int, batch_size: int) -> np.ndarray:
    """Squared distance of each row to its k-th nearest other row; features (N, D) -> (N,)."""
    radii = np.empty(features.shape[0])
    for start in range(0, features.shape[0], batch_size):
        distances = _squared_distances(features[start : start + batch_size], features)
        # Index k, not k - 1: the smallest distance is the row's own zero.
        radii[start : start + batch_size] = np.partition(distances, k, axis=1)[:, k]
    return radii


def _fraction_covered(
    queries: np.ndarray, centres: np.ndarray, radii_squared: np.ndarray, batch_size: int
) -> float:
    """Fraction of queries (Q, D) inside at least one ball (centres (C, D), radii^2 (C,))."""
    covered = 0
    for start in range(0, queries.shape[0], batch_size):
        distances = _squared_distances(queries[start : start + batch_size], centres)
        covered += int((distances <= radii_squared[None, :]).any(axis=1).sum())
    return covered / queries.shape[0]


def precision_recall(
    real: np.ndarray, fake: np.ndarray, k: int = 3, batch_size: int = 1024
) -> tuple[float, float]:
    """Improved precision and recall; real: (N_r, D), fake: (N_f, D) features.

    Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
    Models", Eqs. (1)-(3): each sample's manifold ball has the radius of its k-th nearest
    neighbour in its own set (itself excluded). Precision = fraction of fake samples inside some
    real ball; recall = fraction of real samples inside some fake ball. Distances are computed
    ``batch_size`` rows at a time, so memory is O(batch_size * N), e.g. 80 MB for 10k x 10k.
    """
    real = _as_features(real, "precision/recall real features", min_rows=k + 1)
    fake = _as_features(fake, "precision/recall fake features", min_rows=k + 1)
    if real.shape[1] != fake.shape[1]:
        raise MetricError(f"feature sizes differ: real {real.shape[1]} vs fake {fake.shape[1]}")
    if k < 1:
        raise MetricError(f"precision/recall needs k >= 1, got {k}")
    real_radii = _knn_radii_squared(real, k, batch_size)
    fake_radii = _knn_radii_squared(fake, k, batch_size)
    precision = _fraction_covered(fake, real, real_radii, batch_size)
    recall = _fraction_covered(real, fake, fake_radii, batch_size)
    return precision, recall


def _log_probabilities(logits_or_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) logits or probabilities -> (probabilities, log-probabilities), both (N, K).

    Rows that are all in [0, 1] and each sum to 1 (within 1e-4) are read as probabilities;
    anything else as logits, turned into probabilities with a numerically stable softmax.
    """
    values = np.asarray(logits_or_probs, dtype=np.float64)
    is_probs = values.min() >= 0.0 and values.max() <= 1.0
    if is_probs and np.allclose(values.sum(axis=1), 1.0, rtol=0.0, atol=1e-4):
        with np.errstate(divide="ignore"):
            return values, np.log(values)
    shifted = values - values.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return np.exp(log_probs), log_probs


def inception_score(logits_or_probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score: mean and std over ``splits`` equal parts; input (N, K) logits or probs.

    Salimans et al. 2016, "Improved Techniques for Training GANs", Sec. 4:
    IS = exp(E_x KL(p(y|x) || p(y))), with p(y) the mean of p(y|x) over the part. As in their
    code, the N rows are cut in order into ``splits`` parts and the std is the population std
    (ddof 0). 0 log 0 is taken as 0, so one-hot probabilities are fine.
    """
    values = _as_features(logits_or_probs, "Inception Score logits", min_rows=1)
    if not 1 <= splits <= values.shape[0]:
        raise MetricError(f"Inception Score splits must be in 1..N={values.shape[0]}, got {splits}")
    probs, log_probs = _log_probabilities(values)
    scores = []
    for part, log_part in zip(
        np.array_split(probs, splits), np.array_split(log_probs, splits), strict=True
    ):
        with np.errstate(divide="ignore", invalid="ignore"):
            log_marginal = np.log(part.mean(axis=0, keepdims=True))
            # p (log p - log p_y), with 0 where p = 0 (then p_y may be 0 too)
            kl_terms = np.where(part > 0.0, part * (log_part - log_marginal), 0.0)
        scores.append(np.exp(kl_terms.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
