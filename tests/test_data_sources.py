"""Data sources: IDX/CIFAR readers, downloads, image folders and zips, mode conversions.

Every test writes its own small files under tmp_path; nothing touches the network. The one test
that reads the real MNIST files is marked slow and skipped when they are absent.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.config import DataConfig
from gankit.data import DATASETS, ImageSet, load_images
from gankit.data import download as download_module
from gankit.data import folder as folder_module
from gankit.data.cifar import unpickle_batch
from gankit.data.download import RemoteFile, fetch
from gankit.data.idx import read_idx
from gankit.data.transforms import arrays_to_stored, pil_to_array, rgb_to_luma
from gankit.errors import DataError, GankitError

REAL_MNIST = Path("/work/shared/data/mnist")
UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: connection refused at once


# --------------------------------------------------------------------------------------------------
# Helpers that write the files the readers expect


def write_idx(path: Path, values: np.ndarray, compress: bool = False) -> Path:
    """Write ``values`` (uint8 or int32) as an IDX file, independently of gankit's reader."""
    type_code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[values.dtype]
    header = struct.pack(">BBBB", 0, 0, type_code, values.ndim)
    header += struct.pack(f">{values.ndim}I", *values.shape)
    body = header + values.astype(values.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(body) if compress else body)
    return path


def write_mnist_split(folder: Path, images: np.ndarray, labels: np.ndarray, split="train") -> None:
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)


def cifar_batch_bytes(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch like the real ones: protocol 2, byte-string keys, rows of R, G, B planes."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"testing batch", b"labels": labels, b"data": rows,
             b"filenames": [b"x.png"] * len(labels)}  # fmt: skip
    return pickle.dumps(batch, protocol=2)


def cifar_meta_bytes() -> bytes:
    names = [name.encode() for name in ("a0", "b1", "c2", "d3", "e4", "f5", "g6", "h7", "i8", "j9")]
    return pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2)


def solid_images(colours: list[tuple[int, int, int]]) -> np.ndarray:
    """(N, 32, 32, 3) uint8, image i filled with colours[i]."""
    return np.array(colours, dtype=np.uint8)[:, None, None, :].repeat(32, 1).repeat(32, 2)


def image_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def save_image(path: Path, colour=(200, 10, 10), size=(12, 10), fmt="PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(Image.new("RGB", size, colour), fmt))
    return path


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    wide = np.array([[-2, 70000], [3, 2**31 - 1]], dtype=np.int32)
    read_images = read_idx(write_idx(tmp_path / "images", images, compress))
    read_wide = read_idx(write_idx(tmp_path / "wide", wide, compress))
    assert read_images.shape == (5, 7, 3) and read_images.dtype == np.uint8
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_wide, wide)  # big-endian int32 back to native


def test_truncated_idx_is_a_data_error_naming_the_file(tmp_path):
    full = write_idx(tmp_path / "full", np.zeros((10, 28, 28), np.uint8)).read_bytes()
    truncated = tmp_path / "train-images-idx3-ubyte"
    truncated.write_bytes(full[:1000])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*truncated"):
        read_idx(truncated)
    garbage = tmp_path / "garbage.gz"
    garbage.write_bytes(os.urandom(64))
    with pytest.raises(DataError, match=r"garbage\.gz"):
        read_idx(garbage)
    cut_gzip = tmp_path / "cut.gz"
    compressed = gzip.compress(full)
    cut_gzip.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError, match=r"cut\.gz"):
        read_idx(cut_gzip)


def test_idx_header_with_huge_dims_is_refused_without_allocating(tmp_path):
    path = tmp_path / "liar"
    path.write_bytes(struct.pack(">BBBBIII", 0, 0, 8, 3, 2**31, 2**31, 2**31) + b"\0" * 16)
    with pytest.raises(DataError, match="liar"):
        read_idx(path)


