"""Real HD photos and a painting domain with a ground truth: the data of the HD painting experiment.

The photos are the nature wallpapers of Debian's ``mate-backgrounds`` package (GPL-2+, see its
``/usr/share/doc/mate-backgrounds/copyright``): twelve JPEG photos of 1280 x 1024 to 2560 x 1920
in ``/usr/share/backgrounds/mate/nature/``. ``make hd-photos`` installs the package (as root,
through apt-get); ``GANKIT_HD_PHOTOS`` names another folder holding the same files. Nothing of
them is committed to the repository.

:data:`SPLIT` divides them by whole photo into domain A (photos), domain B (photos that are only
ever seen painted) and held-out test photos, so that training is unpaired (A and B share no photo)
while every held-out photo has a true painting to score a translation against.

The painting is :func:`paint`: OpenCV's classical oil-painting filter ``cv2.xphoto.oilPainting``
(opencv-contrib, after Holzmann, *Beyond Photography: The Digital Darkroom*, 1988): each output
pixel takes the mean colour of the pixels whose intensity falls in the most frequent intensity
bin of its (2r + 1)^2 neighbourhood (the lowest bin on a tie), which turns detail into flat,
brush-like patches of the locally dominant colour. Radius r = :data:`BRUSH_RADIUS` (a 15 x 15
window), intensity bins of width :data:`INTENSITY_BIN` (dynRatio 1: all 256 levels).

Why this filter and not ``cv2.stylization`` (an edge-preserving domain-transform filter plus dark
edge lines), measured on ``LadyBird.jpg`` (2560 x 1600, 4.1 MP), one thread, on this project's
2-core machine with opencv-contrib-python-headless 5.1.0.95:

- speed: oilPainting(7, 1) 2.7 s (1.5 MP/s); stylization(sigma_s=60, sigma_r=0.45) 4.0 s
  (1.0 MP/s);
- locality: an oil-painted pixel depends only on its 15 x 15 neighbourhood, so painting a crop
  gives exactly the crop of the painting away from its borders (checked bit for bit, and in
  tests/test_hd_photos.py). The truth is therefore something a generator that only sees patches
  can reproduce, and tiles of it agree with the whole. stylization's recursive filter spreads
  along whole rows and columns: 40 px inside a 400 px crop, 5.6 % of the pixels still differed
  from the crop of the whole image's stylization;
- look: oilPainting gives brush strokes; stylization mostly smooths and outlines edges (a
  cartoon look);
- both are deterministic; oilPainting is bit-identical at 1 and 2 OpenCV threads.

Training data: :func:`write_crops` writes random square crops of the A photos to ``trainA/`` and
of the painted B photos to ``trainB/`` (PNG, lossless), the layout of the ``unpaired`` source
(``data.source=unpaired``, ``data.root=<that folder>``, ``data.crop=random``: the loader then
takes a random ``data.resolution`` square of every crop each batch). With ``downscale`` f > 1
the photos are first shrunk f times (bicubic, antialiased): the seed's remedy for near-empty
patches (train on downscaled HD images, translate at full size). B photos are painted AFTER
downscaling, so the filter's strokes keep the size in pixels that they have in the full-size
true painting the translation is scored against. :func:`write_held_out` writes each held-out
photo and its true painting at full size to ``testA/`` and ``testB/``.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image, ImageOps

from gankit.data.transforms import to_l_or_rgb
from gankit.errors import DataError

PHOTO_FOLDER = Path("/usr/share/backgrounds/mate/nature")  # where mate-backgrounds puts them
FOLDER_VARIABLE = "GANKIT_HD_PHOTOS"  # names another folder holding the same files
BRUSH_RADIUS = 7  # oilPainting ``size``: the window is (2 * 7 + 1)^2 = 15 x 15 pixels
INTENSITY_BIN = 1  # oilPainting ``dynRatio``: intensities divided by this before the histogram


@dataclass(frozen=True)
class PhotoSplit:
    """File names of the photos in each role; no name in two roles (checked)."""

    a: tuple[str, ...]  # domain A: photos, as they are
    b: tuple[str, ...]  # domain B: only ever used painted
    test: tuple[str, ...]  # held out: translated at full size, scored against their painting

    def __post_init__(self) -> None:
        names = self.names()
        if len(set(names)) != len(names) or not (self.a and self.b and self.test):
            raise DataError(f"a photo split needs A, B and test photos, none shared: {self}")

    def names(self) -> tuple[str, ...]:
        """Every photo of the split: A, then B, then test."""
        return self.a + self.b + self.test


# The fixed split of the twelve nature photos. Only Dune (grass before the sea) and Storm (a
# road under storm clouds) are landscapes: they are held out, with LadyBird, the largest
# (2560 x 1600) and most varied close-up, so the test covers sky, sea, grass and fine detail.
# The other nine are close-ups of leaves, grass, flowers, water and wood; A and B each get
# greens and orange-to-yellow flowers. Aqua, the one blue-grey photo, is in B, so that paintings
# of blue and grey (the test photos' skies) are seen by the discriminator; Wood, the low-contrast
# photo with the emptiest patches, is in A.
SPLIT = PhotoSplit(
    a=("Blinds.jpg", "Garden.jpg", "RainDrops.jpg", "Wood.jpg", "YellowFlower.jpg"),
    b=("Aqua.jpg", "FreshFlower.jpg", "GreenMeadow.jpg", "TwoWings.jpg"),
    test=("Dune.jpg", "LadyBird.jpg", "Storm.jpg"),
)


@dataclass(frozen=True)
class Crop:
    """One written crop: where it is and where it came from."""

    path: Path  # the PNG written
    photo: str  # the photo's file name
    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the (downscaled) photo


def hd_photos_dir(split: PhotoSplit = SPLIT) -> Path:
    """The folder holding every photo of ``split``: ``$GANKIT_HD_PHOTOS`` if set, else
    :data:`PHOTO_FOLDER`.

    Raises DataError (one line, saying that ``make hd-photos`` installs them) when a photo is
    missing."""
    configured = os.environ.get(FOLDER_VARIABLE)
    folder = Path(configured).expanduser() if configured else PHOTO_FOLDER
    missing = [name for name in split.names() if not (folder / name).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataError(
            f"the HD photos are missing from {folder} ({', '.join(missing[:3])}{more}): "
            f"`make hd-photos` installs Debian's mate-backgrounds (as root), or set "
            f"{FOLDER_VARIABLE} to a folder holding them"
        )
    return folder


def load_photo(name: str | Path, folder: Path | None = None, downscale: float = 1.0) -> np.ndarray:
    """One photo as (H, W, 3) uint8 RGB, upright (EXIF orientation applied).

    name: a file name in ``folder`` (default :func:`hd_photos_dir`), or a path when it has a
    folder part. downscale: f >= 1 shrinks both sides f times (rounded; bicubic, antialiased).
    Raises DataError for a file that cannot be read."""
    path = Path(name)
    if path.parent == Path():
        path = (folder if folder is not None else hd_photos_dir()) / path
    try:
        with Image.open(path) as img:
            img = to_l_or_rgb(ImageOps.exif_transpose(img)).convert("RGB")
    except OSError as exc:
        raise DataError(f"{path}: {exc}") from None
    return np.array(downscaled(img, downscale))


def downscaled(img: Image.Image, factor: float) -> Image.Image:
    """``img`` with both sides divided by ``factor`` >= 1 (rounded, at least 1 px), bicubic and
    antialiased like the translation sources' resizing; unchanged for factor 1."""
    if not factor >= 1:
        raise DataError(f"downscale must be a factor >= 1, got {factor}")
    if factor == 1:
        return img
    size = (max(1, round(img.width / factor)), max(1, round(img.height / factor)))
    return img.resize(size, Image.Resampling.BICUBIC)


