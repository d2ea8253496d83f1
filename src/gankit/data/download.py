"""Checksum-verified downloads of the standard datasets, with one-line errors when offline.

A download goes to a temporary file beside the destination and is renamed into place only after its
checksum matched, so an interrupted or corrupt download never leaves a file that looks complete.
``fetch`` takes any URL urllib opens, ``file://`` included, which is how the tests exercise it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from gankit.errors import DataError

_CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 60.0  # per connection attempt and per read, not for the whole file


@dataclass(frozen=True)
class RemoteFile:
    """A file a dataset needs, as published."""

    name: str  # file name on disk and at the end of every URL
    checksum: str  # md5 (32 hex digits) or sha256 (64) of the file exactly as served
    mirrors: tuple[str, ...]  # base URLs ending in "/", tried in order

    @property
    def urls(self) -> list[str]:
        return [mirror + self.name for mirror in self.mirrors]


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_CIFAR_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)

# dataset -> the files it can download. Checksums are those of the published .gz archives; a copy
# that was decompressed and re-compressed has other bytes (and another md5) but the same content.
KNOWN_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": tuple(
        RemoteFile(name, md5, _MNIST_MIRRORS)
        for name, md5 in [
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ]
    ),
    "fashion-mnist": tuple(
        RemoteFile(name, md5, _FASHION_MIRRORS)
        for name, md5 in [
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ]
    ),
    "cifar10": (
        RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", _CIFAR_MIRRORS),
    ),
}


class DownloadError(DataError):
    """No mirror could be reached (offline, firewall, server down). ``reason`` is one line."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def known_file(dataset: str, name: str) -> RemoteFile:
    """The entry of :data:`KNOWN_FILES` for ``dataset``'s file ``name``."""
    for remote in KNOWN_FILES[dataset]:
        if remote.name == name:
            return remote
    raise KeyError(f"{dataset} has no known file {name!r}")


def file_digest(path: Path, checksum: str) -> str:
    """The hex digest of ``path`` with the algorithm ``checksum`` is written in (md5 or sha256)."""
    digest = _new_digest(checksum)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    urls: Sequence[str], dest: Path, checksum: str, *, timeout: float = DEFAULT_TIMEOUT_S
) -> Path:
    """Download ``dest`` from the first of ``urls`` that works and verify its checksum.

    urls:     mirrors, tried in order (any scheme urllib opens: https, http, file).
    dest:     where the file goes; its folder is created. If it already exists with the right
              checksum nothing is downloaded.
    checksum: md5 (32 hex digits) or sha256 (64) of the expected file.
    Returns ``dest``. Raises DataError on a checksum mismatch (nothing is left behind) and
    DownloadError, with one line saying which file to put where, when no mirror can be reached.
    """
    dest = Path(dest)
    checksum = checksum.lower()
    _new_digest(checksum)  # reject a malformed checksum before touching the network
    if dest.is_file() and file_digest(dest, checksum) == checksum:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures, mismatch = [], None
    for url in urls:
        try:
            actual = download_to(url, dest, checksum, timeout)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"{url}: {_one_line(exc)}")
            continue
        if actual == checksum:
            return dest
        mismatch = f"checksum mismatch for {dest.name} from {url}: want {checksum}, got {actual}"
    if mismatch:
        raise DataError(mismatch)
    reason = "; ".join(failures) or "no URL given"
    raise DownloadError(
        f"cannot download {dest.name} ({reason}); put {dest.name} in {dest.parent} by hand",
        reason,
    )


def download_to(url: str, dest: Path, checksum: str | None, timeout: float) -> str:
    """Stream ``url`` into a temp file beside ``dest``; rename it to ``dest`` if the digest matches
    (``checksum=None``: nothing to match, the sha256 is computed and the file always kept).

    Returns the hex digest of what was received. The temp file never outlives this call.
    """
    digest = _new_digest(checksum) if checksum is not None else hashlib.sha256()
    handle, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as reply:
            total = int(reply.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar:
                for block in iter(lambda: reply.read(_CHUNK_BYTES), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if checksum is None or digest.hexdigest() == checksum:
            os.replace(temp, dest)  # atomic on one file system: dest is complete or absent
        return digest.hexdigest()
    finally:
        temp.unlink(missing_ok=True)


def _new_digest(checksum: str) -> hashlib._Hash:
    algorithm = {32: "md5", 64: "sha256"}.get(len(checksum))
    if algorithm is None or any(char not in "0123456789abcdef" for char in checksum.lower()):
        raise ValueError(f"checksum {checksum!r} is neither an md5 nor a sha256 hex digest")
    return hashlib.new(algorithm, usedforsecurity=False)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "reason", None) or exc).split())
    return text or type(exc).__name__
