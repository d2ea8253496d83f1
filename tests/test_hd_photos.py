"""The HD painting experiment's data (gankit.data.hd_photos): the split by whole photo, the
painterly filter and its true paintings, and the crops written for the ``unpaired`` source.

Most tests run on small photos written here (from scikit-image's bundled ones) under the split's
file names; the tests of the installed wallpapers skip, saying why, without ``make hd-photos``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.config import DataConfig
from gankit.data import load_images
from gankit.data.domains import PHOTOS, skimage_data_dir
from gankit.data.hd_photos import (
    BRUSH_RADIUS,
    FOLDER_VARIABLE,
    SPLIT,
    PhotoSplit,
    hd_photos_dir,
    load_photo,
    paint,
    true_painting,
    write_crops,
    write_held_out,
)
from gankit.errors import DataError

SMALL = (120, 90)  # width, height of the photos written here


@pytest.fixture
def small_photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of small, all different JPEG photos under the split's names, and
    GANKIT_HD_PHOTOS pointing at it."""
    folder = tmp_path / "nature"
    folder.mkdir()
    sources = skimage_data_dir()
    for index, name in enumerate(SPLIT.names()):
        with Image.open(sources / PHOTOS[index % len(PHOTOS)]) as img:
            img = img.convert("RGB")
            offset = 40 * (index // len(PHOTOS))  # the second use of a photo: another part of it
            box = (offset, offset, offset + 2 * SMALL[0], offset + 2 * SMALL[1])
            img.crop(box).resize(SMALL, Image.Resampling.BICUBIC).save(folder / name, quality=95)
    monkeypatch.setenv(FOLDER_VARIABLE, str(folder))
    return folder


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img.convert("RGB"))


# --------------------------------------------------------------------------------------------------
# The split and the folder


def test_the_split_never_shares_a_photo_between_a_b_and_test():
    a, b, test = set(SPLIT.a), set(SPLIT.b), set(SPLIT.test)
    assert a and b and test
    assert not (a & b) and not (a & test) and not (b & test)
    assert len(SPLIT.names()) == len(a | b | test) == 12
    with pytest.raises(DataError, match="none shared"):
        PhotoSplit(a=("Dune.jpg",), b=("Storm.jpg",), test=("Dune.jpg",))