def paint(photo: np.ndarray) -> np.ndarray:
    """The painterly filter (module docstring): (H, W, 3) uint8 RGB -> (H, W, 3) uint8 RGB.

    Deterministic: the same photo always gives the same bytes (also across OpenCV thread counts).
    Each output pixel depends only on the (2 * BRUSH_RADIUS + 1)^2 input pixels around it (the
    window is clipped at the image's border), so crops of the painting are paintings of crops
    away from their borders."""
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise DataError(f"paint needs an (H, W, 3) uint8 RGB photo, got {photo.dtype} "
                        f"{tuple(photo.shape)}")  # fmt: skip
    cv2 = _opencv()
    # the histogram is taken over the intensity that this conversion gives (first plane)
    return cv2.xphoto.oilPainting(
        np.ascontiguousarray(photo), BRUSH_RADIUS, INTENSITY_BIN, cv2.COLOR_RGB2GRAY
    )


def true_painting(name: str | Path, folder: Path | None = None) -> np.ndarray:
    """The ground truth of a photo: :func:`paint` of the whole photo at its full size.

    name: as for :func:`load_photo`. Returns (H, W, 3) uint8 RGB, the size of the photo."""
    return paint(load_photo(name, folder))


def write_crops(
    root: str | Path,
    *,
    crops_per_photo: int,
    crop_size: int,
    downscale: float = 1.0,
    seed: int = 0,
    split: PhotoSplit = SPLIT,
    folder: Path | None = None,
) -> list[Crop]:
    """Write unpaired training crops: ``root/trainA/`` from the A photos as they are,
    ``root/trainB/`` from the painted B photos (the ``unpaired`` source's layout).

    Each photo (shrunk ``downscale`` times first; B photos are painted after shrinking, the whole
    photo at once) gives ``crops_per_photo`` squares of ``crop_size`` px at uniformly random
    positions, named ``<photo stem>-<i:03d>.png``. The positions depend only on ``seed`` and the
    photo's name, so a call is reproducible. folder: default :func:`hd_photos_dir` of ``split``.

    Returns every crop written, A's first. Raises DataError when ``trainA/`` or ``trainB/``
    already holds files (crops of other settings would mix in), or a photo is smaller than
    ``crop_size`` after shrinking."""
    if crops_per_photo < 1 or crop_size < 1:
        raise DataError(f"crops_per_photo ({crops_per_photo}) and crop_size ({crop_size}) "
                        f"must be >= 1")  # fmt: skip
    folder = folder if folder is not None else hd_photos_dir(split)
    root = Path(root)
    targets = {"trainA": split.a, "trainB": split.b}
    for target in targets:
        _empty_folder(root / target)
    written = []
    for target, names in targets.items():
        for name in names:
            photo = load_photo(name, folder, downscale)
            if target == "trainB":
                photo = paint(photo)
            written += _write_random_crops(photo, name, root / target, crops_per_photo,
                                           crop_size, seed)  # fmt: skip
    return written


