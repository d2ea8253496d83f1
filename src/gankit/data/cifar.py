"""Reader for CIFAR-10's "python version" (https://www.cs.toronto.edu/~kriz/cifar.html).

The data comes either as the folder ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
``test_batch``, ``batches.meta``) or as the archive ``cifar-10-python.tar.gz``, which is read in
memory, never extracted. Each batch is a Python 2 pickle of a dict with ``data`` (N, 3072) uint8,
rows holding the 1024 red, then 1024 green, then 1024 blue values of a row-major 32 x 32 image, and
``labels`` (N ints in 0..9).

Pickles can run code, so they are read with :class:`CifarUnpickler`, which builds only what a
CIFAR batch is made of (numpy arrays and dtypes); anything else is refused with a DataError.
"""

from __future__ import annotations

import codecs
import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from gankit.errors import DataError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

BATCHES_DIR = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
SPLIT_BATCHES = {
    "train": tuple(f"data_batch_{index}" for index in range(1, 6)),
    "test": ("test_batch",),
}
META_BATCH = "batches.meta"
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
_ROW_BYTES = 3 * 32 * 32

# Everything a CIFAR batch pickle may name: numpy array reconstruction (the module moved from
# numpy.core to numpy._core in numpy 2) and, for pickles written by Python 3 at protocol <= 2,
# ``_codecs.encode``, which is how such pickles spell a bytes object.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _RefusedGlobal(Exception):
    """Raised inside unpickling when the pickle names something outside the allow-list."""


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only numpy arrays: what real CIFAR batches need, nothing more."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"{module}.{name}") from None


def unpickle_batch(data: bytes, source: str) -> dict[str, Any]:
    """Safely unpickle one CIFAR batch; ``source`` names the file in errors.

    Returns the batch dict with its keys decoded to str (the files use Python 2 byte-string keys).
    """
    unpickler = CifarUnpickler(io.BytesIO(data), encoding="bytes")
    try:
        loaded = unpickler.load()
    except _RefusedGlobal as exc:
        raise DataError(f"refusing to unpickle {exc} from {source} (not a CIFAR batch)") from None
    except Exception as exc:  # any malformed pickle: truncated, garbage, wrong protocol
        raise DataError(f"{source}: not a readable CIFAR batch ({type(exc).__name__})") from None
    if not isinstance(loaded, dict):
        raise DataError(f"{source}: not a CIFAR batch (holds a {type(loaded).__name__})")
    return {_text(key): value for key, value in loaded.items()}


def parse_batch(batch: dict[str, Any], source: str) -> tuple[np.ndarray, np.ndarray]:
    """A batch dict -> images (N, 32, 32, 3) uint8 RGB and labels (N,) int64 in 0..9."""
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"{source}: CIFAR batch without a 'data' array of uint8 rows")
    if data.shape[1] != _ROW_BYTES:
        raise DataError(f"{source}: CIFAR rows hold {data.shape[1]} bytes, expected {_ROW_BYTES}")
    try:
        label_array = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{source}: CIFAR batch without a list of integer 'labels'") from None
    if label_array.shape[0] != data.shape[0]:
        raise DataError(f"{source}: {data.shape[0]} images but {label_array.shape[0]} labels")
    if label_array.size and (label_array.min() < 0 or label_array.max() >= len(CIFAR10_CLASSES)):
        raise DataError(f"{source}: CIFAR-10 labels outside 0..9")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes -> (N, H, W, RGB)
    return np.ascontiguousarray(images), label_array


def read_cifar10(path: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read one split from a ``cifar-10-batches-py`` folder or a ``cifar-10-python.tar.gz``.

    Returns images (N, 32, 32, 3) uint8 RGB, labels (N,) int64 and the 10 class names
    (from ``batches.meta`` when present). N is 50000 for "train", 10000 for "test".
    """
    wanted = (*SPLIT_BATCHES[split], META_BATCH)
    blobs = _archive_members(path, wanted) if path.is_file() else _folder_files(path, wanted)
    missing = [name for name in SPLIT_BATCHES[split] if name not in blobs]
    if missing:
        raise DataError(f"{path}: missing CIFAR-10 batch file(s) {', '.join(missing)}")
    parts = [
        parse_batch(unpickle_batch(blobs[name], f"{path}/{name}"), f"{path}/{name}")
        for name in SPLIT_BATCHES[split]
    ]
    class_names = list(CIFAR10_CLASSES)
    if META_BATCH in blobs:
        class_names = _class_names(unpickle_batch(blobs[META_BATCH], f"{path}/{META_BATCH}"), path)
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return images, labels, class_names


def _class_names(meta: dict[str, Any], path: Path) -> list[str]:
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != len(CIFAR10_CLASSES):
        raise DataError(f"{path}/{META_BATCH}: expected 10 'label_names'")
    return [_text(name) for name in names]


def _folder_files(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    blobs = {}
    for name in names:
        file = folder / name
        if file.is_file():
            try:
                blobs[name] = file.read_bytes()
            except OSError as exc:
                raise DataError(f"cannot read {file}: {exc.strerror or exc}") from None
    return blobs


def _archive_members(archive: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """Read the members ``cifar-10-batches-py/<name>`` of the archive into memory."""
    wanted = {f"{BATCHES_DIR}/{name}": name for name in names}
    blobs = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:  # sequential: a .tar.gz is cheap to read front to back only
                name = wanted.get(member.name.removeprefix("./"))
                stream = tar.extractfile(member) if name and member.isfile() else None
                if stream is not None:
                    blobs[name] = stream.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive}: corrupt or truncated archive ({exc})") from None
    return blobs


def _text(value: Any) -> Any:
    """Python 2 strings arrive as bytes under ``encoding="bytes"``; decode them."""
    return value.decode("latin-1") if isinstance(value, bytes) else value
