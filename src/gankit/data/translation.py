"""Two-domain sources for image-to-image translation: ``unpaired`` and ``paired``.

Domain A goes to ``ImageSet.images`` and domain B to ``images_b`` (see
:class:`gankit.data.base.ImageSet`). ``data.root`` is a folder or a ``.zip``; when everything in it
lies inside one folder whose name is not part of a layout (``horse2zebra.zip`` holds
``horse2zebra/trainA/...``), that folder is read as the root.

Layouts (folder names match in any case; files are found recursively, in sorted path order):

- ``unpaired`` (CycleGAN sets): ``trainA/`` and ``trainB/`` (``testA/``, ``testB/`` for
  ``data.split=test``). The domains are drawn independently.
- ``paired`` (pix2pix sets), the first layout that exists:
  1. two parallel folders ``A/<split>/`` and ``B/<split>/``, or ``<split>/A/`` and ``<split>/B/``,
     or ``A/`` and ``B/``. Files pair up by their path inside the folder without the extension
     (``A/x.png`` with ``B/x.jpg``); files without a partner are skipped and logged.
  2. side-by-side images in ``<split>/`` (``facades/train/1.jpg``), or in the root itself when it
     has no split folders: the left half of each image (``W // 2`` columns) is A, the next
     ``W // 2`` columns are B. Images narrower than tall are skipped.
  ``data.paired=false`` shuffles the pairs apart (an unpaired family on paired data).

``data.direction=BtoA`` swaps what the files call A and B before anything else, so that a set is
used both ways (pix2pix trains facades and cityscapes labels -> photo with BtoA).

Domain A's kind, ``data.a_kind``:

- ``image``: like B; ``data.channels_a`` channels (default ``data.channels``).
- ``labels`` (SPADE): indexed label maps, ``P`` (palette) or ``L`` PNGs (also 1-bit, and 16-bit
  when every value is < 256) whose pixel values ARE the class indices. They are kept as one
  channel of uint8 indices: the palette is not applied, no luma conversion, and every resize is
  NEAREST, so no index is ever blended into another. RGB images and JPEGs (lossy) are skipped as
  not label maps. The loader maps a stored value v to ``v / 127.5 - 1`` like any image (crops and
  flips move whole pixels), so a translator recovers the indices exactly with
  ``(a + 1).mul(127.5).round().long()``.

Channels: B has ``data.channels``; A has 1 channel for labels, else ``data.channels_a`` or
``data.channels`` (e.g. colourisation: ``channels_a=1``, ``channels=3``). Conversions are those of
:mod:`gankit.data.transforms` (EXIF orientation, alpha onto black, ITU-R 601 luma).

Sizes: with ``data.resize`` unset and ``data.crop=random`` every image keeps its own size (HD
originals are used as they are) and the loader cuts a random ``data.resolution`` square from each
image every batch, the same square from both images of a pair. At load time, an image whose longer
side exceeds ``data.max_side`` is scaled down to it (keeping the aspect), and one whose shorter
side is below ``data.resolution`` R is scaled UP so that the shorter side is R; when the two rules
conflict (a panorama) the shorter side is R and the middle ``max_side`` of the longer is kept.
Otherwise (``data.resize`` set, or ``data.crop=center``) images are stored like every source: the
shorter side resized to ``data.resize`` (else R) and the centred square kept. Images are resampled
bicubic (antialiased when shrinking), label maps nearest. Both images of a pair must have the
same size (checked after EXIF rotation; a pair that differs is skipped and logged).

Unreadable files are skipped and reported in one warning per domain on the ``gankit.data``
logger (see :mod:`gankit.data.folder`); a domain with no usable image is a DataError.
"""

from __future__ import annotations

import contextlib
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from gankit.config import DataConfig
from gankit.data.base import DATASETS, ImageSet
from gankit.data.folder import (
    Candidate,
    Skip,
    folder_candidates,
    opened_image,
    skip_reason,
    warn_skipped,
    zip_candidates,
)
from gankit.data.transforms import fit_square, to_l_or_rgb
from gankit.errors import DataError

log = logging.getLogger("gankit.data")
T = TypeVar("T")

