"""The registered data sources: ``DATASETS.get(name)(cfg) -> ImageSet``.

Every source returns images already in the stored form (see :mod:`gankit.data.transforms`):
(N, cfg.channels, S, S) uint8 with S = ``cfg.stored_size``; ``cfg.max_images`` keeps the first N.

Standard datasets (``mnist``, ``fashion-mnist``, ``cifar10``) are looked for under a data root:
``cfg.root``, else the environment variable ``GANKIT_DATA_ROOT``, else ``~/.cache/gankit/data``.
Inside the root, these folders are tried in order (the first holding the split's files wins):

- mnist:         ``<root>``, ``<root>/mnist``, ``<root>/mnist/raw``, ``<root>/MNIST/raw``
- fashion-mnist: ``<root>``, ``<root>/fashion-mnist``, ``<root>/fashion-mnist/raw``,
                 ``<root>/fashion_mnist``, ``<root>/FashionMNIST/raw``
  (``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` for "train", ``t10k-...`` for
  "test", each with or without ``.gz``; ``<root>/MNIST/raw`` is torchvision's layout)
- cifar10:       in ``<root>``, ``<root>/cifar10``, ``<root>/cifar-10``, ``<root>/CIFAR10``: a
  ``cifar-10-batches-py/`` folder, the batch files themselves, or ``cifar-10-python.tar.gz``;
  ``cfg.root`` may also be the archive itself.

Missing files are downloaded (when ``cfg.download``) into ``<root>/<dataset>``, never into the root
itself: MNIST and Fashion-MNIST use the same file names. Files directly in the root are therefore
trusted to be the dataset asked for.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from gankit.config import DataConfig
from gankit.data.base import DATASETS, ImageSet
from gankit.data.cifar import ARCHIVE_NAME, BATCHES_DIR, SPLIT_BATCHES, read_cifar10
from gankit.data.download import DownloadError, fetch, known_file
from gankit.data.idx import read_idx
from gankit.data.transforms import arrays_to_stored
from gankit.errors import DataError

log = logging.getLogger("gankit.data")

BUNDLED_DIR = Path(__file__).parent / "bundled"
MNIST_CLASSES = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_SUBFOLDERS = {
    "mnist": ("mnist", "mnist/raw", "MNIST/raw"),
    "fashion-mnist": ("fashion-mnist", "fashion-mnist/raw", "fashion_mnist", "FashionMNIST/raw"),
}
_CIFAR_SUBFOLDERS = ("cifar10", "cifar-10", "CIFAR10")


def default_data_root() -> Path:
    """``$GANKIT_DATA_ROOT`` if set, else ``~/.cache/gankit/data``."""
    configured = os.environ.get("GANKIT_DATA_ROOT")
    return Path(configured).expanduser() if configured else Path.home() / ".cache/gankit/data"


@DATASETS.register("mnist")
def mnist(cfg: DataConfig) -> ImageSet:
    """MNIST digits: 60000 train / 10000 test, 1 x 28 x 28, labels 0..9."""
    return _idx_dataset("mnist", cfg, MNIST_CLASSES)


@DATASETS.register("fashion-mnist")
def fashion_mnist(cfg: DataConfig) -> ImageSet:
    """Zalando's Fashion-MNIST: 60000 train / 10000 test, 1 x 28 x 28, 10 clothing classes."""
    return _idx_dataset("fashion-mnist", cfg, FASHION_MNIST_CLASSES)


