"""The command line as a user meets it: one-line errors with exit status 2, never a traceback."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import run_gankit

TINY = [
    "--set", "data.resolution=16", "--set", "data.channels=1", "--set", "model.latent_dim=8",
    "--set", "model.g_width=8", "--set", "model.d_width=8", "--set", "train.batch_size=4",
    "--set", "train.steps=2", "--set", "train.progress=false", "--set", "output.tensorboard=false",
]  # fmt: skip


def _assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gankit: error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


def _write_png(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_an_empty_folder_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_gankit("train", "dcgan", "--data", "folder", "--data-root", str(empty), *TINY,
                        "--out", str(tmp_path / "run"))  # fmt: skip
    _assert_one_line_error(result, "no usable image", str(empty))


def test_bad_files_among_good_ones_are_skipped_and_logged(tmp_path):
    data = tmp_path / "images"
    for index in range(6):
        _write_png(data / f"good{index}.png", index)
    good = (data / "good0.png").read_bytes()
    (data / "truncated.png").write_bytes(good[: len(good) // 2])
    (data / "zero.png").write_bytes(b"")
    (data / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10)
    (data / "notes.png").write_text("a text file with an image extension")
    (data / "readme.txt").write_text("not an image at all, not even by name")
    run = tmp_path / "run"
    result = run_gankit("train", "dcgan", "--data", "folder", "--data-root", str(data), *TINY,
                        "--out", str(run))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "skipped 4" in result.stderr, result.stderr
    assert "(6 images)" in (run / "log.txt").read_text()
    assert (run / "export" / "generator.safetensors").is_file()


def test_a_missing_dataset_says_where_to_put_it(tmp_path):
    result = run_gankit("train", "dcgan", "--data", "mnist", "--data-root", str(tmp_path), *TINY,
                        "--set", "data.download=false")  # fmt: skip
    _assert_one_line_error(result, "train-images-idx3-ubyte", str(tmp_path))


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("train.learning_rate=1", "unknown key 'train.learning_rate'; valid keys here: steps"),
        ("train.batch_size=-3", "train.batch_size: Input should be greater than or equal to 1"),
        ("train.optimizer=adagrad", "train.optimizer: Input should be 'adam', 'adamw', 'rmsprop'"),
        ("data.resolution=30", "data.resolution=30 does not fit DCGAN"),
        ("train.lr_g", "must look like key=value"),
    ],
)
def test_bad_config_keys_and_values_are_one_line_errors(tmp_path, override, fragment):
    result = run_gankit("train", "dcgan", "--data", "mnist-bundled", *TINY, "--set", override,
                        "--out", str(tmp_path / "run"))  # fmt: skip
    _assert_one_line_error(result, fragment)


def test_unknown_family_and_dataset_list_the_valid_names(tmp_path):
    from gankit.objectives import OBJECTIVES

    valid = "valid: " + ", ".join(OBJECTIVES.names())
    assert "biggan, cgan, cogan" in valid
    _assert_one_line_error(run_gankit("train", "stylegan9"), valid)
    result = run_gankit("train", "dcgan", "--data", "imagenet", *TINY, "--out", str(tmp_path / "r"))
    _assert_one_line_error(result, "unknown dataset 'imagenet'", "mnist-bundled")


def test_a_bad_config_file_is_one_line_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: [unclosed\n")
    _assert_one_line_error(run_gankit("train", "dcgan", "--config", str(path)), "not valid YAML")


def test_dry_run_prints_the_resolved_config(tmp_path):
    result = run_gankit("train", "dcgan", "--data", "mnist", "--data-root", "/data/mnist",
                        "--set", "train.lr_g=1e-4", "--dry-run")  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["family"] == "dcgan"
    assert printed["data"] == {**printed["data"], "source": "mnist", "root": "/data/mnist"}
    assert printed["train"]["lr_g"] == 1e-4
    assert printed["model"]["g_fc"] == 1024  # from configs/dcgan/mnist.yaml


def test_training_into_an_existing_run_is_refused(tmp_path):
    args = (
        "train",
        "gan",
        "--data",
        "mnist-bundled",
        "--set",
        "train.steps=1",
        "--set",
        "train.progress=false",
        "--set",
        "data.max_images=16",
        "--out",
        str(tmp_path),
    )
    assert run_gankit(*args).returncode == 0
    _assert_one_line_error(run_gankit(*args), "already holds a run", "--resume")


def test_list_shows_families_datasets_and_presets():
    result = run_gankit("list")
    assert result.returncode == 0
    for name in ("gan ", "dcgan", "mnist-bundled", "fashion-mnist", "cifar10", "folder"):
        assert name in result.stdout
    assert "presets: default, mnist, mnist-bundled" in result.stdout


def test_a_zip_of_labelled_images_trains(tmp_path):
    archive = tmp_path / "digits.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for label in ("cat", "dog"):
            for index in range(3):
                buffer = io.BytesIO()
                Image.fromarray(np.full((9, 9), index * 40, np.uint8)).save(buffer, format="PNG")
                zipped.writestr(f"{label}/{index}.png", buffer.getvalue())
    result = run_gankit("train", "gan", "--data", "folder", "--data-root", str(archive),
                        "--set", "data.labels=true", "--set", "data.resolution=8",
                        "--set", "train.steps=1", "--set", "train.progress=false",
                        "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 0, result.stderr
