"""Reference features, computed once and cached on disk.

A reference is n images of a dataset split (the first n, or n drawn with a seed from the split or
from its first ``pool`` images), brought to a resolution and channel count, then through a feature
network. Its features are cached under a key of everything that changes them: dataset, split,
resolution, channels, n, seed, pool, the network's name and weight hash, and its resize method.
A second evaluation against the same reference reads the file instead of running the network
again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.config import DataConfig
from gankit.data import load_images
from gankit.errors import GankitError
from gankit.fileio import atomic_write
from gankit.metrics.base import FeatureExtractor

log = logging.getLogger("gankit.metrics")


def cache_dir() -> Path:
    """``$GANKIT_CACHE_DIR/reference`` if set, else ``~/.cache/gankit/reference``."""
    base = os.environ.get("GANKIT_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "gankit") / "reference"


@dataclass(frozen=True)
class Reference:
    """Which real images the generated ones are compared with."""

    dataset: str  # a dataset registry name (mnist, cifar10, folder, ...)
    split: str  # "train" or "test"
    n: int  # how many images
    resolution: int  # side they are brought to (resize shorter side + centre crop)
    channels: int  # 1 or 3
    root: str | None = None  # data root, or the folder/.zip for "folder"
    seed: int | None = None  # None: the first n images; else n drawn without replacement
    pool: int | None = None  # with a seed: draw from the first ``pool`` images (None: all)

    @classmethod
    def parse(cls, spec: str, **fields: Any) -> Reference:
        """``"mnist:test"`` (dataset:split; split defaults to test) or a folder/.zip path."""
        if Path(spec).expanduser().exists():
            return cls(dataset="folder", split="train", root=str(Path(spec).expanduser()), **fields)
        dataset, _, split = spec.partition(":")
        if split not in ("", "train", "test"):
            raise GankitError(f"reference {spec!r}: split must be train or test, not {split!r}")
        return cls(dataset=dataset, split=split or "test", **fields)

    def describe(self) -> dict[str, Any]:
        """The reference as recorded with every number (the root is a local detail: left out;
        ``pool`` only when set)."""
        fields = {k: v for k, v in asdict(self).items() if k != "root"}
        if self.pool is None:
            del fields["pool"]
        return fields

    def load_images(self) -> torch.Tensor:
        """(n, C, R, R) uint8: the reference images."""
        cfg = DataConfig(
            source=self.dataset, root=self.root, split=self.split, resolution=self.resolution,
            channels=self.channels, max_images=self.n if self.seed is None else self.pool,
        )  # fmt: skip
        images = load_images(cfg).images
        if len(images) < self.n:
            raise GankitError(
                f"reference {self.dataset}:{self.split} has only {len(images)} images, "
                f"fewer than n={self.n}"
            )
        if self.seed is not None:
            images = images[subset(len(images), self.n, self.seed)]
        return images[: self.n]


def subset(total: int, n: int, seed: int) -> torch.Tensor:
    """(min(n, total),) int64: which of ``total`` images a seeded reference takes (the first n of
    a permutation drawn by a CPU generator seeded with ``seed``; the global RNG is untouched)."""
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    return order[:n]


def cache_key(reference: Reference, extractor: FeatureExtractor, kind: str) -> str:
    fields = {
        **reference.describe(), "extractor": extractor.name, "extractor_hash": extractor.hash,
        "resize": extractor.resize, "kind": kind,
    }  # fmt: skip
    if reference.dataset == "folder":  # a named dataset is the same data wherever its root is
        fields["root"] = str(Path(reference.root or "").resolve())
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    return f"{reference.dataset}-{reference.split}-{reference.resolution}px-n{reference.n}-{digest}"


def reference_features(
    reference: Reference,
    extractor: FeatureExtractor,
    compute: Any,  # callable: uint8 images (n, C, R, R) -> (n, D) float32 features
    kind: str = "features",  # "features" or "logits": what ``compute`` returns
    images: torch.Tensor | None = None,  # the reference images if already in memory
) -> np.ndarray:
    """The reference's features (n, D) float32: from the cache, else computed and cached."""
    path = cache_dir() / f"{cache_key(reference, extractor, kind)}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape[0] == reference.n:
                log.info("reference %s read from cache %s", reference.dataset, path)
                return cached
        except (OSError, ValueError):
            log.warning("ignoring unreadable reference cache %s", path)
    features = compute(images if images is not None else reference.load_images())
    features = np.asarray(features, dtype=np.float32)
    atomic_write(path, lambda file: np.save(file, features, allow_pickle=False))
    return features