def test_mnist_reads_torchvision_layout_and_resizes(tmp_path):
    images = np.zeros((6, 28, 28), np.uint8)
    images[:, 14:, :] = 255  # bottom half white
    labels = np.arange(6, dtype=np.uint8)
    write_mnist_split(tmp_path / "MNIST" / "raw", images, labels)
    cfg = DataConfig(source="mnist", root=str(tmp_path), resolution=32, channels=3, download=False)
    data = load_images(cfg)
    assert data.images.shape == (6, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.labels.tolist() == [0, 1, 2, 3, 4, 5] and data.labels.dtype == torch.int64
    assert data.class_names == [str(digit) for digit in range(10)]
    assert data.images[0, :, 0].max() == 0 and data.images[0, :, -1].min() == 255


def test_mnist_default_root_comes_from_environment(tmp_path, monkeypatch):
    write_mnist_split(tmp_path / "mnist", np.ones((3, 28, 28), np.uint8), np.zeros(3, np.uint8))
    monkeypatch.setenv("GANKIT_DATA_ROOT", str(tmp_path))
    data = load_images(DataConfig(source="mnist", resolution=28, download=False))
    assert len(data) == 3


def test_fashion_mnist_has_clothing_class_names(tmp_path):
    write_mnist_split(tmp_path, np.ones((2, 28, 28), np.uint8), np.array([9, 0], np.uint8), "test")
    cfg = DataConfig(source="fashion-mnist", root=str(tmp_path), split="test", resolution=28)
    data = load_images(cfg)
    assert data.class_names[data.labels[0]] == "Ankle boot"


# --------------------------------------------------------------------------------------------------
# CIFAR-10


def test_cifar_batch_keeps_channel_order(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30)]
    (folder / "test_batch").write_bytes(cifar_batch_bytes(solid_images(colours), [3, 1, 4, 9]))
    (folder / "batches.meta").write_bytes(cifar_meta_bytes())
    cfg = DataConfig(source="cifar10", root=str(tmp_path), split="test", channels=3, resolution=32)
    data = load_images(cfg)
    assert data.images.shape == (4, 3, 32, 32)
    assert data.images[:, :, 5, 7].tolist() == [list(colour) for colour in colours]
    assert data.labels.tolist() == [3, 1, 4, 9]
    assert data.class_names[9] == "j9"


def test_cifar_archive_is_read_without_extracting(tmp_path):
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for index in range(1, 6):
            blob = cifar_batch_bytes(solid_images([(index, 0, 0)] * 2), [index] * 2)
            member = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{index}")
            member.size = len(blob)
            tar.addfile(member, io.BytesIO(blob))
    cfg = DataConfig(source="cifar10", root=str(tmp_path), channels=1, resolution=16)
    data = load_images(cfg)
    assert data.images.shape == (10, 1, 16, 16)
    assert data.labels.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert data.class_names[0] == "airplane"  # no batches.meta: the standard names
    assert sorted(path.name for path in archive.parent.iterdir()) == ["cifar-10-python.tar.gz"]


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    payload = pickle.dumps({b"data": _Exploit(marker), b"labels": []}, protocol=2)
    (folder / "test_batch").write_bytes(payload)
    with pytest.raises(DataError, match=r"refusing to unpickle .*system.*\(not a CIFAR batch\)"):
        unpickle_batch(payload, "test_batch")
    cfg = DataConfig(source="cifar10", root=str(tmp_path), split="test", download=False)
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_images(cfg)
    assert not marker.exists()


def test_cifar_missing_without_download_names_the_folder(tmp_path):
    cfg = DataConfig(source="cifar10", root=str(tmp_path), download=False)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz") as info:
        load_images(cfg)
    assert f"put them in {tmp_path / 'cifar10'}" in str(info.value)


# --------------------------------------------------------------------------------------------------
# Downloads (file:// URLs and an unreachable port; never the network)


def test_fetch_file_url_with_right_checksum(tmp_path):
    served = tmp_path / "served" / "blob.gz"
    served.parent.mkdir()
    served.write_bytes(b"hello gankit" * 100)
    dest = tmp_path / "cache" / "blob.gz"
    checksum = md5_of(served.read_bytes())
    assert fetch([UNREACHABLE + "blob.gz", served.as_uri()], dest, checksum) == dest
    assert dest.read_bytes() == served.read_bytes()
    sha256 = hashlib.sha256(served.read_bytes()).hexdigest()
    assert fetch(["file:///nonexistent/blob.gz"], dest, sha256) == dest  # present: no download


