"""Metrics by name, and one function that evaluates images against a reference.

Every number comes with its protocol: the metric, how many images were generated, the reference
(dataset, split, n, resolution, seed), the feature network and its weight hash, the resize method,
the gankit version and the seed. FID and KID are biased by n: compare numbers with equal n only.

Precision and recall are published in VGG-16 fc2 features (Kynkäänniemi et al. 2019); gankit
computes them in those when a VGG-16 file is supplied (:mod:`gankit.metrics.vgg`), else in
Inception pool3, and the protocol's ``features`` says which (the latter is not comparable).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gankit.metrics import math as metric_math
from gankit.metrics.base import FeatureExtractor
from gankit.metrics.inception_is import ISUnavailable
from gankit.metrics.reference import Reference, reference_features
from gankit.metrics.vgg import VGG16_NAME, vgg16_weights
from gankit.registry import Registry
from gankit.version import __version__

log = logging.getLogger("gankit.metrics")

DEFAULT_RESIZE = "pil-bicubic-float"  # clean-fid's protocol; see gankit.metrics.inception

# One metric can report several numbers (pr -> precision and recall): (name, value, std or None).
Values = list[tuple[str, float, float | None]]


@dataclass(frozen=True)
class Metric:
    name: str
    network: str  # which feature network: "inception", "inception-logits" or "digits"
    compute: Callable[[np.ndarray, np.ndarray | None], Values]  # (generated, reference) -> values
    description: str
    reports: tuple[str, ...] = ()  # the numbers it reports; () = just its name
    lower_is_better: bool = True
    needs_reference: bool = True
    # The features of the published numbers, when they are not ``network``'s: with such a network
    # supplied ("vgg16": a VGG-16 file) the metric uses it, and its protocol records which it used.
    published_network: str | None = None

    def __post_init__(self) -> None:
        if not self.reports:
            object.__setattr__(self, "reports", (self.name,))


METRICS: Registry[Metric] = Registry("metric")


def _add(metric: Metric) -> None:
    METRICS.register(metric.name)(metric)


def _fid(generated: np.ndarray, reference: np.ndarray | None) -> Values:
    assert reference is not None
    mu_g, sigma_g = metric_math.gaussian_stats(generated)
    mu_r, sigma_r = metric_math.gaussian_stats(reference)
    return [("fid", metric_math.frechet_distance(mu_g, sigma_g, mu_r, sigma_r), None)]


def _kid(generated: np.ndarray, reference: np.ndarray | None) -> Values:
    assert reference is not None
    mean, std = metric_math.kernel_inception_distance(generated, reference)
    return [("kid", mean, std)]


def _precision_recall(generated: np.ndarray, reference: np.ndarray | None) -> Values:
    assert reference is not None
    precision, recall = metric_math.precision_recall(reference, generated, k=3)
    return [("precision", precision, None), ("recall", recall, None)]


def _inception_score(logits: np.ndarray, _: np.ndarray | None) -> Values:
    mean, std = metric_math.inception_score(logits, splits=10)
    return [("is", mean, std)]


def _digit_fd(generated: np.ndarray, reference: np.ndarray | None) -> Values:
    [(_, value, _)] = _fid(generated, reference)
    return [("digit-fd", value, None)]


_add(Metric("fid", "inception", _fid, "Fréchet Inception Distance (Heusel et al. 2017)"))
_add(Metric("kid", "inception", _kid, "Kernel Inception Distance (Bińkowski et al. 2018)"))
_add(Metric("pr", "inception", _precision_recall,
            "improved precision and recall, k=3 (Kynkäänniemi et al. 2019)",
            reports=("precision", "recall"), lower_is_better=False,
            published_network="vgg16"))  # fmt: skip

# What a metric's ``features`` protocol entry says for each network.
FEATURE_SPACES = {
    "vgg16": VGG16_NAME,
    "inception": "inception-pool3 (not comparable with published numbers, which use VGG-16 fc2)",
}
_add(Metric("is", "inception-logits", _inception_score,
            "Inception Score, 10 splits (Salimans et al. 2016)", lower_is_better=False,
            needs_reference=False))  # fmt: skip
_add(Metric("digit-fd", "digits", _digit_fd,
            "Fréchet distance in gankit's MNIST classifier features (not FID)"))  # fmt: skip


@functools.cache
def feature_network(
    network: str, device: str = "cpu", resize: str = DEFAULT_RESIZE, weights: str | None = None
) -> FeatureExtractor:
    """The feature network a metric needs, loaded once per process. ``resize`` applies to the
    Inception and VGG-16 networks; the digit classifier has its one fixed input path.
    ``weights``: the file of the user-supplied "vgg16" network."""
    if network == "vgg16":
        from gankit.metrics.vgg import VGG16Features

        return VGG16Features(weights, device=device, resize=resize)
    if network == "inception":
        from gankit.metrics.inception import TFInception

        return TFInception(device=device, resize=resize)
    if network == "inception-logits":
        from gankit.metrics.inception_is import InceptionLogitsExtractor

        return InceptionLogitsExtractor(device=device, resize=resize)
    if network == "digits":
        from gankit.metrics.digits import DigitFeatures

        return DigitFeatures(device=device)
    raise KeyError(network)


def extract(
    network: FeatureExtractor, images: torch.Tensor, batch_size: int, progress: bool, what: str
) -> np.ndarray:
    """images: (N, C, H, W) uint8 -> (N, D) float32 features, in batches with a progress bar."""
    compute = getattr(network, "logits", None) if what == "logits" else network.features
    assert compute is not None
    chunks = []
    bar = tqdm(total=len(images), disable=not progress, unit="img", desc=f"{network.name}",
               leave=False, delay=1.0)  # fmt: skip
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        chunks.append(compute(batch).float().cpu().numpy())
        bar.update(len(batch))
    bar.close()
    return np.concatenate(chunks).astype(np.float32)


@dataclass
class MetricResult:
    metric: str
    value: float | None  # None: the metric is unavailable (protocol["unavailable"] says why)
    std: float | None
    protocol: dict[str, Any] = field(default_factory=dict)

    def record(self, **extra: Any) -> dict[str, Any]:
        """One line of metrics.jsonl: the number with its whole protocol."""
        number = {"metric": self.metric, "value": self.value, "std": self.std}
        return {**extra, **number, **self.protocol}


def evaluate(
    images: torch.Tensor,  # (N, C, H, W) uint8: the generated (or any) images to judge
    reference: Reference,
    metrics: Iterable[str],
    device: str = "cpu",
    batch_size: int = 100,
    progress: bool = True,
    seed: int | None = None,  # the seed the images were generated with, recorded as is
    reference_images: torch.Tensor | None = None,  # the reference images if already in memory
    resize: str = DEFAULT_RESIZE,  # how images reach Inception's 299 x 299 (recorded)
    # Several training processes: this process's features (n_r, D) -> everyone's, concatenated,
    # on rank 0 (None elsewhere). ``images`` are then this rank's share; other ranks return [].
    gather: Callable[[np.ndarray], np.ndarray | None] | None = None,
    # TorchScript VGG-16 fc2 network for precision/recall (gankit.metrics.vgg); None:
    # $GANKIT_VGG16_WEIGHTS, and without either Inception pool3 (recorded as not comparable).
    pr_features: str | os.PathLike | None = None,
) -> list[MetricResult]:
    """Every metric in ``metrics`` of ``images`` against ``reference``, with its protocol."""
    chosen = [METRICS.get(name) for name in metrics]
    wanted = any(m.published_network == "vgg16" for m in chosen)
    vgg16 = vgg16_weights(pr_features) if wanted else None
    supplied = {"vgg16": str(vgg16)} if vgg16 is not None else {}

    def network_of(metric: Metric) -> str:
        published = metric.published_network
        return published if published in supplied else metric.network

    results: list[MetricResult] = []
    for network_name in dict.fromkeys(map(network_of, chosen)):
        users = [m for m in chosen if network_of(m) == network_name]
        try:
            network = feature_network(network_name, device, resize, supplied.get(network_name))
        except ISUnavailable as exc:  # the IS weights are an optional download: report, go on
            log.warning("%s", exc)
            results += [MetricResult(name, None, None, {"unavailable": str(exc)})
                        for metric in users for name in metric.reports]  # fmt: skip
            continue
        what = "logits" if network_name == "inception-logits" else "features"
        generated = extract(network, images, batch_size, progress, what)
        if gather is not None:
            gathered = gather(generated)
            if gathered is None:  # not rank 0: its features are with rank 0 now
                continue
            generated = gathered
        real = None
        if any(m.needs_reference for m in users):
            real = reference_features(
                reference, network,
                lambda imgs, n=network, w=what: extract(n, imgs, batch_size, progress, w),
                kind=what, images=reference_images,
            )  # fmt: skip
        protocol = {
            "n_generated": len(generated), "extractor": network.name,
            "extractor_hash": network.hash[:16], "resize": network.resize,
            "gankit_version": __version__, "seed": seed,
        }  # fmt: skip
        for metric in users:
            own = {"reference": reference.describe()} if metric.needs_reference else {}
            if metric.published_network is not None:
                own["features"] = FEATURE_SPACES[network_name]
            for name, value, std in metric.compute(generated, real):
                results.append(MetricResult(name, float(value), std, {**protocol, **own}))
    return results


def format_result(result: MetricResult) -> str:
    """``fid = 12.345 (n=2000 vs mnist:test n=2000, tf-inception..., pil-bicubic-float)``."""
    if result.value is None:
        return f"{result.metric}: unavailable: {result.protocol.get('unavailable', '')}"
    spread = f" ± {result.std:.4g}" if result.std is not None else ""
    ref = result.protocol.get("reference")
    against = f" vs {ref['dataset']}:{ref['split']} n={ref['n']}" if ref else ""
    protocol = result.protocol
    return (
        f"{result.metric} = {result.value:.4g}{spread} (n={protocol['n_generated']}{against}, "
        f"{protocol['extractor']}, {protocol['resize']})"
    )
