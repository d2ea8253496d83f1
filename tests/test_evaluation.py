"""Evaluation plumbing: references, their cache, image files, protocol records, `gankit eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gankit.errors import GankitError
from gankit.metrics import Reference, evaluate
from gankit.metrics import evaluator as evaluate_module
from gankit.metrics.images import load_image_file, to_nchw_uint8
from gankit.metrics.reference import cache_key
from tests.conftest import SHARED_MNIST, run_gankit


class CountingFeatures:
    """A stand-in feature network: mean intensity per channel and its square, counting images."""

    name, hash, dims, resize = "counting", "0" * 64, 2, "none"

    def __init__(self) -> None:
        self.seen = 0

    def features(self, images: torch.Tensor) -> torch.Tensor:
        self.seen += len(images)
        mean = images.float().mean(dim=(1, 2, 3))
        return torch.stack([mean, mean**2 / 255], dim=1)


@pytest.fixture
def counting(monkeypatch, tmp_path):
    network = CountingFeatures()
    monkeypatch.setattr(evaluate_module, "feature_network", lambda *args, **kwargs: network)
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    return network


def test_reference_specs_parse(tmp_path):
    assert Reference.parse("mnist:train", n=5, resolution=28, channels=1).split == "train"
    assert Reference.parse("cifar10", n=5, resolution=32, channels=3).split == "test"
    folder = Reference.parse(str(tmp_path), n=5, resolution=8, channels=3)
    assert (folder.dataset, folder.root) == ("folder", str(tmp_path))
    with pytest.raises(GankitError, match="split must be train or test"):
        Reference.parse("mnist:validation", n=5, resolution=28, channels=1)


def test_the_cache_key_changes_with_everything_that_changes_the_features():
    base = Reference("mnist", "test", 100, 28, 1)
    network = CountingFeatures()
    keys = {cache_key(base, network, "features")}
    for changed in (
        Reference("mnist", "train", 100, 28, 1), Reference("mnist", "test", 200, 28, 1),
        Reference("mnist", "test", 100, 32, 1), Reference("mnist", "test", 100, 28, 3),
        Reference("mnist", "test", 100, 28, 1, seed=1), Reference("cifar10", "test", 100, 28, 1),
    ):  # fmt: skip
        keys.add(cache_key(changed, network, "features"))
    other = CountingFeatures()
    other.hash = "1" * 64
    keys.add(cache_key(base, other, "features"))
    other.resize = "bilinear"
    keys.add(cache_key(base, other, "features"))
    assert len(keys) == 9
    moved = Reference("mnist", "test", 100, 28, 1, root="/elsewhere")
    assert cache_key(moved, network, "features") == cache_key(base, network, "features")


def test_a_second_evaluation_reuses_the_cached_reference(counting):
    images = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    reference = Reference("mnist-bundled", "test", 30, 28, 1)
    first = evaluate(images, reference, ["digit-fd"], progress=False)
    assert counting.seen == 40 + 30
    second = evaluate(images, reference, ["digit-fd"], progress=False)
    assert counting.seen == 40 + 30 + 40  # the reference was not run again
    assert first[0].value == second[0].value
    record = first[0].record(step=7)
    assert record["step"] == 7 and record["metric"] == "digit-fd"
    assert record["reference"] == {"dataset": "mnist-bundled", "split": "test", "n": 30,
                                   "resolution": 28, "channels": 1, "seed": None}  # fmt: skip
    assert {"n_generated", "extractor", "extractor_hash", "resize", "gankit_version"} <= set(record)


def test_image_arrays_in_any_common_layout(tmp_path):
    gray = np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5)
    assert to_nchw_uint8(gray, "x").shape == (2, 1, 5, 5)
    assert to_nchw_uint8(np.zeros((2, 5, 5, 3), np.uint8), "x").shape == (2, 3, 5, 5)
    assert to_nchw_uint8(np.zeros((2, 3, 5, 5), np.uint8), "x").shape == (2, 3, 5, 5)
    floats = to_nchw_uint8(np.array([[[-1.0, 0.0, 1.0]]]), "x")
    assert floats.flatten().tolist() == [0, 128, 255]
    with pytest.raises(GankitError, match="expected images shaped"):
        to_nchw_uint8(np.zeros((2, 4, 5, 5), np.uint8), "x")
    with pytest.raises(GankitError, match=r"must lie in \[0, 1\] or \[-1, 1\]"):
        to_nchw_uint8(np.full((1, 2, 2), 7.0), "x")
    np.savez(tmp_path / "a.npz", images=gray)
    assert torch.equal(load_image_file(tmp_path / "a.npz")[:, 0], torch.from_numpy(gray))
    assert load_image_file(tmp_path / "a.npz", channels=3).shape == (2, 3, 5, 5)


def test_unknown_metrics_are_refused_with_the_valid_names():
    result = run_gankit("eval", "--images", "x.npy", "--ref", "mnist:test", "--metrics", "fdi")
    assert result.returncode == 2
    assert "unknown metric 'fdi'; valid: digit-fd, fid, is, kid, pr" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="needs ../shared/data/mnist")
def test_fid_of_mnist_train_vs_test_is_small_and_noise_is_large(tmp_path):
    """The acceptance numbers of the metrics issue (Inception on 2 x 2,000 images: minutes)."""
    from gankit.data.idx import read_idx

    train = read_idx(SHARED_MNIST / "train-images-idx3-ubyte.gz")[:2000]
    np.save(tmp_path / "train2k.npy", train)
    noise = np.random.default_rng(0).integers(0, 256, train.shape, dtype=np.uint8)
    np.save(tmp_path / "noise2k.npy", noise)
    values = {}
    for name in ("train2k", "noise2k"):
        result = run_gankit(
            "eval", "--images", str(tmp_path / f"{name}.npy"), "--ref", "mnist:test",
            "--data-root", str(SHARED_MNIST), "--metrics", "fid,kid", "--n", "2000", "--json",
            timeout=3600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        records = [json.loads(line) for line in result.stdout.splitlines()]
        values[name] = {r["metric"]: r["value"] for r in records}
    print(values)
    assert values["train2k"]["fid"] < 15 and values["noise2k"]["fid"] > 200
    assert values["train2k"]["kid"] < 0.01 < values["noise2k"]["kid"]


def test_eval_command_on_a_run_prints_json_records_and_reuses_the_reference(tmp_path, monkeypatch):
    from gankit.training import Trainer
    from tests.conftest import tiny_config

    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "run"
    Trainer(tiny_config("dcgan", "train.steps=2", "data.resolution=28"), run).fit()
    args = ("eval", str(run), "--metrics", "digit-fd", "--n", "64", "--json")
    first, second = run_gankit(*args), run_gankit(*args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert [(r["metric"], r["step"], r["n_generated"]) for r in records] == [("digit-fd", 2, 64)]
    assert records[0]["reference"]["dataset"] == "mnist-bundled"
    assert json.loads(second.stdout)["value"] == records[0]["value"]
    assert "read from cache" not in first.stderr and "read from cache" in second.stderr
    logged = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert len(logged) == 2 and logged[0]["value"] == records[0]["value"]


def test_eval_of_images_against_a_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "real"
    folder.mkdir()
    for index in range(12):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(
            folder / f"{index}.png"
        )
    np.save(tmp_path / "fake.npy", rng.integers(0, 256, (12, 28, 28), dtype=np.uint8))
    result = run_gankit("eval", "--images", str(tmp_path / "fake.npy"), "--ref", str(folder),
                        "--metrics", "digit-fd", "--n", "12")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("digit-fd = ") and "vs folder:train n=12" in result.stdout


def test_inception_score_without_its_weights_is_reported_unavailable(
    counting, monkeypatch, tmp_path
):
    from gankit.metrics.inception_is import ISUnavailable

    def no_is_weights(name, *args, **kwargs):
        if name == "inception-logits":
            raise ISUnavailable(
                "IS weights not found: download pt_inception-2015-12-05-6726825d.pth"
            )
        return counting

    monkeypatch.setattr(evaluate_module, "feature_network", no_is_weights)
    images = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    results = evaluate(images, Reference("mnist-bundled", "test", 20, 28, 1), ["is", "digit-fd"],
                       progress=False)  # fmt: skip
    assert [(r.metric, r.value is None) for r in results] == [("is", True), ("digit-fd", False)]
    assert "download pt_inception" in evaluate_module.format_result(results[0])


def test_pr_without_a_vgg16_file_records_inception_pool3_as_not_comparable(counting, monkeypatch):
    monkeypatch.delenv("GANKIT_VGG16_WEIGHTS", raising=False)
    images = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    results = evaluate(images, Reference("mnist-bundled", "test", 20, 28, 1), ["pr", "fid"],
                       progress=False)  # fmt: skip
    features = {r.metric: r.protocol.get("features") for r in results}
    note = "inception-pool3 (not comparable with published numbers, which use VGG-16 fc2)"
    assert features == {"precision": note, "recall": note, "fid": None}
    assert counting.seen == 20 + 20  # one pass of each set, shared by pr and fid


def test_periodic_evaluation_takes_a_seeded_random_reference_not_the_first_n_images():
    from gankit.data import ImageSet, load_images
    from gankit.training.evaluation import REFERENCE_SEED, PeriodicEvaluation
    from tests.conftest import tiny_config

    cfg = tiny_config("dcgan", "eval.metrics=[digit-fd]", "eval.n=20", "data.max_images=100")
    classes = torch.arange(10).repeat_interleave(10)  # a folder sorted by class: 10 of each
    pixels = (classes * 25).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 16, 16)
    images = ImageSet(pixels.contiguous(), classes, None, "class-sorted")
    first, again = (PeriodicEvaluation(cfg, images, torch.device("cpu")) for _ in range(2))
    taken = first.reference_images[:, 0, 0, 0].long() // 25
    assert len(taken) == 20 and len(taken.unique()) >= 7  # the first 20 would be classes 0 and 1
    assert torch.equal(first.reference_images, again.reference_images)  # same seed, same subset
    recorded = first.reference.describe()
    assert (recorded["seed"], recorded["pool"], recorded["n"]) == (REFERENCE_SEED, 100, 20)
    unseeded = Reference(**{**recorded, "seed": None, "pool": None})
    assert cache_key(first.reference, CountingFeatures(), "features") != cache_key(
        unseeded, CountingFeatures(), "features"
    )
    # On real data the images in memory are the very rows the reference would load itself.
    training = load_images(cfg.data)
    periodic = PeriodicEvaluation(cfg, training, torch.device("cpu"))
    assert torch.equal(periodic.reference_images, periodic.reference.load_images())
    assert not torch.equal(periodic.reference_images, training.images[:20])