def test_fetch_wrong_checksum_leaves_nothing_behind(tmp_path):
    served = tmp_path / "blob.gz"
    served.write_bytes(b"not what was published")
    dest_dir = tmp_path / "cache"
    with pytest.raises(DataError, match=r"checksum mismatch for blob\.gz"):
        fetch([served.as_uri()], dest_dir / "blob.gz", "0" * 32)
    assert list(dest_dir.iterdir()) == []


def test_fetch_offline_says_which_file_goes_where(tmp_path):
    dest = tmp_path / "cache" / "train-images-idx3-ubyte.gz"
    with pytest.raises(DataError, match="cannot download") as info:
        fetch([UNREACHABLE + dest.name], dest, "0" * 32, timeout=5)
    assert f"put train-images-idx3-ubyte.gz in {dest.parent}" in str(info.value)
    assert "\n" not in str(info.value)
    assert list(dest.parent.iterdir()) == []


def test_mnist_offline_and_download_disabled_messages(tmp_path, monkeypatch):
    offline = tuple(RemoteFile(f.name, f.checksum, (UNREACHABLE,)) for f in
                    download_module.KNOWN_FILES["mnist"])  # fmt: skip
    monkeypatch.setitem(download_module.KNOWN_FILES, "mnist", offline)
    expected_folder = tmp_path / "mnist"
    cfg = DataConfig(source="mnist", root=str(tmp_path), split="test", download=True)
    with pytest.raises(DataError, match="download failed") as info:
        load_images(cfg)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" in message
    assert str(expected_folder) in message and "\n" not in message
    with pytest.raises(DataError, match=r"data\.download=true") as info:
        load_images(cfg.model_copy(update={"download": False}))
    assert f"put them in {expected_folder}" in str(info.value)