_PROGRESS_FROM = 1000  # show a progress bar when decoding at least this many files
_SPLIT_FOLDERS = ("train", "test", "val")
# Folder names that belong to a layout: a lone top-level folder with one of these names is part
# of the dataset, not a wrapper around it.
LAYOUT_FOLDERS = frozenset({*_SPLIT_FOLDERS, "a", "b", "traina", "trainb", "testa", "testb"})
_LABEL_MODES = ("P", "L", "1", "I", "I;16", "I;16B", "I;16L")  # modes whose values are indices


@DATASETS.register("unpaired")
def unpaired(cfg: DataConfig) -> ImageSet:
    """Two unpaired domains: trainA/ and trainB/ (CycleGAN sets) in a folder or .zip."""
    folders = [f"{cfg.split}A", f"{cfg.split}B"]
    if cfg.direction == "BtoA":
        folders.reverse()
    with _open_tree(cfg) as tree:
        domains = [tree.under((folder,)) for folder in folders]
        for folder, files in zip(folders, domains, strict=True):
            if files is None:
                raise DataError(
                    f"{tree.source} has no {folder}/ folder{tree.found_hint()} "
                    f"(data.source=unpaired reads {folders[0]}/ and {folders[1]}/)"
                )
        images_a = _decode_domain(domains[0], cfg, "a", f"{tree.source}/{folders[0]}")
        images_b = _decode_domain(domains[1], cfg, "b", f"{tree.source}/{folders[1]}")
    return image_set(images_a, images_b, False, cfg, f"unpaired {tree.source} {cfg.split}")


@DATASETS.register("paired")
def paired(cfg: DataConfig) -> ImageSet:
    """Pairs (pix2pix sets): side-by-side A|B images or parallel A/ and B/ folders."""
    with _open_tree(cfg) as tree:
        folders = _parallel_folders(tree, cfg.split)
        if folders is not None:
            pairs, skipped = _match_by_name(*folders, tree)
            layout = "A/ and B/ folders"
        else:
            pairs, skipped = _side_by_side(tree, cfg.split), []
            layout = "side-by-side A|B images"
        images_a, images_b = _decode_pairs(pairs, skipped, cfg, tree.source)
    description = f"paired {tree.source} {cfg.split}, {layout}"
    return image_set(images_a, images_b, cfg.paired, cfg, description)


# --------------------------------------------------------------------------------------------------
# Finding the files


@dataclass
class _Tree:
    """The image files of ``data.root`` with paths relative to it (a wrapper folder removed)."""

    candidates: list[Candidate]
    source: str  # data.root as given, for messages

    def under(self, prefix: tuple[str, ...]) -> list[Candidate] | None:
        """The files below the folder ``prefix`` (matched in any case), with paths relative to
        it, in sorted order; None when there is no such file."""
        depth, wanted = len(prefix), tuple(part.lower() for part in prefix)
        found = [
            Candidate(PurePosixPath(*c.path.parts[depth:]), c.size, c.read)
            for c in self.candidates
            if len(c.path.parts) > depth
            and tuple(part.lower() for part in c.path.parts[:depth]) == wanted
        ]
        return sorted(found, key=lambda c: c.path.as_posix()) or None

    def top_folders(self) -> list[str]:
        return sorted({c.path.parts[0] for c in self.candidates if len(c.path.parts) > 1})

    def found_hint(self) -> str:
        folders = self.top_folders()
        return f" (found: {', '.join(f'{name}/' for name in folders[:8])})" if folders else ""


@contextlib.contextmanager
def _open_tree(cfg: DataConfig) -> Iterator[_Tree]:
    """The files of ``cfg.root`` (a folder, or a zip kept open while the block runs)."""
    if not cfg.root:
        raise DataError(f"data.root must name a folder or .zip for data.source={cfg.source}")
    root = Path(cfg.root).expanduser()
    if root.is_dir():
        yield _tree(folder_candidates(root), [], str(root))
    elif root.is_file() and root.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(root) as archive:
                candidates, refused = zip_candidates(archive, strip_wrapper=False)
                yield _tree(candidates, refused, str(root))
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise DataError(f"{root}: not a readable zip file ({exc})") from None
    elif not root.exists():
        raise DataError(f"data.root {root} does not exist")
    else:
        raise DataError(f"data.root {root} is neither a folder nor a .zip file")


