"""The non-finite guard: NaN/Inf steps are skipped and counted; a persisting NaN rolls back to the
latest checkpoint with halved learning rates, or stops with one line, as configured."""

from __future__ import annotations

import json

import pytest
import torch

from gankit.training import Trainer
from gankit.training.guard import TrainingDiverged
from tests.conftest import run_gankit, tiny_config


def _poison(
    trainer: Trainer, bad_steps: set[int], phase: str = "generator", times: int = 1_000
) -> None:
    """Make ``phase``'s loss NaN at the given training steps (keeping it in the graph), at most
    ``times`` times (a rollback replays the same steps)."""
    original = trainer.objective.loss
    left = [times]

    def loss(name, batch):
        value, stats = original(name, batch)
        if name == phase and trainer.step in bad_steps and left[0] > 0:
            left[0] -= 1
            value = value * float("nan")
        return value, stats

    trainer.objective.loss = loss  # type: ignore[method-assign]


def _finite_weights(trainer: Trainer) -> bool:
    return all(torch.isfinite(v).all() for v in trainer.objective.state_dict().values()
               if v.is_floating_point())  # fmt: skip


def test_a_nan_step_is_skipped_counted_and_not_applied(tmp_path):
    trainer = Trainer(tiny_config("dcgan", "train.steps=12", "train.log_every=4"), tmp_path)
    _poison(trainer, {5, 6})
    generator = trainer.objective.networks["generator"]
    snapshots = {}
    original_step = trainer.train_step

    def step():
        snapshots[trainer.step] = [p.detach().clone() for p in generator.parameters()]
        original_step()

    trainer.train_step = step  # type: ignore[method-assign]
    trainer.fit()
    assert _finite_weights(trainer)
    assert trainer.guard.skipped == 2 and trainer.guard.rollbacks == 0
    # the generator's weights did not move during the poisoned steps 5 and 6
    for before, after in zip(snapshots[5], snapshots[7], strict=True):
        assert torch.equal(before, after)
    records = [json.loads(line) for line in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert records[-1]["skipped_steps"] == 2
    assert "skipped so far" in (tmp_path / "log.txt").read_text()


def test_a_persisting_nan_rolls_back_with_halved_learning_rates(tmp_path):
    cfg = tiny_config("dcgan", "train.steps=16", "train.checkpoint_every=4",
                      "train.nonfinite_patience=3")  # fmt: skip
    trainer = Trainer(cfg, tmp_path)
    _poison(trainer, set(range(9, 12)), times=3)  # steps 9, 10, 11 in a row -> back to step 8
    result = trainer.fit()
    assert result.step == 16 and _finite_weights(trainer)
    assert trainer.guard.rollbacks == 1 and trainer.guard.lr_scale == 0.5
    for phase in trainer.phases:
        assert trainer.optimizers[phase.name].param_groups[0]["lr"] == phase.lr * 0.5
    assert "rolled back to the checkpoint of step 8" in (tmp_path / "log.txt").read_text()
    lines = (tmp_path / "losses.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == sorted(set(steps))  # the rolled-back steps' records were replaced


def test_policy_stop_ends_the_run_with_one_line(tmp_path):
    cfg = tiny_config("dcgan", "train.steps=10", "train.nonfinite=stop",
                      "train.nonfinite_patience=2")  # fmt: skip
    trainer = Trainer(cfg, tmp_path)
    _poison(trainer, set(range(3, 10)), phase="discriminator")
    with pytest.raises(TrainingDiverged, match="NaN/Inf in 2 steps in a row") as error:
        trainer.fit()
    assert "\n" not in str(error.value) and "train.nonfinite=stop" in str(error.value)


def test_nan_at_the_cli_exits_2_with_one_line(tmp_path):
    # a learning rate so large the networks blow up: the CLI reports it in one line
    result = run_gankit(
        "train", "gan", "--out", str(tmp_path / "run"), "--set", "train.steps=60",
        "--set", "train.lr_g=1e30", "--set", "train.lr_d=1e30", "--set", "train.progress=false",
        "--set", "data.max_images=64", "--set", "model.g_hidden=[8]", "--set", "model.d_hidden=[8]",
        "--set", "train.nonfinite=stop", "--set", "train.nonfinite_patience=2",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("gankit: error:")]
    assert "NaN/Inf" in line and "Traceback" not in result.stderr


def test_keep_checkpoints_keeps_the_newest_n(tmp_path):
    cfg = tiny_config("dcgan", "train.steps=10", "train.checkpoint_every=2",
                      "train.keep_checkpoints=3")  # fmt: skip
    Trainer(cfg, tmp_path).fit()
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.glob("*.pt")) == [
        "latest.pt", "step-000006.pt", "step-000008.pt"]  # fmt: skip
    from gankit.runfolder.checkpoint import load_checkpoint

    assert load_checkpoint(folder / "step-000006.pt")["step"] == 6
    assert load_checkpoint(folder / "latest.pt")["step"] == 10


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    from gankit.errors import CheckpointError
    from gankit.runfolder import checkpoint as ckpt

    trainer = Trainer(tiny_config("dcgan", "train.steps=6", "train.checkpoint_every=2"), tmp_path)
    real_save = torch.save

    def disk_full(state, file):
        if state["step"] == 4:
            file.write(b"partial")
            raise OSError(28, "No space left on device")
        real_save(state, file)

    monkeypatch.setattr(ckpt.torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device") as error:
        trainer.fit()
    assert "previous checkpoint (step 2) is intact" in str(error.value)
    assert ckpt.load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["step"] == 2
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_out_of_memory_is_one_line_suggesting_a_smaller_batch(tmp_path, monkeypatch):
    from gankit.errors import GankitError

    trainer = Trainer(tiny_config("dcgan", "train.steps=4", "train.precision=fp32"), tmp_path)

    def too_big():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer, "train_step", too_big)
    with pytest.raises(GankitError, match="out of memory") as error:
        trainer.fit()
    message = str(error.value)
    assert "train.batch_size=4" in message and "\n" not in message
    assert "train.precision=bf16" in message
