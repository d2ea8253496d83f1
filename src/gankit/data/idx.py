"""Reader for the IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/).

Layout: two zero bytes, a type code byte, the number of dimensions, one big-endian uint32 per
dimension, then the values in row-major order, big-endian. Files may be gzip-compressed (detected
from the content, not the name). The header is checked against the byte count before reshaping, so a
truncated or foreign file is a :class:`DataError`, never a huge allocation or a garbled array.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from gankit.errors import DataError

# Type code -> big-endian element type.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DIMS = 8  # real files have 1 (labels) or 3 (images)


def read_idx(path: Path | str) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not.

    Returns an array of the file's shape in native byte order: e.g. (60000, 28, 28) uint8 for
    ``train-images-idx3-ubyte`` and (60000,) uint8 for ``train-labels-idx1-ubyte``.
    Raises DataError naming the file when it cannot be read or is not a consistent IDX file.
    """
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def parse_idx(data: bytes | bytearray, name: str = "<bytes>") -> np.ndarray:
    """Parse the (already decompressed) bytes of an IDX file; ``name`` is used in errors."""
    if len(data) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(data)} bytes)")
    zero1, zero2, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0 or type_code not in IDX_DTYPES:
        raise DataError(f"{name}: not an IDX file (magic number {bytes(data[:4]).hex()})")
    if not 1 <= ndim <= _MAX_DIMS:
        raise DataError(f"{name}: IDX header gives {ndim} dimensions (expected 1 to {_MAX_DIMS})")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{name}: truncated IDX header ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", bytes(data[4:header_size]))
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on hostile headers
    actual = len(data) - header_size
    if actual != expected:
        state = "truncated" if actual < expected else "has trailing bytes"
        raise DataError(
            f"{name}: IDX file {state}: header says shape {shape} ({expected} bytes of values), "
            f"file holds {actual}"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=dtype.itemsize > 1)


def _read_bytes(path: Path) -> bytearray:
    """The file's bytes, decompressed when they are gzip; a bytearray so arrays are writable."""
    try:
        with path.open("rb") as stream:
            raw = stream.read()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not raw.startswith(_GZIP_MAGIC):
        return bytearray(raw)
    try:
        return bytearray(gzip.decompress(raw))
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from None