def write_held_out(
    root: str | Path, *, split: PhotoSplit = SPLIT, folder: Path | None = None
) -> list[tuple[Path, Path]]:
    """Write each held-out photo to ``root/testA/<stem>.png`` and its true painting (full size)
    to ``root/testB/<stem>.png``. Returns the (photo, painting) paths in ``split.test`` order.

    Raises DataError when ``testA/`` or ``testB/`` already holds files."""
    folder = folder if folder is not None else hd_photos_dir(split)
    root = Path(root)
    for target in ("testA", "testB"):
        _empty_folder(root / target)
    written = []
    for name in split.test:
        photo = load_photo(name, folder)
        file_name = f"{Path(name).stem}.png"
        pair = (root / "testA" / file_name, root / "testB" / file_name)
        Image.fromarray(photo).save(pair[0])
        Image.fromarray(paint(photo)).save(pair[1])
        written.append(pair)
    return written


def crop_boxes(
    width: int, height: int, count: int, size: int, seed: int, name: str
) -> list[tuple[int, int, int, int]]:
    """``count`` random (left, top, right, bottom) squares of side ``size`` inside a width x
    height image, drawn from a generator seeded by ``seed`` and ``name`` alone.

    Raises DataError when the image is smaller than ``size``."""
    if size > min(width, height):
        raise DataError(f"{name}: a {size} px crop does not fit in {width} x {height} pixels")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    lefts = rng.integers(0, width - size + 1, count).tolist()
    tops = rng.integers(0, height - size + 1, count).tolist()
    return [(x, y, x + size, y + size) for x, y in zip(lefts, tops, strict=True)]


def _write_random_crops(
    image: np.ndarray, name: str, target: Path, count: int, size: int, seed: int
) -> list[Crop]:
    """Crops of ``image`` (H, W, 3) uint8, saved as PNG in ``target``."""
    height, width = image.shape[:2]
    crops = []
    for index, box in enumerate(crop_boxes(width, height, count, size, seed, name)):
        left, top, right, bottom = box
        path = target / f"{Path(name).stem}-{index:03d}.png"
        Image.fromarray(image[top:bottom, left:right]).save(path)
        crops.append(Crop(path, name, box))
    return crops


def _empty_folder(path: Path) -> None:
    """Create ``path``; DataError when it already holds anything."""
    if path.is_dir() and any(path.iterdir()):
        raise DataError(f"{path} already holds files: write the HD crops into an empty folder")
    path.mkdir(parents=True, exist_ok=True)


def _opencv() -> ModuleType:
    """OpenCV with its contrib modules, imported only when a photo is painted; DataError naming
    the package when it is missing."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is None or not hasattr(cv2, "xphoto"):
        raise DataError(
            "the painting filter needs OpenCV's contrib modules (cv2.xphoto): pip install "
            "'gankit[hd]' (opencv-contrib-python-headless)"
        )
    return cv2
