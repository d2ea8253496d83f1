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

import functools
import io
import logging
import os
import stat
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gankit.config import DataConfig
from gankit.data.base import DATASETS, ImageSet
from gankit.data.cifar import ARCHIVE_NAME, BATCHES_DIR, SPLIT_BATCHES, read_cifar10
from gankit.data.download import DownloadError, fetch, known_file
from gankit.data.idx import read_idx
from gankit.data.transforms import arrays_to_stored, pil_to_array
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

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Decoders tried on a file's content whatever its extension says; nothing else (e.g. EPS, which
# would run Ghostscript) is ever opened. JPEG covers multi-picture JPEGs (MPO); DIB is a BMP kind.
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "WEBP", "TIFF")
MAX_PIXELS = 89_478_485  # decompression-bomb guard: PIL's default limit (a 2**30-byte RGBA image)
MAX_FILE_BYTES = 1 << 28  # larger files (256 MiB) are skipped unread
_WARN_EXAMPLES = 5  # skipped files named in the warning
_PROGRESS_FROM = 1000  # show a progress bar from this many files on


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


@DATASETS.register("folder")
def image_folder(cfg: DataConfig) -> ImageSet:
    """Every image under ``cfg.root``, a folder or a ``.zip`` file.

    - Recursive; files named ``*.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif`` (first frame),
      ``.webp``, ``.tif``, ``.tiff`` (any case) in sorted path order. Hidden files and folders
      (``.name``) and ``__MACOSX`` are ignored; symlinked folders are followed, each one once.
    - ``cfg.labels``: the class of an image is its first-level sub-folder; class names are sorted.
    - Files that cannot be decoded (corrupt, truncated, empty, not an image, over
      :data:`MAX_PIXELS`) are skipped, reported in one warning on the ``gankit.data`` logger.
    - A zip is read in memory, never extracted; members with absolute paths or ``..`` are skipped.
      A zip holding one top-level folder (``zip -r faces.zip faces/``) reads as that folder.
    """
    if not cfg.root:
        raise DataError("data.root must name a folder or .zip of images for data.source=folder")
    root = Path(cfg.root).expanduser()
    if root.is_dir():
        return _decode_candidates(_folder_candidates(root), [], str(root), cfg)
    if root.is_file() and root.suffix.lower() == ".zip":
        return _load_zip(root, cfg)
    if not root.exists():
        raise DataError(f"data.root {root} does not exist")
    raise DataError(f"data.root {root} is neither a folder nor a .zip file")


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


# --------------------------------------------------------------------------------------------------
# Folder / zip of images


@dataclass
class _Candidate:
    """A file that should hold an image."""

    path: PurePosixPath  # relative to the folder or zip root
    size: int  # bytes, as the file system or the zip directory says
    read: Callable[[], bytes]


class _Skip(Exception):
    """A file that is not used; the message is the reason shown in the warning."""


def _folder_candidates(root: Path) -> list[_Candidate]:
    """Image files under ``root``; symlinked folders are followed but each real folder once."""
    candidates, visited = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a symlink loop or a second link to the same folder
            subfolders[:] = []
            continue
        visited.add(real)
        subfolders[:] = [name for name in subfolders if not _is_hidden(name)]
        for name in files:
            path = Path(folder, name)
            if _is_hidden(name) or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            try:
                status = path.stat()
            except OSError:
                status = None  # a dangling link: reading it gives the reason
            if status is not None and not stat.S_ISREG(status.st_mode):
                continue  # a FIFO or device named *.png: reading it could block forever
            size = status.st_size if status else 0
            relative = PurePosixPath(path.relative_to(root).as_posix())
            candidates.append(_Candidate(relative, size, path.read_bytes))
    return candidates


def _load_zip(archive_path: Path, cfg: DataConfig) -> ImageSet:
    try:
        with zipfile.ZipFile(archive_path) as archive:
            candidates, skipped = _zip_candidates(archive)
            return _decode_candidates(candidates, skipped, str(archive_path), cfg)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise DataError(f"{archive_path}: not a readable zip file ({exc})") from None


