"""The ``folder`` source: every image below a folder or inside a ``.zip``, decoded defensively."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import stat
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gankit.config import DataConfig
from gankit.data.base import DATASETS, ImageSet
from gankit.data.transforms import pil_to_array
from gankit.errors import DataError

log = logging.getLogger("gankit.data")

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Decoders tried on a file's content whatever its extension says; nothing else (e.g. EPS, which
# would run Ghostscript) is ever opened. JPEG covers multi-picture JPEGs (MPO); DIB is a BMP kind.
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "WEBP", "TIFF")
MAX_PIXELS = 89_478_485  # decompression-bomb guard: PIL's default limit (a 2**30-byte RGBA image)
MAX_FILE_BYTES = 1 << 28  # larger files (256 MiB) are skipped unread
_WARN_EXAMPLES = 5  # skipped files named in the warning
_PROGRESS_FROM = 1000  # show a progress bar from this many files on


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
        return _decode_candidates(folder_candidates(root), [], str(root), cfg)
    if root.is_file() and root.suffix.lower() == ".zip":
        return _load_zip(root, cfg)
    if not root.exists():
        raise DataError(f"data.root {root} does not exist")
    raise DataError(f"data.root {root} is neither a folder nor a .zip file")


@dataclass
class Candidate:
    """A file that should hold an image."""

    path: PurePosixPath  # relative to the folder or zip root
    size: int  # bytes, as the file system or the zip directory says
    read: Callable[[], bytes]


class Skip(Exception):
    """A file that is not used; the message is the reason shown in the warning."""


def folder_candidates(root: Path) -> list[Candidate]:
    """Image files under ``root``; symlinked folders are followed but each real folder once."""
    candidates, visited = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a symlink loop or a second link to the same folder
            subfolders[:] = []
            continue
        visited.add(real)
        subfolders[:] = [name for name in subfolders if not is_hidden(name)]
        for name in files:
            path = Path(folder, name)
            if is_hidden(name) or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            try:
                status = path.stat()
            except OSError:
                status = None  # a dangling link: reading it gives the reason
            if status is not None and not stat.S_ISREG(status.st_mode):
                continue  # a FIFO or device named *.png: reading it could block forever
            size = status.st_size if status else 0
            relative = PurePosixPath(path.relative_to(root).as_posix())
            candidates.append(Candidate(relative, size, path.read_bytes))
    return candidates


def _load_zip(archive_path: Path, cfg: DataConfig) -> ImageSet:
    try:
        with zipfile.ZipFile(archive_path) as archive:
            candidates, skipped = zip_candidates(archive)
            return _decode_candidates(candidates, skipped, str(archive_path), cfg)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise DataError(f"{archive_path}: not a readable zip file ({exc})") from None


def zip_candidates(
    archive: zipfile.ZipFile, strip_wrapper: bool = True
) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Image members of ``archive``, and the (name, reason) of members refused for their path.

    ``strip_wrapper``: when every image lies inside one top-level folder, paths are made relative
    to that folder (the zip then reads as the folder it was made from).
    """
    candidates, skipped = [], []
    for info in archive.infolist():
        if info.is_dir():
            continue
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if not parts or name.startswith("/") or ".." in parts or ":" in parts[0]:
            skipped.append((info.filename, "unsafe path in zip"))
            continue
        hidden = any(is_hidden(part) for part in parts)
        if hidden or PurePosixPath(name).suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        read = functools.partial(archive.read, info)
        candidates.append(Candidate(PurePosixPath(name), info.file_size, read))
    tops = {candidate.path.parts[0] for candidate in candidates}
    nested = all(len(candidate.path.parts) > 1 for candidate in candidates)
    if strip_wrapper and len(tops) == 1 and nested:
        for candidate in candidates:  # one wrapping folder: read it as the root
            candidate.path = PurePosixPath(*candidate.path.parts[1:])
    return candidates, skipped


def _decode_candidates(
    candidates: list[Candidate], skipped: list[tuple[str, str]], source: str, cfg: DataConfig
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
            skipped.append((candidate.path.as_posix(), skip_reason(exc)))
            continue
        if class_names is not None:
            labels.append(class_index[candidate.path.parts[0]])
        count += 1
    warn_skipped(skipped, len(candidates), source)
    if count == 0:
        looked_for = "" if candidates else f"; looked for {', '.join(sorted(IMAGE_EXTENSIONS))}"
        raise DataError(f"no usable image in {source} ({len(skipped)} files skipped{looked_for})")
    return ImageSet(
        images=torch.from_numpy(images[:count]),
        labels=torch.tensor(labels, dtype=torch.int64) if class_names is not None else None,
        class_names=class_names,
        description=f"folder {source} ({count} images)",
    )


def _decode(candidate: Candidate, channels: int, size: int) -> np.ndarray:
    """One file -> (channels, size, size) uint8; raises Skip or the decoder's error if unusable."""
    with opened_image(candidate) as img:
        return pil_to_array(img, channels, size)


@contextlib.contextmanager
def opened_image(candidate: Candidate) -> Iterator[Image.Image]:
    """The decoded image of one file, usable inside the ``with`` block.

    Only the decoders of ``_PIL_FORMATS`` are tried, whatever the extension says. Raises Skip
    (files over :data:`MAX_FILE_BYTES`, empty files, images over :data:`MAX_PIXELS`) or the
    decoder's own error; :func:`skip_reason` turns either into the reason shown in the warning.
    """
    if candidate.size > MAX_FILE_BYTES:
        raise Skip(f"file of {candidate.size} bytes exceeds {MAX_FILE_BYTES}")
    data = candidate.read()
    if not data:
        raise Skip("empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data), formats=_PIL_FORMATS) as img:  # reads the header only
            if img.width * img.height > MAX_PIXELS:
                raise Skip(f"{img.width}x{img.height} pixels exceed the limit of {MAX_PIXELS}")
            img.load()
            yield img


def _folder_class_names(candidates: list[Candidate], source: str) -> list[str]:
    for candidate in candidates:
        if len(candidate.path.parts) == 1:
            raise DataError(
                f"{source}: data.labels=true needs images in class sub-folders, "
                f"but {candidate.path} lies directly in the root"
            )
    return sorted({candidate.path.parts[0] for candidate in candidates})


def warn_skipped(skipped: list[tuple[str, str]], total: int, source: str) -> None:
    if not skipped:
        return
    for name, reason in skipped:
        log.debug("skipped %s in %s: %s", name, source, reason)
    examples = "; ".join(f"{name} ({reason})" for name, reason in skipped[:_WARN_EXAMPLES])
    more = f"; and {len(skipped) - _WARN_EXAMPLES} more" if len(skipped) > _WARN_EXAMPLES else ""
    log.warning("skipped %d of %d file(s) in %s: %s%s%s", len(skipped), total, source, examples,
                more, " (-v lists every one)" if more else "")  # fmt: skip


def skip_reason(exc: Exception) -> str:
    if isinstance(exc, Skip):
        return str(exc)
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not a readable image"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "too many pixels (decompression bomb guard)"
    text = " ".join(str(exc).split())[:80]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"
