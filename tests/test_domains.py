"""Two-domain data: the digits-edges source, paired and unpaired batches, exact resume, and
families refusing data of the wrong kind."""

from __future__ import annotations

import pytest
import torch

from gankit.data import load_images
from gankit.data.loader import InfiniteLoader
from gankit.data.transforms import edge_map
from gankit.errors import ConfigError
from gankit.resolve import build_config
from gankit.training import Trainer
from tests.conftest import tiny_config


def _data(**data):
    cfg = build_config({"family": "dcgan", "data": {"source": "digits-edges", "resolution": 16,
                                                    "max_images": 64, **data}})  # fmt: skip
    return cfg.data, load_images(cfg.data)


def test_paired_batches_are_digits_and_their_own_edges():
    cfg, images = _data(flip=True, resize=20, crop="random")
    assert images.paired and images.images.shape == images.images_b.shape == (64, 1, 20, 20)
    batch = next(InfiniteLoader(images, cfg, 8, seed=0))
    assert set(batch) == {"a", "b"} and batch["a"].shape == (8, 1, 16, 16)
    # crop and flip were the same for A and B: B is (up to the crop border) the edges of A
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    assert torch.allclose(edge_map(batch["a"])[inner], batch["b"][inner], atol=1 / 127)


def test_unpaired_domains_share_no_digit_and_resume_exactly():
    cfg, images = _data(paired=False)
    assert not images.paired and len(images.images) == len(images.images_b) == 32
    edges_of_a = ((edge_map(images.images.float() / 127.5 - 1) + 1) * 127.5).round()
    assert not any(torch.equal(e, b.float()) for e in edges_of_a for b in images.images_b)
    loader = InfiniteLoader(images, cfg, 12, seed=0)
    next(loader)
    state = loader.state_dict()
    first = [next(loader) for _ in range(4)]  # crosses epochs of both domains
    loader.load_state_dict(state)
    again = [next(loader) for _ in range(4)]
    for x, y in zip(first, again, strict=True):
        assert torch.equal(x["a"], y["a"]) and torch.equal(x["b"], y["b"])


def test_a_noise_to_image_family_refuses_two_domain_data(tmp_path):
    cfg = tiny_config("dcgan", data={"source": "digits-edges"})
    with pytest.raises(ConfigError, match="two-domain translation set"):
        Trainer(cfg, tmp_path)


def test_photos_and_textures_load_at_their_own_sizes_from_scikit_image():
    pytest.importorskip("skimage", reason="scikit-image (dev/demo dependency) is not installed")
    cfg = build_config({"family": "siamese", "data": {"source": "photos-textures",
                        "resolution": 64, "channels": 3, "crop": "random"}})  # fmt: skip
    images = load_images(cfg.data)
    assert len(images.images) == 6 and len(images.images_b) == 3
    assert (images.channels, images.channels_b) == (3, 3)
    assert {tuple(i.shape[1:]) for i in images.images} >= {(300, 451), (512, 512)}
    texture = images.images_b[0]
    assert torch.equal(texture[0], texture[1]) and torch.equal(texture[0], texture[2])  # grey
    batch = next(InfiniteLoader(images, cfg.data, 4, seed=0))
    assert batch["a"].shape == batch["b"].shape == (4, 3, 64, 64)


def test_photos_textures_without_scikit_image_is_one_line(monkeypatch):
    import gankit.data.domains as domains
    from gankit.errors import DataError

    monkeypatch.setattr(domains.importlib.util, "find_spec", lambda name: None)
    cfg = build_config({"family": "siamese", "data": {"source": "photos-textures"}})
    with pytest.raises(DataError, match=r"pip install 'gankit\[demo\]'"):
        load_images(cfg.data)