@DATASETS.register("mnist-bundled")
def mnist_bundled(cfg: DataConfig) -> ImageSet:
    """The MNIST test split (10000 images) shipped inside gankit: works offline, needs no files.

    There is only this one split, so ``cfg.split`` and ``cfg.root`` are ignored.
    """
    images = read_idx(BUNDLED_DIR / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(BUNDLED_DIR / "t10k-labels-idx1-ubyte.gz")
    _check_idx_pair(images, labels, BUNDLED_DIR, len(MNIST_CLASSES))
    return _to_image_set(images, labels, MNIST_CLASSES, cfg, "mnist-bundled (MNIST test split)")


@DATASETS.register("cifar10")
def cifar10(cfg: DataConfig) -> ImageSet:
    """CIFAR-10: 50000 train / 10000 test, 3 x 32 x 32, 10 classes."""
    root = _data_root(cfg)
    location = _find_cifar10(root, cfg.split)
    if location is None:
        folder = root / "cifar10"
        _download_or_explain("cifar10", cfg, folder, [ARCHIVE_NAME])
        location = folder / ARCHIVE_NAME
    images, labels, class_names = read_cifar10(location, cfg.split)
    return _to_image_set(images, labels, class_names, cfg, f"cifar10 {cfg.split}")


# --------------------------------------------------------------------------------------------------
# MNIST-like IDX datasets


def _idx_dataset(name: str, cfg: DataConfig, class_names: tuple[str, ...]) -> ImageSet:
    root = _data_root(cfg)
    files = _find_idx_files(name, root, cfg.split)
    if files is None:
        folder = root / name
        names = [f"{stem}.gz" for stem in _IDX_STEMS[cfg.split]]
        _download_or_explain(name, cfg, folder, names)
        files = (folder / names[0], folder / names[1])
    images, labels = read_idx(files[0]), read_idx(files[1])
    _check_idx_pair(images, labels, files[0].parent, len(class_names))
    return _to_image_set(images, labels, class_names, cfg, f"{name} {cfg.split}")


def _find_idx_files(name: str, root: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) files of ``split`` in the first folder that holds both."""
    for folder in (root, *(root / sub for sub in _IDX_SUBFOLDERS[name])):
        found = [_with_or_without_gz(folder, stem) for stem in _IDX_STEMS[split]]
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
    return None


def _with_or_without_gz(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _check_idx_pair(images: np.ndarray, labels: np.ndarray, folder: Path, num_classes: int) -> None:
    if images.ndim != 3 or images.dtype != np.uint8:
        shape = f"{images.dtype} {images.shape}"
        raise DataError(f"{folder}: image file holds {shape}, not (N, H, W) uint8")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{folder}: {images.shape[0]} images but labels of shape {labels.shape}")
    if labels.size and int(labels.max()) >= num_classes:
        raise DataError(f"{folder}: label {int(labels.max())} outside 0..{num_classes - 1}")


# --------------------------------------------------------------------------------------------------
# CIFAR-10


def _find_cifar10(root: Path, split: str) -> Path | None:
    """A batches folder or archive holding ``split``, searched as the module docstring says."""
    if root.is_file():
        return root
    for folder in (root, *(root / sub for sub in _CIFAR_SUBFOLDERS)):
        for batches in (folder / BATCHES_DIR, folder):
            if all((batches / name).is_file() for name in SPLIT_BATCHES[split]):
                return batches
        if (folder / ARCHIVE_NAME).is_file():
            return folder / ARCHIVE_NAME
    return None


# --------------------------------------------------------------------------------------------------
# Shared steps


def _data_root(cfg: DataConfig) -> Path:
    return Path(cfg.root).expanduser() if cfg.root else default_data_root()


def _download_or_explain(dataset: str, cfg: DataConfig, folder: Path, names: list[str]) -> None:
    """Download the missing ``names`` into ``folder``, or say exactly what to put where."""
    listed = ", ".join(names)
    where = f"{dataset} {cfg.split}: missing {listed}"
    if not cfg.download:
        raise DataError(f"{where}; put them in {folder} (or set data.download=true)")
    for name in names:
        remote = known_file(dataset, name)
        try:
            fetch(remote.urls, folder / name, remote.checksum)
        except DownloadError as exc:
            raise DataError(
                f"{where} and the download failed ({exc.reason}); "
                f"put {listed} in {folder} (from {remote.mirrors[0]})"
            ) from None


def _to_image_set(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    cfg: DataConfig,
    name: str,
) -> ImageSet:
    """images: (N, H, W) or (N, H, W, 3) uint8; labels: (N,) integers."""
    if cfg.max_images is not None:
        images, labels = images[: cfg.max_images], labels[: cfg.max_images]
    stored = arrays_to_stored(images, cfg.channels, cfg.stored_size)
    return ImageSet(
        images=stored,
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=list(class_names),
        description=f"{name} ({stored.shape[0]} images)",
    )
