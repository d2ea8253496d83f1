"""The fast paths: which precision and memory format each device gets, and that training on
them keeps fp32 weights and losses, saves, resumes and exports like fp32 training."""

from __future__ import annotations

import pytest
import torch

import gankit
from gankit.training import Trainer, fastpath
from gankit.training.fastpath import (
    cpu_has_native_bf16,
    resolve_channels_last,
    resolve_precision,
)
from tests.conftest import tiny_config

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    with_amx = tmp_path / "amx"
    with_amx.write_text("processor : 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n")
    plain = tmp_path / "plain"
    plain.write_text("processor : 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert cpu_has_native_bf16(str(with_amx)) and not cpu_has_native_bf16(str(plain))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_a_cpu_follows_its_bf16_units(monkeypatch, native, expected):
    monkeypatch.setattr(fastpath, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CPU) == expected
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_precision_on_cuda_is_bf16_where_supported_else_fp16(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert resolve_precision("auto", CUDA) == expected


def test_channels_last_auto_is_on_for_cuda_and_cpu_bf16_only():
    assert resolve_channels_last("auto", CUDA, "fp16")
    assert resolve_channels_last("auto", CPU, "bf16")
    assert not resolve_channels_last("auto", CPU, "fp32")
    assert resolve_channels_last(True, CPU, "fp32") and not resolve_channels_last(
        False, CUDA, "bf16"
    )


def test_bf16_channels_last_training_keeps_fp32_weights_and_resumes_exactly(tmp_path):
    """bf16 autocast + channels_last on a CPU (forced on, whatever this CPU has): weights stay
    fp32, the losses are fp32, the networks are NHWC, and save -> resume -> export work."""
    overrides = ("train.precision=bf16", "train.channels_last=true", "train.steps=4",
                 "train.checkpoint_every=2")  # fmt: skip
    cfg = tiny_config("dcgan", *overrides)
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.precision == "bf16" and trainer.channels_last
    generator = trainer.objective.networks["generator"]
    conv = next(p for p in generator.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    batch = next(trainer.loader)
    with trainer._autocast():
        loss, _ = trainer.objective.loss("discriminator", batch)
    assert loss.dtype == torch.float32
    trainer.fit()
    assert all(p.dtype == torch.float32 for p in trainer.objective.parameters())

    straight = Trainer(cfg, tmp_path / "straight")
    straight.fit()
    Trainer(tiny_config("dcgan", *overrides, "train.steps=2"), tmp_path / "resumed").fit()
    resumed = Trainer(cfg, tmp_path / "resumed", resume=True)
    resumed.fit()
    for name, tensor in straight.objective.state_dict().items():
        assert torch.equal(tensor, resumed.objective.state_dict()[name]), name
    images = gankit.load(tmp_path / "resumed").sample(4, seed=0)
    assert images.shape == (4, 1, 16, 16) and images.dtype == torch.float32


def test_fp32_by_name_turns_the_fast_path_off(tmp_path):
    trainer = Trainer(tiny_config("dcgan", "train.precision=fp32", "train.channels_last=false"),
                      tmp_path)  # fmt: skip
    assert trainer.precision == "fp32" and not trainer.channels_last
    conv = next(p for p in trainer.objective.parameters() if p.dim() == 4)
    assert conv.is_contiguous()


def test_fused_optimizer_is_a_preference_where_torch_has_a_kernel():
    assert fastpath.use_fused_optimizer(True, "adam", CPU)
    assert fastpath.use_fused_optimizer(True, "sgd", CUDA)
    assert not fastpath.use_fused_optimizer(True, "rmsprop", CPU)  # no fused RMSprop
    assert not fastpath.use_fused_optimizer(True, "adam", torch.device("mps"))
    assert not fastpath.use_fused_optimizer(False, "adam", CPU)


def test_fused_adam_is_the_default_and_a_resume_keeps_this_runs_choice(tmp_path):
    """Optimiser steps run fused unless train.fused_optimizer=false; resuming a checkpoint
    written the other way keeps the resuming run's implementation (load_state_dict would bring
    back the saved flags)."""
    fused = Trainer(tiny_config("dcgan", "train.steps=2"), tmp_path / "fused")
    assert all(g["fused"] for o in fused.optimizers.values() for g in o.param_groups)
    unfused_cfg = tiny_config("dcgan", "train.steps=2", "train.fused_optimizer=false")
    Trainer(unfused_cfg, tmp_path / "run").fit()
    resumed = Trainer(tiny_config("dcgan", "train.steps=4"), tmp_path / "run", resume=True)
    assert all(g["fused"] for o in resumed.optimizers.values() for g in o.param_groups)
    before = [p.detach().clone() for p in resumed.objective.parameters()]
    resumed.fit()  # the fused kernels take the foreach run's Adam moments
    after = list(resumed.objective.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


@pytest.mark.slow
def test_compiled_networks_train_and_keep_their_state_dict_keys(tmp_path):
    plain = Trainer(tiny_config("dcgan", "train.steps=2"), tmp_path / "plain")
    compiled = Trainer(tiny_config("dcgan", "train.steps=2", "train.compile=true"),
                       tmp_path / "compiled")  # fmt: skip
    assert plain.objective.state_dict().keys() == compiled.objective.state_dict().keys()
    compiled.fit()
    assert gankit.load(tmp_path / "compiled").sample(2, seed=0).shape[0] == 2