def _tree(candidates: list[Candidate], refused: list[tuple[str, str]], source: str) -> _Tree:
    warn_skipped(refused, len(candidates) + len(refused), source)
    tops = {c.path.parts[0] for c in candidates}
    nested = all(len(c.path.parts) > 1 for c in candidates)
    if len(tops) == 1 and nested and next(iter(tops)).lower() not in LAYOUT_FOLDERS:
        for candidate in candidates:  # one wrapping folder (horse2zebra/): read it as the root
            candidate.path = PurePosixPath(*candidate.path.parts[1:])
        source = f"{source}/{next(iter(tops))}"
    return _Tree(candidates, source)


def _parallel_folders(tree: _Tree, split: str) -> tuple[list[Candidate], list[Candidate]] | None:
    """The files of A/ and B/ in the first parallel layout present, or None."""
    for a_prefix, b_prefix in ((("A", split), ("B", split)), ((split, "A"), (split, "B"))):
        a_files, b_files = tree.under(a_prefix), tree.under(b_prefix)
        if a_files and b_files:
            return a_files, b_files
    a_files, b_files = tree.under(("A",)), tree.under(("B",))
    if a_files and b_files:
        splits = {c.path.parts[0].lower() for c in a_files if len(c.path.parts) > 1}
        if splits & set(_SPLIT_FOLDERS):  # A/train/ exists but A/<split>/ does not
            raise DataError(f"{tree.source} has no A/{split}/ and B/{split}/ folders"
                            f"{tree.found_hint()}")  # fmt: skip
        return a_files, b_files
    return None


def _side_by_side(tree: _Tree, split: str) -> list[tuple[str, Candidate, Candidate | None]]:
    """(name, file, None) for each side-by-side image of ``split``."""
    files = tree.under((split,))
    if files is None:
        layout = {name.lower() for name in tree.top_folders()} & {*_SPLIT_FOLDERS, "a", "b"}
        if layout:
            raise DataError(
                f"data.source=paired: {tree.source} has no {split}/ folder of side-by-side "
                f"images and no A/ and B/ folders{tree.found_hint()}"
            )
        files = sorted(tree.candidates, key=lambda c: c.path.as_posix())
    if not files:
        raise DataError(f"no image file in {tree.source} (data.source=paired)")
    return [(c.path.as_posix(), c, None) for c in files]


def _match_by_name(
    a_files: list[Candidate], b_files: list[Candidate], tree: _Tree
) -> tuple[list[tuple[str, Candidate, Candidate | None]], list[tuple[str, str]]]:
    """Pairs (name, A file, B file) of files with the same path without extension, and the
    (name, reason) of files left out (no partner, or two files of one name in one folder)."""
    by_name_a, skipped = _by_stem(a_files, "A")
    by_name_b, skipped_b = _by_stem(b_files, "B")
    skipped += skipped_b
    skipped += [(f"A/{n}", "no partner in B/") for n in sorted(by_name_a.keys() - by_name_b.keys())]
    skipped += [(f"B/{n}", "no partner in A/") for n in sorted(by_name_b.keys() - by_name_a.keys())]
    names = sorted(by_name_a.keys() & by_name_b.keys())
    if not names:
        raise DataError(f"{tree.source}: no file in A/ has a partner of the same name in B/ "
                        f"({len(a_files)} in A/, {len(b_files)} in B/)")  # fmt: skip
    return [(name, by_name_a[name], by_name_b[name]) for name in names], skipped


def _by_stem(files: list[Candidate], side: str) -> tuple[dict[str, Candidate], list]:
    by_name: dict[str, Candidate] = {}
    duplicates: set[str] = set()
    for candidate in files:
        name = candidate.path.with_suffix("").as_posix()
        if name in by_name:
            duplicates.add(name)
        by_name[name] = candidate
    for name in duplicates:
        del by_name[name]
    return by_name, [(f"{side}/{name}.*", "two files of this name") for name in sorted(duplicates)]


# --------------------------------------------------------------------------------------------------
# Decoding


