from __future__ import annotations

import pytest
import yaml

from gankit.config import load_yaml, parse_override
from gankit.errors import ConfigError
from gankit.resolve import build_config, validate_config
from tests.conftest import tiny_config


def test_config_round_trips_through_yaml(tmp_path):
    cfg = tiny_config("dcgan", "train.lr_g=1e-4", "model.g_dropout=0.1")
    path = tmp_path / "config.yaml"
    path.write_text(cfg.to_yaml())
    again = validate_config(load_yaml(path))
    assert again == cfg
    assert again.train.lr_g == pytest.approx(1e-4)
    assert again.model.g_dropout == pytest.approx(0.1)
    assert type(again.model).__name__ == "DCGANConfig"


def test_family_settings_are_typed_per_family():
    gan = tiny_config("gan")
    assert "g_width" not in gan.to_dict()["model"]
    with pytest.raises(
        ConfigError, match=r"unknown key 'model.g_width'.*valid keys here: latent_dim"
    ):
        tiny_config("gan", "model.g_width=4")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr_gg=1e-4", r"unknown key 'train.lr_gg'; valid keys here: steps, batch_size"),
        ("nonsense.key=1", r"unknown key 'nonsense'"),
        ("train.precision=fp8", r"train.precision: Input should be 'auto', 'fp32', 'bf16' or"),
        ("train.batch_size=0", r"train.batch_size: Input should be greater than or equal to 1"),
        ("train.steps=abc", r"train.steps: .*integer.*\(got 'abc'\)"),
        ("train.lr_decay_start=1.5", r"train.lr_decay_start: Input should be less than or equal"),
        ("data.channels=2", r"data.channels: Input should be 1 or 3"),
        (
            "model.generator_loss=wasserstein",
            r"model.generator_loss: Input should be 'non-saturating'",
        ),
        ("data.resize=8", r"data.resize \(8\) must be >= data.resolution \(16\)"),
    ],
)
def test_bad_keys_and_values_fail_with_one_line_naming_them(override, message):
    with pytest.raises(ConfigError, match=message) as info:
        tiny_config("dcgan", override)
    assert "\n" not in str(info.value)


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown family .stylegan9.; valid: biggan, cgan, "):
        build_config({"family": "stylegan9"})


def test_overrides_parse_yaml_scalars():
    assert parse_override("train.lr_g=1e-4") == (["train", "lr_g"], 1e-4)
    assert parse_override("train.betas=[0.0, 0.9]") == (["train", "betas"], [0.0, 0.9])
    assert parse_override("train.ema=true") == (["train", "ema"], True)
    assert parse_override("data.root=/a/b") == (["data", "root"], "/a/b")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.lr_g")


def test_yaml_is_parsed_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("family: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(path)
    assert not (tmp_path / "pwned").exists()


def test_presets_are_valid():
    from gankit.config import PRESETS_DIR

    for preset in PRESETS_DIR.glob("*/*.yaml"):
        cfg = build_config(yaml.safe_load(preset.read_text()), family=preset.parent.name)
        assert cfg.family == preset.parent.name
