"""Crash safety: a run killed with SIGKILL at random points, one of them in the middle of a
checkpoint write, resumed each time, ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import torch

from gankit.runfolder.checkpoint import load_checkpoint
from tests.conftest import run_gankit
from tests.test_trainer import TINY_ARGS

STEPS, EVERY = 40, 5

# Runs the CLI, then blocks where GANKIT_TEST_HANG says, printing HANGING first, so the test can
# SIGKILL the process at a known point: "step:K" (just before training step K) or "write:K"
# (half-way through writing the checkpoint of step K: part of the temp file is on disk).
HANGING_CLI = textwrap.dedent(
    """
    import os, sys, time
    import torch
    from gankit.runfolder import checkpoint
    from gankit.training import trainer
    kind, _, at = os.environ["GANKIT_TEST_HANG"].partition(":")
    at = int(at)
    def hang():
        print("HANGING", flush=True)
        time.sleep(600)
    if kind == "step":
        train_step = trainer.Trainer.train_step
        def hanging_step(self):
            if self.step == at:
                hang()
            train_step(self)
        trainer.Trainer.train_step = hanging_step
    else:
        save = torch.save
        def hanging_save(state, file):
            if state["step"] == at:
                file.write(b"half a checkpoint")
                file.flush()
                hang()
            save(state, file)
        checkpoint.torch.save = hanging_save
    from gankit.cli import main
    sys.argv = ["gankit", *sys.argv[1:]]
    main()
    """
)


def _run_until_killed(args: list[str], hang: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", HANGING_CLI, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "GANKIT_TEST_HANG": hang},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while process.stdout.readline().strip() != "HANGING":
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()


def _weights(run_dir) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert state["step"] == STEPS
    flat = {f"{net}.{k}": v for net, sd in state["networks"].items() for k, v in sd.items()}
    return flat | {f"ema.{k}": v for k, v in state["ema"].items()}


def test_five_sigkills_at_random_points_and_resumes_give_the_uninterrupted_weights(tmp_path):
    args = ["train", "dcgan", "--data", "mnist-bundled", *TINY_ARGS, "--set",
            f"train.steps={STEPS}", "--set", f"train.checkpoint_every={EVERY}"]  # fmt: skip
    straight = run_gankit(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    # Kill points: one mid-write of a checkpoint, four before random steps (after the first
    # checkpoint, so there is one to resume), in increasing order, from a fixed seed.
    rng = random.Random(2026)
    write_at = rng.choice(range(2 * EVERY, STEPS, EVERY))
    steps = rng.sample([k for k in range(EVERY + 1, STEPS) if k != write_at], 4)
    hangs = sorted([f"step:{k}" for k in steps] + [f"write:{write_at}"],
                   key=lambda h: int(h.split(":")[1]))  # fmt: skip
    killed = tmp_path / "killed"
    resume = ["train", "--resume", str(killed)]
    for number, hang in enumerate(hangs):
        _run_until_killed([*args, "--out", str(killed)] if number == 0 else resume, hang)
        saved = load_checkpoint(killed / "checkpoints" / "latest.pt")["step"]
        at = int(hang.split(":")[1])
        expected = at - EVERY if hang.startswith("write") else (at // EVERY) * EVERY
        assert saved == expected, f"after the kill at {hang}: latest.pt holds step {saved}"
    final = run_gankit(*resume)
    assert final.returncode == 0, final.stderr
    assert not list((killed / "checkpoints").glob("*.tmp")), "a partial write was left behind"

    expected, actual = _weights(tmp_path / "straight"), _weights(killed)
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, f"{len(different)} tensors differ after {hangs}, e.g. {different[:3]}"