def _decode_domain(
    files: list[Candidate], cfg: DataConfig, domain: str, source: str
) -> list[np.ndarray]:
    """Up to ``cfg.max_images`` images of one domain ("a" or "b"), each (C, H, W) uint8."""
    arrays, skipped = [], []
    for candidate in _progress(files, source):
        if len(arrays) == (cfg.max_images or len(files)):
            break
        try:
            with opened_image(candidate) as img:
                if domain == "a" and cfg.a_kind == "labels":
                    _refuse_lossy(img)
                arrays.append(stored_image(_upright(img), domain, cfg))
        except Exception as exc:  # one bad file must not stop the rest
            skipped.append((candidate.path.as_posix(), skip_reason(exc)))
    warn_skipped(skipped, len(files), source)
    if not arrays:
        raise DataError(f"no usable image in {source} ({len(skipped)} files skipped)")
    return arrays


def _decode_pairs(
    pairs: list[tuple[str, Candidate, Candidate | None]],
    skipped: list[tuple[str, str]],
    cfg: DataConfig,
    source: str,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Up to ``cfg.max_images`` pairs: (A arrays, B arrays), pair i of the same size.

    pairs: (name, file, None) for a side-by-side image, (name, file A, file B) for two files.
    """
    images_a, images_b = [], []
    swap, total = cfg.direction == "BtoA", len(pairs) + len(skipped)  # skipped: unmatched names
    for name, first, second in _progress(pairs, source):
        if len(images_a) == (cfg.max_images or len(pairs)):
            break
        try:
            if second is None:
                with opened_image(first) as img:
                    if cfg.a_kind == "labels":
                        _refuse_lossy(img)
                    stored = _stored_pair(*_split_halves(_upright(img)), swap, cfg)
            else:
                with opened_image(first) as file_a, opened_image(second) as file_b:
                    if cfg.a_kind == "labels":
                        _refuse_lossy(file_b if swap else file_a)
                    stored = _stored_pair(_upright(file_a), _upright(file_b), swap, cfg)
        except Exception as exc:  # one bad file must not stop the rest
            skipped.append((name, skip_reason(exc)))
            continue
        images_a.append(stored[0])
        images_b.append(stored[1])
    warn_skipped(skipped, total, source)
    if not images_a:
        raise DataError(f"no usable pair in {source} ({len(skipped)} skipped)")
    return images_a, images_b


def _stored_pair(
    file_a: Image.Image, file_b: Image.Image, swap: bool, cfg: DataConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The stored (domain A, domain B) of what the files call A and B; ``swap``: BtoA."""
    a, b = (file_b, file_a) if swap else (file_a, file_b)
    if a.size != b.size:
        raise Skip(f"A is {a.width}x{a.height} but B is {b.width}x{b.height}")
    return stored_image(a, "a", cfg), stored_image(b, "b", cfg)


def _progress(items: list[T], source: str) -> Iterator[T]:
    hidden = None if len(items) >= _PROGRESS_FROM else True  # None: hidden off a terminal
    yield from tqdm(items, desc=f"decoding {Path(source).name}", unit="img", disable=hidden)


def _upright(img: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (a broken EXIF block: as stored)."""
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception:
        return img


def _refuse_lossy(img: Image.Image) -> None:
    if img.format == "JPEG":
        raise Skip("a JPEG cannot hold exact class indices (label maps must be PNG)")


def _split_halves(img: Image.Image) -> tuple[Image.Image, Image.Image]:
    """A side-by-side image -> (left half, right half)."""
    width, height = img.size
    if width < height or width < 2:
        raise Skip(f"{width}x{height} is narrower than tall: not a side-by-side A|B pair")
    half = width // 2
    return img.crop((0, 0, half, height)), img.crop((half, 0, 2 * half, height))


def _label_indices(img: Image.Image) -> Image.Image:
    """A label map -> mode ``L`` holding its class indices (a palette is NOT applied)."""
    if img.mode not in _LABEL_MODES:
        raise Skip(f"a {img.mode} image is not a label map (need P or L with class indices)")
    values = np.asarray(img)
    if values.dtype == bool:  # mode "1": classes 0 and 1
        values = values.astype(np.uint8)
    if values.size and (values.min() < 0 or values.max() > 255):
        raise Skip(f"label values {values.min()}..{values.max()} do not fit in 0..255")
    return Image.fromarray(values.astype(np.uint8), mode="L")


def stored_image(img: Image.Image, domain: str, cfg: DataConfig) -> np.ndarray:
    """One upright image of ``domain`` ("a" or "b") -> its stored form, (C, H, W) uint8."""
    labels = domain == "a" and cfg.a_kind == "labels"
    if labels:
        img, channels = _label_indices(img), 1
    else:
        img = to_l_or_rgb(img)
        channels = cfg.domain_a_channels if domain == "a" else cfg.channels
        if channels == 1 and img.mode == "RGB":
            img = img.convert("L")  # before resizing: a third of the work, same luma rule
    resample = Image.Resampling.NEAREST if labels else Image.Resampling.BICUBIC
    array = np.asarray(_resized(img, cfg, resample))
    if array.ndim == 2:
        return np.repeat(array[None], channels, axis=0)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def _resized(img: Image.Image, cfg: DataConfig, resample: Image.Resampling) -> Image.Image:
    """The stored geometry: the centred ``stored_size`` square, or (variable size) the kept size
    of :func:`kept_size`, with the middle of an over-long side cut out."""
    if not cfg.variable_size:
        if resample == Image.Resampling.BICUBIC:
            return fit_square(img, cfg.stored_size)
        return _fit_square_nearest(img, cfg.stored_size)
    width, height = img.size
    new_width, new_height = kept_size(width, height, cfg.resolution, cfg.max_side)
    if (new_width, new_height) != (width, height):
        img = img.resize((new_width, new_height), resample)
    limit = cfg.max_side or max(new_width, new_height)
    if new_width > limit:
        left = (new_width - limit) // 2
        img = img.crop((left, 0, left + limit, new_height))
    if new_height > limit:
        top = (new_height - limit) // 2
        img = img.crop((0, top, img.width, top + limit))
    return img


def kept_size(width: int, height: int, resolution: int, max_side: int | None) -> tuple[int, int]:
    """The (width, height) a variable-size image is resized to before the crop of an over-long
    side: unchanged if it already fits; the longer side scaled down to ``max_side``; the shorter
    side scaled up to ``resolution`` when below it (this rule wins a conflict)."""
    scale = 1.0
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
    if min(width, height) * scale < resolution:
        scale = resolution / min(width, height)
    if scale == 1.0:
        return width, height
    return max(resolution, round(width * scale)), max(resolution, round(height * scale))


def _fit_square_nearest(img: Image.Image, size: int) -> Image.Image:
    """:func:`gankit.data.transforms.fit_square` with nearest-neighbour sampling (label maps)."""
    width, height = img.size
    short = min(width, height)
    left, top = (width - short) // 2, (height - short) // 2
    square = img.crop((left, top, left + short, top + short))
    return square if short == size else square.resize((size, size), Image.Resampling.NEAREST)


def image_set(
    images_a: list[np.ndarray],
    images_b: list[np.ndarray],
    is_paired: bool,
    cfg: DataConfig,
    description: str,
) -> ImageSet:
    """Kept sizes: an :class:`ImageSet` of lists; else of (N, C, S, S) stacks."""
    stored_bytes = sum(a.nbytes for a in images_a) + sum(b.nbytes for b in images_b)
    sizes = f"kept sizes, {stored_bytes / 2**20:.1f} MiB" if cfg.variable_size else "squares"
    description = f"{description} ({len(images_a)} A, {len(images_b)} B images; {sizes})"
    if cfg.variable_size:
        kept_a = [torch.from_numpy(array) for array in images_a]
        kept_b = [torch.from_numpy(array) for array in images_b]
        return ImageSet(images=kept_a, labels=None, class_names=None, description=description,
                        images_b=kept_b, paired=is_paired)  # fmt: skip
    return ImageSet(images=torch.from_numpy(np.stack(images_a)), labels=None, class_names=None,
                    description=description, images_b=torch.from_numpy(np.stack(images_b)),
                    paired=is_paired)  # fmt: skip
