"""Two-domain translation data: the ``unpaired`` and ``paired`` sources, label maps, kept-size
images with random crops, and ``gankit data download`` (offline, against archives made here)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gankit import cli as cli_module
from gankit.config import DataConfig
from gankit.data import catalog, load_images
from gankit.data.loader import InfiniteLoader
from gankit.data.translation import kept_size
from gankit.errors import ConfigError, DataError
from gankit.resolve import build_config

# --------------------------------------------------------------------------------------------------
# Helpers


def save(path: Path, pixels: np.ndarray, fmt: str = "PNG") -> Path:
    """Write (H, W) or (H, W, 3) uint8 pixels as an image file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def solid(value: int, height: int = 16, width: int = 16) -> np.ndarray:
    """(H, W, 3) uint8 of one grey ``value``: identifies an image after any resize."""
    return np.full((height, width, 3), value, dtype=np.uint8)


def ramp(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W) uint8 where every small window differs: value (3x + 7y + seed) mod 256."""
    y, x = np.mgrid[0:height, 0:width]
    return ((3 * x + 7 * y + seed) % 256).astype(np.uint8)


def write_unpaired(root: Path, counts=(3, 4), test_counts=(1, 2)) -> None:
    """CycleGAN layout; domain A images are grey 10, 20, ...; domain B 110, 120, ..."""
    for split, (count_a, count_b) in (("train", counts), ("test", test_counts)):
        for index in range(count_a):
            save(root / f"{split}A" / f"a{index}.png", solid(10 * (index + 1)))
        for index in range(count_b):
            save(root / f"{split}B" / f"b{index}.png", solid(110 + 10 * index))


def data_config(**fields) -> DataConfig:
    return DataConfig(**{"resolution": 16, "channels": 3, **fields})


def first_values(images) -> list[int]:
    return [int(image[0, 0, 0]) for image in images]


# --------------------------------------------------------------------------------------------------
# unpaired


def test_unpaired_folder_in_a_top_folder_loads_both_domains_and_logs_a_corrupt_file(
    tmp_path, caplog
):
    write_unpaired(tmp_path / "horse2zebra")
    (tmp_path / "horse2zebra" / "trainB" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with caplog.at_level(logging.WARNING, logger="gankit.data"):
        images = load_images(data_config(source="unpaired", root=str(tmp_path)))
    assert not images.paired and images.images.shape == (3, 3, 16, 16)
    assert images.images_b.shape == (4, 3, 16, 16)
    assert first_values(images.images) == [10, 20, 30]
    assert first_values(images.images_b) == [110, 120, 130, 140]
    assert "skipped 1 of 5" in caplog.text and "broken.jpg" in caplog.text
    test_split = load_images(data_config(source="unpaired", root=str(tmp_path), split="test"))
    assert (len(test_split.images), len(test_split.images_b)) == (1, 2)


def test_unpaired_zip_with_a_top_folder_reads_like_the_folder(tmp_path):
    write_unpaired(tmp_path / "horse2zebra")
    archive = tmp_path / "horse2zebra.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted((tmp_path / "horse2zebra").rglob("*.png")):
            out.write(path, path.relative_to(tmp_path).as_posix())
    from_zip = load_images(data_config(source="unpaired", root=str(archive)))
    from_folder = load_images(data_config(source="unpaired", root=str(tmp_path / "horse2zebra")))
    assert torch.equal(from_zip.images, from_folder.images)
    assert torch.equal(from_zip.images_b, from_folder.images_b)
    swapped = load_images(data_config(source="unpaired", root=str(archive), direction="BtoA"))
    assert torch.equal(swapped.images, from_folder.images_b)
    assert torch.equal(swapped.images_b, from_folder.images)


def test_an_empty_or_missing_domain_is_one_data_error(tmp_path):
    write_unpaired(tmp_path)
    for path in (tmp_path / "trainB").iterdir():
        path.write_bytes(b"")
    with pytest.raises(DataError, match=r"no usable image in .*trainB \(4 files skipped\)"):
        load_images(data_config(source="unpaired", root=str(tmp_path)))
    for path in (tmp_path / "trainB").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"has no trainB/ folder \(found: testA/, testB/, trainA/"):
        load_images(data_config(source="unpaired", root=str(tmp_path)))
    with pytest.raises(DataError, match=r"data\.root must name a folder or \.zip"):
        load_images(data_config(source="unpaired"))


# --------------------------------------------------------------------------------------------------
# paired


def test_side_by_side_images_split_into_left_a_and_right_b_and_swap(tmp_path):
    for index in range(3):  # facades layout: <set>/train/<n>.png, each W = 2H
        left, right = ramp(16, 16, seed=index), ramp(16, 16, seed=100 + index)
        save(tmp_path / "facades" / "train" / f"{index}.png", np.hstack([left, right]))
    save(tmp_path / "facades" / "train" / "portrait.png", ramp(20, 10))  # not a pair: skipped
    save(tmp_path / "facades" / "val" / "9.png", np.hstack([ramp(16, 16)] * 2))
    cfg = data_config(source="paired", root=str(tmp_path), channels=1)
    images = load_images(cfg)
    assert images.paired and images.images.shape == images.images_b.shape == (3, 1, 16, 16)
    for index in range(3):
        assert np.array_equal(images.images[index, 0].numpy(), ramp(16, 16, seed=index))
        assert np.array_equal(images.images_b[index, 0].numpy(), ramp(16, 16, seed=100 + index))
    swapped = load_images(cfg.model_copy(update={"direction": "BtoA"}))
    assert torch.equal(swapped.images, images.images_b)
    assert torch.equal(swapped.images_b, images.images)
    unpaired = load_images(cfg.model_copy(update={"paired": False}))
    assert not unpaired.paired and torch.equal(unpaired.images, images.images)
    with pytest.raises(DataError, match=r"no test/ folder"):
        load_images(cfg.model_copy(update={"split": "test"}))


def test_parallel_folders_pair_by_name_and_log_the_unmatched(tmp_path, caplog):
    for name, value in (("x", 10), ("y", 20), ("sub/z", 30)):
        save(tmp_path / "A" / f"{name}.png", solid(value))
        save(tmp_path / "B" / f"{name}.bmp", solid(value + 100))  # another extension: same name
    save(tmp_path / "A" / "lonely.png", solid(50))
    save(tmp_path / "B" / "big.png", solid(60, 20, 20))
    save(tmp_path / "A" / "big.png", solid(60, 16, 16))  # sizes differ: the pair is skipped
    with caplog.at_level(logging.WARNING, logger="gankit.data"):
        images = load_images(data_config(source="paired", root=str(tmp_path)))
    assert first_values(images.images) == [30, 10, 20]  # sorted: sub/z, x, y
    assert first_values(images.images_b) == [130, 110, 120]
    assert "A/lonely (no partner in B/)" in caplog.text
    assert "big (A is 16x16 but B is 20x20)" in caplog.text


def test_parallel_split_folders_are_chosen_by_split(tmp_path):
    for split, value in (("train", 10), ("test", 90)):
        save(tmp_path / "A" / split / "p.png", solid(value))
        save(tmp_path / "B" / split / "p.png", solid(value + 1))
    train = load_images(data_config(source="paired", root=str(tmp_path)))
    test = load_images(data_config(source="paired", root=str(tmp_path), split="test"))
    assert first_values(train.images) == [10] and first_values(test.images_b) == [91]


# --------------------------------------------------------------------------------------------------
# Label maps and channels


def palette_label_map(indices: np.ndarray) -> Image.Image:
    """A "P" image whose palette paints index k bright, so applying it would change values."""
    label_map = Image.fromarray(indices, mode="P")
    label_map.putpalette([c for k in range(256) for c in (255 - k, 200, (40 * k) % 256)])
    return label_map


def test_label_maps_keep_exact_indices_through_nearest_resize_and_the_loader(tmp_path, caplog):
    rng = np.random.default_rng(0)
    classes = np.array([0, 3, 7, 12], dtype=np.uint8)
    for index in range(4):
        blocks = rng.choice(classes, size=(5, 5))
        indices = np.kron(blocks, np.ones((8, 8), dtype=np.uint8))  # 40 x 40, 8 x 8 blocks
        (tmp_path / "A").mkdir(exist_ok=True)
        palette_label_map(indices).save(tmp_path / "A" / f"{index}.png")
        save(tmp_path / "B" / f"{index}.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    save(tmp_path / "A" / "lossy.jpg", solid(3, 40, 40)[..., 0], fmt="JPEG")
    save(tmp_path / "B" / "lossy.png", solid(3, 40, 40))
    save(tmp_path / "A" / "colour.png", solid(3, 40, 40))
    save(tmp_path / "B" / "colour.png", solid(3, 40, 40))
    cfg = data_config(source="paired", root=str(tmp_path), a_kind="labels", resize=28,
                      crop="random", flip=True)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="gankit.data"):
        images = load_images(cfg)
    assert "lossy (a JPEG cannot hold exact class indices" in caplog.text
    assert "colour (a RGB image is not a label map" in caplog.text
    assert images.images.shape == (4, 1, 28, 28) and images.images_b.shape == (4, 3, 28, 28)
    assert set(images.images.unique().tolist()) == set(classes.tolist())  # bicubic would blend
    first = np.asarray(Image.open(tmp_path / "A" / "0.png"))  # the indices, as written
    nearest = np.asarray(Image.fromarray(first).resize((28, 28), Image.Resampling.NEAREST))
    assert np.array_equal(images.images[0, 0].numpy(), nearest)
    batch = next(InfiniteLoader(images, cfg, 16, seed=0))
    recovered = (batch["a"] + 1).mul(127.5).round().long()  # how a translator reads them back
    assert batch["a"].shape == (16, 1, 16, 16)
    assert set(recovered.unique().tolist()) <= set(classes.tolist())


def test_label_maps_with_kept_sizes_stay_indices_when_scaled_up(tmp_path):
    indices = np.kron(np.array([[1, 2], [5, 9]], dtype=np.uint8), np.ones((5, 6), np.uint8))
    (tmp_path / "A").mkdir()
    palette_label_map(indices).save(tmp_path / "A" / "m.png")  # 12 x 10
    save(tmp_path / "B" / "m.png", solid(9, 10, 12))
    cfg = data_config(source="paired", root=str(tmp_path), a_kind="labels", crop="random")
    images = load_images(cfg)
    assert isinstance(images.images, list)
    assert images.images[0].shape == (1, 16, 19)  # 12 x 10 scaled so the shorter side is 16
    assert images.images_b[0].shape == (3, 16, 19)
    assert set(images.images[0].unique().tolist()) == {1, 2, 5, 9}


def test_domains_may_have_different_channels(tmp_path):
    write_unpaired(tmp_path)
    images = load_images(data_config(source="unpaired", root=str(tmp_path), channels_a=1))
    assert images.images.shape[1] == 1 and images.images_b.shape[1] == 3
    batch = next(InfiniteLoader(images, data_config(), 2, seed=0))
    assert batch["a"].shape == (2, 1, 16, 16) and batch["b"].shape == (2, 3, 16, 16)


# --------------------------------------------------------------------------------------------------
# Kept sizes and random crops


def test_kept_size_rules():
    assert kept_size(4000, 3000, 256, None) == (4000, 3000)  # HD originals as they are
    assert kept_size(4000, 3000, 256, 1024) == (1024, 768)
    assert kept_size(10, 14, 16, None) == (16, 22)  # shorter side scaled up to the crop
    assert kept_size(60, 20, 16, 30) == (48, 16)  # conflict: the crop wins, then the middle 30


def test_kept_sizes_give_aligned_random_crops_and_resume_exactly(tmp_path):
    shapes = [(24, 40), (50, 30), (16, 16), (14, 10), (20, 60)]  # (H, W); one under 16
    for index, (height, width) in enumerate(shapes):
        pixels = ramp(height, width, seed=index)
        save(tmp_path / "A" / f"{index}.png", pixels)
        save(tmp_path / "B" / f"{index}.png", pixels)  # B == A: aligned crops are equal
    cfg = data_config(source="paired", root=str(tmp_path), channels=1, crop="random",
                      flip=True, max_side=30)  # fmt: skip
    images = load_images(cfg)
    kept = [tuple(image.shape[1:]) for image in images.images]
    assert kept == [(18, 30), (30, 18), (16, 16), (22, 16), (16, 30)]
    loader = InfiniteLoader(images, cfg, 5, seed=3)
    windows = set()
    for _ in range(8):
        batch = next(loader)
        assert batch["a"].shape == batch["b"].shape == (5, 1, 16, 16)
        assert torch.equal(batch["a"], batch["b"])
        windows.update(tuple(crop.flatten()[:3].tolist()) for crop in batch["a"])
    assert len(windows) > 10  # the crops move (each image has several possible windows)
    _assert_each_crop_is_a_window(images, cfg, seed=5)
    state = loader.state_dict()
    ahead = [next(loader) for _ in range(3)]
    loader.load_state_dict(state)
    again = [next(loader) for _ in range(3)]
    for x, y in zip(ahead, again, strict=True):
        assert torch.equal(x["a"], y["a"]) and torch.equal(x["b"], y["b"])
    resumed = InfiniteLoader(images, cfg, 5, seed=3)
    resumed.load_state_dict(state)
    assert torch.equal(next(resumed)["a"], ahead[0]["a"])


def _assert_each_crop_is_a_window(images, cfg, seed):
    """Without flips every crop is a 16 x 16 window of its own stored image."""
    plain = cfg.model_copy(update={"flip": False})
    loader = InfiniteLoader(images, plain, len(images), seed=seed)
    indices = loader.order._epoch_order(0).tolist()
    batch = next(loader)["a"]
    for crop, index in zip(batch, indices, strict=True):
        stored = images.images[index][0]
        values = crop[0].add(1).mul(127.5).round().to(torch.uint8)
        height, width = stored.shape
        assert any(torch.equal(stored[y : y + 16, x : x + 16], values)
                   for y in range(height - 15) for x in range(width - 15))  # fmt: skip


def test_unpaired_kept_sizes_crop_each_domain(tmp_path):
    save(tmp_path / "trainA" / "a.png", ramp(20, 33))
    save(tmp_path / "trainB" / "b.png", ramp(40, 17))
    cfg = data_config(source="unpaired", root=str(tmp_path), channels=1, crop="random")
    images = load_images(cfg)
    assert [tuple(i.shape) for i in images.images + images.images_b] == [(1, 20, 33), (1, 40, 17)]
    batch = next(InfiniteLoader(images, cfg, 4, seed=0))
    assert batch["a"].shape == batch["b"].shape == (4, 1, 16, 16)
    with pytest.raises(DataError, match="smaller than the 32 x 32 crops"):
        InfiniteLoader(images, cfg.model_copy(update={"resolution": 32}), 4, seed=0)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("data.direction=sideways", "data.direction: Input should be 'AtoB' or 'BtoA'"),
        ("data.a_kind=mask", "data.a_kind: Input should be 'image' or 'labels'"),
        ("data.max_side=8", "data.max_side (8) must be >= data.resolution (16)"),
        ("data.channels_a=2", "data.channels_a: Input should be 1 or 3"),
    ],
)
def test_bad_translation_data_values_are_one_line_errors(override, fragment):
    with pytest.raises(ConfigError) as error:
        build_config({"family": "dcgan", "data": {"resolution": 16}}, [override])
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_three_channel_label_maps_are_refused():
    with pytest.raises(ConfigError, match=r"data\.channels_a=3 with data\.a_kind=labels"):
        build_config({"family": "dcgan", "data": {"a_kind": "labels", "channels_a": 3}})


# --------------------------------------------------------------------------------------------------
# gankit data download (offline: archives made here, served from file:// URLs)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_cyclegan_zip(path: Path, name: str = "horse2zebra") -> bytes:
    with zipfile.ZipFile(path, "w") as out:
        for folder, count in (("trainA", 2), ("trainB", 3), ("testA", 1), ("testB", 1)):
            for index in range(count):
                out.writestr(f"{name}/{folder}/{index}.png", png_bytes(solid(10 * index + 5)))
    return path.read_bytes()


def add_tar_member(archive: tarfile.TarFile, name: str, data: bytes = b"", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    archive.addfile(info, io.BytesIO(data))


@pytest.fixture
def offline_catalog(monkeypatch):
    """Catalog entries without their official mirrors (tests never touch the network), and a
    CLI that leaves the logging of the test process alone."""
    for name, entry in catalog.CATALOG.items():
        monkeypatch.setitem(catalog.CATALOG, name, dataclasses.replace(entry, mirrors=()))
    monkeypatch.setattr(cli_module, "_setup_logging", lambda verbose: None)


def gankit(*args: str):
    return CliRunner().invoke(cli_module.cli, list(args), catch_exceptions=False)


def test_data_download_extracts_records_the_checksum_and_prints_the_command(
    tmp_path, offline_catalog
):
    served, root = tmp_path / "served", tmp_path / "data"
    served.mkdir()
    content = make_cyclegan_zip(served / "horse2zebra.zip")
    mirror = served.as_uri() + "/"
    result = gankit("data", "download", "horse2zebra", "--root", str(root), "--mirror", mirror)
    assert result.exit_code == 0, result.output
    folder = root / "horse2zebra"
    assert sorted(p.name for p in folder.iterdir()) == ["testA", "testB", "trainA", "trainB"]
    sha256 = hashlib.sha256(content).hexdigest()
    recorded = json.loads((root / "checksums.json").read_text())["horse2zebra"]
    assert recorded["sha256"] == sha256 and recorded["source"] == mirror + "horse2zebra.zip"
    assert "trusted on first use" in result.output
    command = f"gankit train cyclegan --data unpaired --data-root {folder}"
    assert command in result.output and "--set data.channels=3" in result.output
    images = load_images(data_config(source="unpaired", root=str(folder)))
    assert (len(images.images), len(images.images_b)) == (2, 3)

    again = gankit("data", "download", "horse2zebra", "--root", str(root))
    assert again.exit_code == 0 and "is there already" in again.output
    # A second download is verified against the recorded checksum: the same file passes ...
    (root / "horse2zebra.zip").unlink()
    (root / "horse2zebra").rename(tmp_path / "first")
    same = gankit("data", "download", "horse2zebra", "--root", str(root), "--mirror", mirror)
    assert same.exit_code == 0 and "verified against" in same.output
    # ... and a changed one is refused, leaving neither archive nor folder behind.
    (root / "horse2zebra.zip").unlink()
    (root / "horse2zebra").rename(tmp_path / "second")
    make_cyclegan_zip(served / "horse2zebra.zip", name="other")
    changed = gankit("data", "download", "horse2zebra", "--root", str(root), "--mirror", mirror)
    assert changed.exit_code == 2
    assert "checksum mismatch" in changed.output and "checksums.json" in changed.output
    assert len(changed.output.strip().splitlines()) == 1
    assert not (root / "horse2zebra").exists() and not (root / "horse2zebra.zip").exists()


def test_data_download_of_a_pix2pix_tar_gz_loads_as_pairs(tmp_path, offline_catalog):
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "facades.tar.gz", "w:gz") as out:
        add_tar_member(out, "facades", type=tarfile.DIRTYPE)
        for index in range(3):
            pair = np.hstack([solid(index * 10), solid(200 + index)])
            add_tar_member(out, f"facades/train/{index}.png", png_bytes(pair))
    root = tmp_path / "data"
    result = gankit("data", "download", "facades", "--root", str(root),
                    "--mirror", served.as_uri())  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--data paired" in result.output and "--set data.direction=BtoA" in result.output
    images = load_images(data_config(source="paired", root=str(root / "facades"),
                                     direction="BtoA"))  # fmt: skip
    assert first_values(images.images) == [200, 201, 202]  # right halves: B as the files say
    assert first_values(images.images_b) == [0, 10, 20]


def test_unknown_dataset_and_offline_download_are_one_line_errors(tmp_path, offline_catalog):
    unknown = gankit("data", "download", "horse2cat", "--root", str(tmp_path))
    assert unknown.exit_code == 2 and "valid: horse2zebra, apple2orange" in unknown.output
    offline = gankit("data", "download", "horse2zebra", "--root", str(tmp_path),
                     "--mirror", (tmp_path / "nowhere").as_uri())  # fmt: skip
    assert offline.exit_code == 2 and len(offline.output.strip().splitlines()) == 1
    assert "cannot download horse2zebra.zip" in offline.output and "by hand" in offline.output
    listed = gankit("data", "list")
    assert "edges2shoes" in listed.output and "trust" not in listed.output.split("\n")[0]


def test_extraction_refuses_path_traversal_in_a_zip(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("set/trainA/0.png", png_bytes(solid(1)))
        out.writestr("set/../../escaped.png", png_bytes(solid(2)))
    with pytest.raises(DataError, match=r"refused, member 'set/../../escaped.png' has an unsafe"):
        catalog.extract_archive(archive, tmp_path / "out" / "set")
    assert not list(tmp_path.rglob("escaped.png"))
    assert list((tmp_path / "out").iterdir()) == []  # no folder, no staging left


@pytest.mark.parametrize(
    ("member", "fields"),
    [
        ("set/trainA/link.png", {"type": tarfile.SYMTYPE, "linkname": "../../../etc/passwd"}),
        ("set/trainA/link.png", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
        ("set/trainA/hard.png", {"type": tarfile.LNKTYPE, "linkname": "../outside.png"}),
        ("/tmp/absolute.png", {}),
    ],
)
def test_extraction_refuses_escaping_links_and_absolute_paths_in_a_tar(tmp_path, member, fields):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as out:
        add_tar_member(out, "set/trainA/0.png", png_bytes(solid(1)))
        add_tar_member(out, member, b"" if fields else png_bytes(solid(2)), **fields)
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match=r"evil.tar.gz: refused, member"):
        catalog.extract_archive(archive, tmp_path / "out" / "set")
    assert list((tmp_path / "out").iterdir()) == []


def test_extraction_skips_inner_links_and_refuses_oversized_archives(tmp_path, monkeypatch):
    archive = tmp_path / "ok.tar.gz"
    with tarfile.open(archive, "w:gz") as out:
        add_tar_member(out, "set/trainA/0.png", png_bytes(solid(1)))
        add_tar_member(out, "set/trainA/same.png", type=tarfile.SYMTYPE, linkname="0.png")
    catalog.extract_archive(archive, tmp_path / "set")
    assert [p.name for p in (tmp_path / "set" / "trainA").iterdir()] == ["0.png"]  # no link made
    monkeypatch.setattr(catalog, "MAX_EXTRACTED_BYTES", 10)
    with pytest.raises(DataError, match="size limits"):
        catalog.extract_archive(archive, tmp_path / "again")
    assert not (tmp_path / "again").exists()
