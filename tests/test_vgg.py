"""VGG-16 fc2 features for precision/recall: a user-supplied TorchScript file (here a tiny
stand-in written by the test, not a real VGG), its preprocessing, and what the protocol records."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from gankit.errors import MetricError
from gankit.fileio import file_sha256
from gankit.metrics import Reference, evaluate
from gankit.metrics import evaluator as evaluate_module
from gankit.metrics.vgg import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VGG16_WEIGHTS_ENV,
    VGG16Features,
    preprocess_vgg,
)


class TinyFC2(nn.Module):
    """(N, 3, 224, 224) -> (N, outputs): per-channel means and their spread through a fixed linear
    map; refuses any other input size, so the test sees what gankit feeds it."""

    def __init__(self, outputs: int = 4096) -> None:
        super().__init__()
        self.linear = nn.Linear(6, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (3, 224, 224)
        stats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
        return self.linear(stats)


def _write(tmp_path, outputs: int = 4096) -> str:
    torch.manual_seed(0)
    path = tmp_path / f"vgg16-fc2-{outputs}.pt"
    with warnings.catch_warnings():  # torch 2.9+ deprecates TorchScript, the format asked for
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(TinyFC2(outputs)).save(str(path))
    return str(path)


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    monkeypatch.delenv(VGG16_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    evaluate_module.feature_network.cache_clear()
    yield
    evaluate_module.feature_network.cache_clear()


def test_preprocessing_is_224_rgb_with_imagenet_normalisation():
    gray = torch.full((2, 1, 28, 28), 51, dtype=torch.uint8)  # 51 / 255 = 0.2
    out = preprocess_vgg(gray)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32
    for channel, (mean, std) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)):
        torch.testing.assert_close(out[:, channel], torch.full((2, 224, 224), (0.2 - mean) / std))


def test_pr_in_a_supplied_vgg16_file_records_the_extractor_its_hash_and_vgg16_fc2(tmp_path):
    path = _write(tmp_path)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 1, 16, 16), generator=generator, dtype=torch.uint8)
    real = torch.randint(0, 256, (10, 1, 16, 16), generator=generator, dtype=torch.uint8)
    reference = Reference("mnist-bundled", "test", 10, 16, 1)
    results = evaluate(images, reference, ["pr"], progress=False, reference_images=real,
                       pr_features=path)  # fmt: skip
    assert [r.metric for r in results] == ["precision", "recall"]
    for result in results:
        assert result.protocol["features"] == "vgg16-fc2"
        assert result.protocol["extractor"] == "vgg16-fc2"
        assert result.protocol["extractor_hash"] == file_sha256(path)[:16]
        assert 0.0 <= result.value <= 1.0
    features = VGG16Features(path).features(images)
    assert features.shape == (12, 4096)


def test_the_environment_variable_names_the_file_for_every_evaluation(tmp_path, monkeypatch):
    monkeypatch.setenv(VGG16_WEIGHTS_ENV, _write(tmp_path))
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    results = evaluate(images, Reference("mnist-bundled", "test", 8, 16, 3), ["pr"],
                       progress=False, reference_images=images.flip(0))  # fmt: skip
    assert {r.protocol["features"] for r in results} == {"vgg16-fc2"}


def test_a_file_without_4096_fc2_features_or_no_file_is_a_one_line_error(tmp_path, monkeypatch):
    images = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8)
    with pytest.raises(MetricError, match=r"expected \(N, 4096\) fc2 features") as error:
        VGG16Features(_write(tmp_path, outputs=1000)).features(images)  # e.g. class logits
    assert "\n" not in str(error.value)
    monkeypatch.setenv(VGG16_WEIGHTS_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(MetricError, match=f"not found .*{VGG16_WEIGHTS_ENV}"):
        evaluate(images, Reference("mnist-bundled", "test", 2, 16, 1), ["pr"], progress=False)