def _zip_candidates(archive: zipfile.ZipFile) -> tuple[list[_Candidate], list[tuple[str, str]]]:
    """Image members of ``archive``, and the (name, reason) of members refused for their path."""
    candidates, skipped = [], []
    for info in archive.infolist():
        if info.is_dir():
            continue
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if not parts or name.startswith("/") or ".." in parts or ":" in parts[0]:
            skipped.append((info.filename, "unsafe path in zip"))
            continue
        hidden = any(_is_hidden(part) for part in parts)
        if hidden or PurePosixPath(name).suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        read = functools.partial(archive.read, info)
        candidates.append(_Candidate(PurePosixPath(name), info.file_size, read))
    tops = {candidate.path.parts[0] for candidate in candidates}
    if len(tops) == 1 and all(len(candidate.path.parts) > 1 for candidate in candidates):
        for candidate in candidates:  # one wrapping folder: read it as the root
            candidate.path = PurePosixPath(*candidate.path.parts[1:])
    return candidates, skipped


def _decode_candidates(
    candidates: list[_Candidate], skipped: list[tuple[str, str]], source: str, cfg: DataConfig
) -> ImageSet:
    """Decode up to ``cfg.max_images`` usable images, in sorted path order."""
    candidates = sorted(candidates, key=lambda candidate: candidate.path.as_posix())
    class_names = _folder_class_names(candidates, source) if cfg.labels else None
    class_index = {name: index for index, name in enumerate(class_names or [])}
    wanted = min(cfg.max_images or len(candidates), len(candidates))
    size = cfg.stored_size
    images = np.empty((wanted, cfg.channels, size, size), dtype=np.uint8)
    labels = []
    count = 0
    show = None if len(candidates) >= _PROGRESS_FROM else True  # None: hidden off a terminal
    for candidate in tqdm(candidates, desc="decoding images", unit="img", disable=show):
        if count == wanted:
            break
        try:
            images[count] = _decode(candidate, cfg.channels, size)
        except Exception as exc:  # a decoder failing on one bad file must not stop the rest
            skipped.append((candidate.path.as_posix(), _reason(exc)))
            continue
        if class_names is not None:
            labels.append(class_index[candidate.path.parts[0]])
        count += 1
    _warn_skipped(skipped, len(candidates), source)
    if count == 0:
        looked_for = "" if candidates else f"; looked for {', '.join(sorted(IMAGE_EXTENSIONS))}"
        raise DataError(f"no usable image in {source} ({len(skipped)} files skipped{looked_for})")
    return ImageSet(
        images=torch.from_numpy(images[:count]),
        labels=torch.tensor(labels, dtype=torch.int64) if class_names is not None else None,
        class_names=class_names,
        description=f"folder {source} ({count} images)",
    )


def _decode(candidate: _Candidate, channels: int, size: int) -> np.ndarray:
    """One file -> (channels, size, size) uint8; raises _Skip or the decoder's error if unusable."""
    if candidate.size > MAX_FILE_BYTES:
        raise _Skip(f"file of {candidate.size} bytes exceeds {MAX_FILE_BYTES}")
    data = candidate.read()
    if not data:
        raise _Skip("empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data), formats=_PIL_FORMATS) as img:  # reads the header only
            if img.width * img.height > MAX_PIXELS:
                raise _Skip(f"{img.width}x{img.height} pixels exceed the limit of {MAX_PIXELS}")
            img.load()
            return pil_to_array(img, channels, size)


def _folder_class_names(candidates: list[_Candidate], source: str) -> list[str]:
    for candidate in candidates:
        if len(candidate.path.parts) == 1:
            raise DataError(
                f"{source}: data.labels=true needs images in class sub-folders, "
                f"but {candidate.path} lies directly in the root"
            )
    return sorted({candidate.path.parts[0] for candidate in candidates})


def _warn_skipped(skipped: list[tuple[str, str]], total: int, source: str) -> None:
    if not skipped:
        return
    examples = "; ".join(f"{name} ({reason})" for name, reason in skipped[:_WARN_EXAMPLES])
    more = f"; and {len(skipped) - _WARN_EXAMPLES} more" if len(skipped) > _WARN_EXAMPLES else ""
    log.warning("skipped %d of %d file(s) in %s: %s%s", len(skipped), total, source, examples, more)


def _reason(exc: Exception) -> str:
    if isinstance(exc, _Skip):
        return str(exc)
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not a readable image"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "too many pixels (decompression bomb guard)"
    text = " ".join(str(exc).split())[:80]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"
