"""Hostile and odd inputs, made by the test itself, fed to ``gankit train``: every file is either
converted correctly or skipped with a logged reason, a source with nothing usable is one error
line, and nothing prints a traceback, hangs or needs more than 2 GB of memory."""

from __future__ import annotations

import io
import os
import resource
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_gankit

PEAK_MEMORY_LIMIT = 2 * 2**30
TRAIN = ["--set", "train.steps=2", "--set", "train.batch_size=4", "--set", "data.resolution=16",
         "--set", "model.g_width=4", "--set", "model.d_width=4", "--set", "model.latent_dim=4",
         "--set", "train.progress=false", "--set", "output.tensorboard=false"]  # fmt: skip


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims width x height 8-bit gray pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + pixels + _png_chunk(b"IEND", b"")


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _digit(size: int = 20) -> np.ndarray:
    array = np.zeros((size, size), np.uint8)
    array[size // 4 : -size // 4, size // 3 : -size // 3] = 255
    return array


def hostile_corpus(folder: Path) -> tuple[dict[str, str], list[str]]:
    """Write the corpus into ``folder``; returns ({bad file: why it must be skipped}, [good])."""
    folder.mkdir(parents=True)
    gray = Image.fromarray(_digit())
    rgb = Image.fromarray(np.stack([_digit(), _digit()[::-1], _digit().T], axis=-1))
    good: dict[str, bytes] = {
        "plain.png": _encode(gray, "PNG"),
        "gray16.png": _encode(Image.fromarray(_digit().astype(np.uint16) * 257), "PNG"),
        "palette_transparent.png": _encode(rgb.convert("P"), "PNG", transparency=0),
        "cmyk.jpg": _encode(rgb.convert("CMYK"), "JPEG"),
        "gray_alpha.png": _encode(gray.convert("LA"), "PNG"),
        "rgba.png": _encode(rgb.convert("RGBA"), "PNG"),
        "one_pixel.png": _encode(Image.new("L", (1, 1), 200), "PNG"),
        "wide_1x3000.png": _encode(Image.new("L", (3000, 1), 128), "PNG"),
        "tall_3000x1.png": _encode(Image.new("L", (1, 3000), 128), "PNG"),
        "bilevel.png": _encode(gray.convert("1"), "PNG"),
        "animated.gif": _encode(gray, "GIF", save_all=True, append_images=[gray.rotate(90)]),
        "picture.webp": _encode(rgb, "WEBP"),
        "picture.bmp": _encode(rgb, "BMP"),
        "float.tif": _encode(Image.fromarray(_digit().astype(np.float32) / 255), "TIFF"),
        "png_named.jpg": _encode(gray, "PNG"),  # the content decides, not the name
        "UPPER.PNG": _encode(gray, "PNG"),
        "damaged_trailer.png": _encode(gray, "PNG")[:-4] + b"\x00\x00\x00\x00",  # pixels intact
    }
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees when shown
    good["exif_rotated.jpg"] = _encode(rgb, "JPEG", exif=exif)
    real_png = good["plain.png"]
    bad: dict[str, bytes] = {
        "corrupt.png": bytes(range(256)) * 4,
        "truncated.png": real_png[: len(real_png) // 2],
        "zero_bytes.png": b"",
        "text_named.jpg": b"just some notes, not a picture\n" * 10,
        "html_named.png": b"<html><body>not an image</body></html>",
        "bomb_100k_x_100k.png": bomb_png(),
        "postscript_named.png": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
    }
    for name, data in {**good, **bad}.items():
        (folder / name).write_bytes(data)
    # a non-UTF-8 file name holding a good image
    odd_name = os.fsencode(folder) + b"/caf\xe9-latin1.png"
    with open(odd_name, "wb") as handle:
        handle.write(real_png)
    good["caf\udce9-latin1.png"] = real_png
    (folder / ".hidden.png").write_bytes(real_png)  # hidden: ignored, not counted
    (folder / "loop").symlink_to(folder, target_is_directory=True)  # a symlink loop
    (folder / "dangling.png").symlink_to(folder / "does-not-exist.png")
    bad["dangling.png"] = b""
    unreadable = folder / "unreadable.png"
    unreadable.write_bytes(real_png)
    unreadable.chmod(0)
    if os.access(unreadable, os.R_OK):  # root reads it anyway: then it is a good image
        good["unreadable.png"] = real_png
    else:
        bad["unreadable.png"] = b""
    reasons = {name: "" for name in bad}
    return reasons, list(good)


def _train(data_root: Path, out: Path, *extra: str):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = run_gankit("-v", "train", "dcgan", "--data", "folder", "--data-root",
                        str(data_root), "--out", str(out), *TRAIN, *extra, timeout=300)  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: KiB
    assert "Traceback" not in result.stderr, result.stderr
    assert peak < PEAK_MEMORY_LIMIT or before * 1024 >= PEAK_MEMORY_LIMIT, f"peak {peak} bytes"
    return result


def test_a_folder_of_hostile_files_trains_on_the_good_ones_and_logs_each_skip(tmp_path):
    bad, good = hostile_corpus(tmp_path / "corpus")
    assert len(bad) + len(good) >= 25
    result = _train(tmp_path / "corpus", tmp_path / "run", "--set", "data.channels=3")
    assert result.returncode == 0, result.stderr
    assert f"({len(good)} images)" in result.stderr, result.stderr
    for name in bad:
        assert f"skipped {name} in" in result.stderr, f"no logged reason for {name}"
    assert (tmp_path / "run" / "export" / "config.json").is_file()


def test_images_are_converted_correctly(tmp_path):
    from gankit.data import load_images
    from gankit.resolve import build_config

    _, good = hostile_corpus(tmp_path / "corpus")
    cfg = build_config({"family": "dcgan", "data": {"source": "folder", "channels": 1,
                        "root": str(tmp_path / "corpus"), "resolution": 20}})  # fmt: skip
    images = load_images(cfg.data)
    assert len(images) == len(good)
    names = sorted(good)  # the source reads files in sorted path order
    by_name = dict(zip(names, images.images, strict=True))
    expected = _digit()
    assert np.array_equal(by_name["gray16.png"][0].numpy(), expected)  # 16 bit -> 8 bit
    assert np.array_equal(by_name["plain.png"][0].numpy(), expected)
    # EXIF orientation 6 is applied: the stored image is the transposed-and-flipped original
    rotated = by_name["exif_rotated.jpg"][0].numpy().astype(int)
    upright = by_name["picture.bmp"][0].numpy().astype(int)
    assert np.abs(rotated - np.rot90(upright, -1)).mean() < 12  # JPEG noise only
    assert by_name["gray_alpha.png"].shape == (1, 20, 20)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty", "no usable image"),
        ("only_bad", "no usable image"),
        ("missing", "does not exist"),
    ],
)
def test_sources_with_nothing_usable_are_one_error_line(case, message, tmp_path):
    root = tmp_path / "data"
    if case != "missing":
        root.mkdir()
    if case == "only_bad":
        (root / "a.png").write_bytes(b"")
        (root / "b.png").write_bytes(bomb_png())
    result = _train(root, tmp_path / "run")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("gankit: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_a_zip_with_path_traversal_and_a_zip_bomb_member_is_read_safely(tmp_path):
    archive = tmp_path / "data.zip"
    png = _encode(Image.fromarray(_digit()), "PNG")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for index in range(4):
            zf.writestr(f"images/{index}.png", png)
        zf.writestr("../../escape.png", png)
        zf.writestr("/absolute.png", png)
        zf.writestr("images/huge.png", b"\x00" * (300 << 20))  # 300 MiB of zeros, 0.3 MiB zipped
    result = _train(archive, tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "(4 images)" in result.stderr
    assert not (tmp_path.parent / "escape.png").exists()
    assert "huge.png" in result.stderr and "escape.png" in result.stderr


def test_an_empty_translation_split_is_one_error_line(tmp_path):
    root = tmp_path / "horse2zebra"
    (root / "trainA").mkdir(parents=True)
    (root / "trainB").mkdir()
    (root / "trainA" / "0.png").write_bytes(_encode(Image.fromarray(_digit()), "PNG"))
    result = run_gankit("train", "cyclegan", "--data", "unpaired", "--data-root", str(root),
                        "--out", str(tmp_path / "run"), *TRAIN[:2])  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("gankit: error:")]
    assert "trainB" in error, error


def test_gankit_translate_takes_the_same_corpus(tmp_path):
    from gankit.training import Trainer
    from tests.conftest import tiny_config

    run = tmp_path / "translator"
    Trainer(tiny_config("cyclegan", "train.steps=1"), run).fit()
    bad, good = hostile_corpus(tmp_path / "corpus")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = run_gankit("translate", str(run), str(tmp_path / "corpus"), "--out",
                        str(tmp_path / "out"), timeout=300)  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert peak < PEAK_MEMORY_LIMIT or before * 1024 >= PEAK_MEMORY_LIMIT, f"peak {peak} bytes"
    written = {p.stem for p in (tmp_path / "out").iterdir()}
    for name in bad:
        if name.endswith((".png", ".jpg")) and name != "dangling.png":
            assert f"skipped {tmp_path / 'corpus' / name}:" in result.stderr, name
    assert written == {Path(name).stem for name in good}
    assert Image.open(tmp_path / "out" / "wide_1x3000.png").size == (3000, 1)