def test_missing_photos_are_one_line_saying_that_make_hd_photos_installs_them(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(FOLDER_VARIABLE, str(tmp_path))
    with pytest.raises(DataError, match="`make hd-photos` installs") as missing:
        hd_photos_dir()
    message = str(missing.value)
    assert "\n" not in message and str(tmp_path) in message and "and 9 more" in message
    with pytest.raises(DataError, match="make hd-photos"):
        write_crops(tmp_path / "crops", crops_per_photo=1, crop_size=8)


def test_the_folder_variable_names_the_photos(small_photos):
    assert hd_photos_dir() == small_photos
    photo = load_photo(SPLIT.test[0])
    assert photo.shape == (SMALL[1], SMALL[0], 3) and photo.dtype == np.uint8
    assert load_photo(SPLIT.test[0], downscale=2).shape == (SMALL[1] // 2, SMALL[0] // 2, 3)
    with pytest.raises(DataError, match="factor >= 1"):
        load_photo(SPLIT.test[0], downscale=0.5)


# --------------------------------------------------------------------------------------------------
# The filter


def test_the_filter_is_deterministic_changes_the_photo_and_is_local(small_photos):
    photo = load_photo(SPLIT.b[0])
    painted = paint(photo)
    assert painted.shape == photo.shape and painted.dtype == np.uint8
    assert np.array_equal(paint(photo.copy()), painted)
    assert np.abs(painted.astype(int) - photo).mean() > 2
    # flat, brush-like patches: far fewer distinct colours than the photo
    colours = [len(np.unique(x.reshape(-1, 3), axis=0)) for x in (photo, painted)]
    assert colours[1] < colours[0] / 2
    # away from a crop's border (the filter's radius), painting the crop = cropping the painting
    r, part = BRUSH_RADIUS, np.s_[10:70, 20:100]
    assert np.array_equal(paint(photo[part])[r:-r, r:-r], painted[part][r:-r, r:-r])


def test_paint_refuses_what_is_not_an_rgb_uint8_photo():
    with pytest.raises(DataError, match=r"\(H, W, 3\) uint8"):
        paint(np.zeros((16, 16), np.uint8))
    with pytest.raises(DataError, match=r"\(H, W, 3\) uint8"):
        paint(np.zeros((16, 16, 3), np.float32))


def test_the_true_painting_is_the_filter_of_the_whole_photo_at_full_size(small_photos):
    for name in SPLIT.test:
        truth = true_painting(name)
        assert truth.shape == (SMALL[1], SMALL[0], 3)
        assert np.array_equal(truth, paint(load_photo(name)))
    assert np.array_equal(true_painting(small_photos / SPLIT.test[0]), true_painting(SPLIT.test[0]))


# --------------------------------------------------------------------------------------------------
# Writing crops


def test_crops_are_reproducible_random_squares_of_a_photos_and_painted_b_photos(
    small_photos, tmp_path
):
    crops = write_crops(tmp_path / "one", crops_per_photo=3, crop_size=32, seed=1)
    assert len(crops) == 3 * (len(SPLIT.a) + len(SPLIT.b))
    a_crops = [c for c in crops if c.path.parent.name == "trainA"]
    b_crops = [c for c in crops if c.path.parent.name == "trainB"]
    assert {c.photo for c in a_crops} == set(SPLIT.a) and {c.photo for c in b_crops} == set(SPLIT.b)
    for crop in a_crops:
        left, top, right, bottom = crop.box
        assert right - left == bottom - top == 32
        assert np.array_equal(_pixels(crop.path), load_photo(crop.photo)[top:bottom, left:right])
    for crop in b_crops:
        left, top, right, bottom = crop.box
        truth = true_painting(crop.photo)[top:bottom, left:right]
        assert np.array_equal(_pixels(crop.path), truth)
    assert len({(c.photo, c.box) for c in crops}) == len(crops)  # random positions
    again = write_crops(tmp_path / "two", crops_per_photo=3, crop_size=32, seed=1)
    assert [(c.photo, c.box) for c in again] == [(c.photo, c.box) for c in crops]
    other = write_crops(tmp_path / "three", crops_per_photo=3, crop_size=32, seed=2)
    assert [c.box for c in other] != [c.box for c in crops]


def test_downscaled_crops_come_from_shrunk_photos_painted_after_shrinking(small_photos, tmp_path):
    crops = write_crops(tmp_path, crops_per_photo=2, crop_size=24, downscale=2)
    for crop in crops:
        left, top, right, bottom = crop.box
        assert right <= SMALL[0] // 2 and bottom <= SMALL[1] // 2
        photo = load_photo(crop.photo, downscale=2)
        expected = paint(photo) if crop.photo in SPLIT.b else photo
        assert np.array_equal(_pixels(crop.path), expected[top:bottom, left:right])
    with pytest.raises(DataError, match="does not fit"):
        write_crops(tmp_path / "big", crops_per_photo=1, crop_size=50, downscale=2)


def test_the_unpaired_source_reads_the_written_crops(small_photos, tmp_path):
    crops = write_crops(tmp_path, crops_per_photo=2, crop_size=32)
    cfg = DataConfig(source="unpaired", root=str(tmp_path), resolution=16, channels=3,
                     crop="random")  # fmt: skip
    images = load_images(cfg)
    assert not images.paired
    assert (len(images.images), len(images.images_b)) == (2 * len(SPLIT.a), 2 * len(SPLIT.b))
    first_b = min((c for c in crops if c.photo in SPLIT.b), key=lambda c: c.path.name)
    stored = torch.from_numpy(_pixels(first_b.path)).permute(2, 0, 1)
    assert torch.equal(images.images_b[0], stored)  # kept at 32 px, cropped to 16 per batch


def test_crops_are_never_written_over_other_files(small_photos, tmp_path):
    write_crops(tmp_path, crops_per_photo=1, crop_size=16)
    with pytest.raises(DataError, match="already holds files"):
        write_crops(tmp_path, crops_per_photo=1, crop_size=16)


def test_the_held_out_photos_and_their_true_paintings_are_written_at_full_size(
    small_photos, tmp_path
):
    pairs = write_held_out(tmp_path)
    assert [photo.name for photo, _ in pairs] == [Path(n).stem + ".png" for n in SPLIT.test]
    for (photo, painting), name in zip(pairs, SPLIT.test, strict=True):
        assert photo.parent.name == "testA" and painting.parent.name == "testB"
        assert np.array_equal(_pixels(photo), load_photo(name))
        assert np.array_equal(_pixels(painting), true_painting(name))


# --------------------------------------------------------------------------------------------------
# The installed photos (make hd-photos)


def _installed() -> Path:
    try:
        return hd_photos_dir()
    except DataError as exc:
        pytest.skip(str(exc))


def test_the_installed_photos_hold_the_whole_split_at_hd_size_and_no_photo_twice():
    folder = _installed()
    digests = set()
    for name in SPLIT.names():
        with Image.open(folder / name) as img:
            assert img.width >= 1280 and img.height >= 1024 and img.width > img.height, name
        digests.add(hashlib.sha256((folder / name).read_bytes()).hexdigest())
    assert len(digests) == len(SPLIT.names())


def test_the_filter_paints_an_installed_photo():
    photo = load_photo(SPLIT.test[0], _installed())[:200, :200]
    painted = paint(photo)
    assert np.array_equal(paint(photo), painted) and not np.array_equal(painted, photo)