def test_mnist_downloads_from_a_mirror_and_verifies(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    write_mnist_split(mirror, np.full((4, 28, 28), 7, np.uint8), np.arange(4, dtype=np.uint8))
    labels_gz = mirror / "train-labels-idx1-ubyte.gz"
    labels_gz.write_bytes(gzip.compress((mirror / "train-labels-idx1-ubyte").read_bytes()))
    served = [RemoteFile(name, md5_of((mirror / name).read_bytes()), (mirror.as_uri() + "/",))
              for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")]  # fmt: skip
    monkeypatch.setitem(download_module.KNOWN_FILES, "mnist", tuple(served))
    data = load_images(DataConfig(source="mnist", root=str(tmp_path / "root"), resolution=28))
    assert len(data) == 4 and data.images.max() == 7
    assert (tmp_path / "root" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


# --------------------------------------------------------------------------------------------------
# Folder and zip of images


def test_folder_with_class_subfolders_and_labels(tmp_path):
    save_image(tmp_path / "dog" / "b.png", (0, 0, 250))
    save_image(tmp_path / "cat" / "z.JPG", (250, 0, 0), fmt="JPEG")
    save_image(tmp_path / "cat" / "nested" / "a.webp", (0, 250, 0), fmt="WEBP")
    (tmp_path / "cat" / "notes.txt").write_text("not an image, not counted")
    cfg = DataConfig(source="folder", root=str(tmp_path), resolution=8, channels=3, labels=True)
    data = load_images(cfg)
    assert data.class_names == ["cat", "dog"]
    assert data.labels.tolist() == [0, 0, 1]  # cat/nested/a.webp, cat/z.JPG, dog/b.png
    assert data.images.shape == (3, 3, 8, 8)
    assert data.images[2, 2, 4, 4] > 240 and data.images[0, 1, 4, 4] > 240
    unlabelled = load_images(cfg.model_copy(update={"labels": False}))
    assert unlabelled.labels is None and unlabelled.class_names is None


def test_folder_skips_unreadable_files_with_one_warning(tmp_path, caplog):
    save_image(tmp_path / "good1.png")
    save_image(tmp_path / "good2.bmp", fmt="BMP")
    good_png = image_bytes(Image.new("RGB", (64, 64), (1, 2, 3)))
    (tmp_path / "truncated.png").write_bytes(good_png[: len(good_png) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("definitely not a png")
    (tmp_path / "corrupt.gif").write_bytes(b"GIF89a" + os.urandom(40))
    with caplog.at_level(logging.WARNING, logger="gankit.data"):
        data = load_images(DataConfig(source="folder", root=str(tmp_path), resolution=8))
    assert len(data) == 2 and data.images.shape == (2, 1, 8, 8)
    warnings = [record for record in caplog.records if record.name == "gankit.data"]
    assert len(warnings) == 1
    assert "skipped 4 of 6" in warnings[0].getMessage()
    assert "empty.jpg (empty file)" in warnings[0].getMessage()


def test_folder_labels_need_subfolders(tmp_path):
    save_image(tmp_path / "loose.png")
    save_image(tmp_path / "cls" / "ok.png")
    cfg = DataConfig(source="folder", root=str(tmp_path), labels=True)
    with pytest.raises(DataError, match=r"loose\.png lies directly in the root"):
        load_images(cfg)


def test_empty_or_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"no usable image in .* \(0 files skipped"):
        load_images(DataConfig(source="folder", root=str(tmp_path)))
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"no usable image in .* \(1 files skipped\)"):
        load_images(DataConfig(source="folder", root=str(tmp_path)))
    with pytest.raises(DataError, match="does not exist"):
        load_images(DataConfig(source="folder", root=str(tmp_path / "nope")))
    with pytest.raises(DataError, match=r"data\.root"):
        load_images(DataConfig(source="folder"))


def test_folder_pixel_limit_skips_decompression_bombs(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(folder_module, "MAX_PIXELS", 100)
    save_image(tmp_path / "big.png", size=(20, 20))
    save_image(tmp_path / "small.png", size=(5, 5))
    with caplog.at_level(logging.WARNING, logger="gankit.data"):
        data = load_images(DataConfig(source="folder", root=str(tmp_path), resolution=4))
    assert len(data) == 1
    assert "big.png (20x20 pixels exceed" in caplog.text


def test_folder_survives_symlink_loops(tmp_path):
    save_image(tmp_path / "a" / "one.png")
    try:
        (tmp_path / "a" / "loop").symlink_to(tmp_path, target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not supported here")
    assert len(load_images(DataConfig(source="folder", root=str(tmp_path)))) == 1


def test_folder_max_images_keeps_the_first_in_sorted_order(tmp_path):
    for index in range(5):
        save_image(tmp_path / f"img{index}.png", (index * 50, 0, 0))
    cfg = DataConfig(source="folder", root=str(tmp_path), channels=3, max_images=2, resolution=4)
    data = load_images(cfg)
    assert data.images[:, 0, 0, 0].tolist() == [0, 50]


def test_zip_source_skips_path_traversal_and_reads_in_memory(tmp_path, caplog):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("faces/red/a.png", image_bytes(Image.new("RGB", (9, 9), (255, 0, 0))))
        zipped.writestr("faces/blue/b.png", image_bytes(Image.new("RGB", (9, 9), (0, 0, 255))))
        zipped.writestr("../evil.png", image_bytes(Image.new("RGB", (9, 9))))
        zipped.writestr("/abs/evil2.png", image_bytes(Image.new("RGB", (9, 9))))
    cfg = DataConfig(source="folder", root=str(archive), labels=True, channels=3, resolution=4)
    with caplog.at_level(logging.WARNING, logger="gankit.data"):
        data = load_images(cfg)
    assert data.class_names == ["blue", "red"]  # the wrapping folder "faces" is the root
    assert data.labels.tolist() == [0, 1]
    assert data.images[0, 2].min() == 255 and data.images[1, 0].min() == 255
    assert "../evil.png (unsafe path in zip)" in caplog.text
    assert not (tmp_path.parent / "evil.png").exists() and not (tmp_path / "faces").exists()


def test_not_a_zip_is_a_data_error(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK but not really")
    with pytest.raises(DataError, match=r"fake\.zip"):
        load_images(DataConfig(source="folder", root=str(fake)))


# --------------------------------------------------------------------------------------------------
# Mode conversions and resizing


def test_palette_with_transparency_composites_on_black():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((0, 0), 1)
    img.info["transparency"] = 1  # green is transparent
    array = pil_to_array(img, channels=3, size=4)
    assert array[:, 0, 0].tolist() == [0, 0, 0]
    assert array[:, 3, 3].tolist() == [255, 0, 0]


def test_sixteen_bit_is_scaled_not_clipped():
    values = np.array([[0, 257 * 100], [65535, 30000]], dtype=np.uint16)
    img = Image.fromarray(values)  # uint16 -> mode I;16
    assert img.mode == "I;16"
    array = pil_to_array(img, channels=1, size=2)
    assert array[0].tolist() == [[0, 100], [255, round(30000 / 257)]]
    as_int32 = Image.fromarray(values.astype(np.int32))  # mode I
    np.testing.assert_array_equal(pil_to_array(as_int32, 1, 2), array)


def test_cmyk_la_and_float_modes():
    cmyk = Image.new("CMYK", (2, 2), (255, 0, 0, 0))  # full cyan ink
    assert pil_to_array(cmyk, 3, 2)[:, 0, 0].tolist() == [0, 255, 255]
    la = Image.new("LA", (2, 2), (200, 128))
    assert pil_to_array(la, 1, 2)[0, 0, 0] == round(200 * 128 / 255)
    assert pil_to_array(la, 3, 2).shape == (3, 2, 2)
    float_img = Image.fromarray(np.full((2, 2), 0.5, np.float32), "F")
    assert pil_to_array(float_img, 1, 2)[0, 0, 0] in (127, 128)
    assert pil_to_array(Image.new("1", (2, 2), 1), 1, 2)[0, 0, 0] == 255


def test_tiny_and_extreme_aspect_images():
    one_pixel = pil_to_array(Image.new("RGB", (1, 1), (9, 99, 199)), 3, 16)
    assert one_pixel.shape == (3, 16, 16) and one_pixel[:, 7, 7].tolist() == [9, 99, 199]
    strip = np.zeros((300, 1), np.uint8)
    strip[140:160] = 255  # a white band in the middle of a 1 x 300 column
    fitted = pil_to_array(Image.fromarray(strip), 1, 16)
    assert fitted.shape == (1, 16, 16) and fitted.min() >= 250  # only the centre survives


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (2, 2), (0, 0, 0))
    img.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees
    reopened = Image.open(io.BytesIO(_png_with_exif(img, exif)))
    array = pil_to_array(reopened, 1, 2)
    assert array[0, 1, 1] == 255 and array[0, 0, 0] == 0


def _png_with_exif(img: Image.Image, exif: Image.Exif) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", exif=exif)
    return buffer.getvalue()


def test_vectorised_path_matches_pil_path():
    rgb = np.random.default_rng(1).integers(0, 256, (3, 8, 12, 3), dtype=np.uint8)
    for channels in (1, 3):
        fast = arrays_to_stored(rgb, channels, 8)  # shorter side already 8: crop only
        slow = np.stack([pil_to_array(Image.fromarray(image), channels, 8) for image in rgb])
        np.testing.assert_array_equal(fast.numpy(), slow)
    pil_luma = np.asarray(Image.fromarray(rgb[0]).convert("L"))
    np.testing.assert_array_equal(rgb_to_luma(rgb[0]), pil_luma)
    gray = rgb[..., 0]
    assert arrays_to_stored(gray, 3, 8).shape == (3, 3, 8, 8)
    assert arrays_to_stored(gray, 1, 5).shape == (3, 1, 5, 5)  # resized with PIL


# --------------------------------------------------------------------------------------------------
# Bundled MNIST and the registry


def test_mnist_bundled_loads_the_test_split():
    data = load_images(DataConfig(source="mnist-bundled", resolution=28))
    assert isinstance(data, ImageSet)
    assert data.images.shape == (10_000, 1, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.shape == (10_000,) and data.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert data.num_classes == 10
    rgb = load_images(DataConfig(source="mnist-bundled", resolution=32, channels=3, max_images=50))
    assert rgb.images.shape == (50, 3, 32, 32) and rgb.labels.shape == (50,)
    assert torch.equal(rgb.images[:, 0], rgb.images[:, 2])  # gray repeated


def test_unknown_source_lists_the_valid_ones():
    with pytest.raises(GankitError, match="mnist-bundled"):
        load_images(DataConfig(source="imagenet-please"))
    assert {"mnist", "fashion-mnist", "cifar10", "mnist-bundled", "folder"} <= set(DATASETS)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason="real MNIST files not present")
def test_real_mnist_train_split():
    data = load_images(DataConfig(source="mnist", root=str(REAL_MNIST), resolution=28))
    assert data.images.shape == (60_000, 1, 28, 28)
    assert torch.bincount(data.labels).tolist()[:2] == [5923, 6742]
