from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from gankit.errors import CheckpointError
from gankit.objectives import linear_decay
from gankit.resolve import load_run_config
from gankit.runfolder.checkpoint import load_checkpoint, save_checkpoint
from gankit.training import Trainer
from tests.conftest import run_gankit, tiny_config

TINY_ARGS = [
    "--set",
    "data.resolution=16",
    "--set",
    "data.max_images=256",
    "--set",
    "model.latent_dim=8",
    "--set",
    "model.g_width=8",
    "--set",
    "model.d_width=8",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.device=cpu",
    "--set",
    "train.progress=false",
    "--set",
    "train.log_every=5",
    "--set",
    "train.ema=true",
    "--set",
    "output.tensorboard=false",
]


def test_a_run_writes_the_run_folder_of_the_design(tmp_path):
    cfg = tiny_config(
        "dcgan",
        "train.steps=6",
        "train.sample_every=3",
        "train.checkpoint_every=3",
        "train.ema=true",
        "output.tensorboard=true",
    )
    result = Trainer(cfg, tmp_path / "run").fit()
    run = tmp_path / "run"
    assert result.step == 6 and not result.interrupted
    assert load_run_config(run) == cfg
    assert (run / "checkpoints" / "latest.pt").is_file()
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-000003.png",
        "step-000006.png",
    ]
    assert sorted(p.name for p in (run / "export").iterdir()) == [
        "config.json",
        "generator.safetensors",
    ]
    assert any((run / "events").iterdir())
    assert (run / "loss_curves.png").stat().st_size > 1000
    assert "training dcgan" in (run / "log.txt").read_text()
    records = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
    assert {"loss_d", "loss_g", "d_real", "d_fake", "images_per_s"} <= set(records[-1])


def _final_weights(run_dir) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert state["step"] == 60
    flat = {f"{net}.{k}": v for net, sd in state["networks"].items() for k, v in sd.items()}
    flat |= {f"ema.{k}": v for k, v in state["ema"].items()}
    return flat


# Runs the CLI, but blocks forever once the step-30 checkpoint is on disk, so the test can SIGKILL
# the process at a known point (after a checkpoint, before the run ends).
HANG_AFTER_CHECKPOINT = textwrap.dedent(
    """
    import sys, time
    from gankit.runfolder import checkpoint
    save = checkpoint.save_checkpoint
    def save_then_hang(state, path):
        save(state, path)
        if state["step"] == 30:
            print("CHECKPOINT-30", flush=True)
            time.sleep(600)
    checkpoint.save_checkpoint = save_then_hang
    from gankit.cli import main
    sys.argv = ["gankit", *sys.argv[1:]]
    main()
    """
)


def test_resume_after_sigkill_continues_bit_for_bit(tmp_path):
    args = [
        "train",
        "dcgan",
        "--data",
        "mnist-bundled",
        *TINY_ARGS,
        "--set",
        "train.steps=60",
        "--set",
        "train.checkpoint_every=30",
    ]
    straight = run_gankit(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-c", HANG_AFTER_CHECKPOINT, *args, "--out", str(killed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 240
        while process.stdout.readline().strip() != "CHECKPOINT-30":
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert load_checkpoint(killed / "checkpoints" / "latest.pt")["step"] == 30

    resumed = run_gankit("train", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    expected, actual = _final_weights(tmp_path / "straight"), _final_weights(killed)
    assert expected.keys() == actual.keys()
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    steps = [
        json.loads(line)["step"] for line in (killed / "losses.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(5, 61, 5))


def test_resume_refuses_a_changed_architecture(tmp_path):
    Trainer(tiny_config("dcgan", "train.steps=2"), tmp_path).fit()
    changed = tiny_config("dcgan", "train.steps=4", "model.g_width=16", "model.latent_dim=9")
    with pytest.raises(
        CheckpointError,
        match=r"changed architecture: model.g_width: 8 -> 16; "
        r"model.latent_dim: 8 -> 9",
    ):
        Trainer(changed, tmp_path, resume=True)
    result = run_gankit("train", "--resume", str(tmp_path), "--set", "data.resolution=32")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"gankit: error: cannot resume {tmp_path} with a changed architecture: "
        "data.resolution: 16 -> 32"
    ]


def test_resume_extends_a_finished_run(tmp_path):
    Trainer(tiny_config("gan", "train.steps=2"), tmp_path).fit()
    result = Trainer(load_run_config(tmp_path, ["train.steps=4"]), tmp_path, resume=True).fit()
    assert result.step == 4


def test_resume_reads_a_checkpoint_from_before_per_rank_states(tmp_path):
    Trainer(tiny_config("gan", "train.steps=2"), tmp_path).fit()
    latest = tmp_path / "checkpoints" / "latest.pt"
    state = load_checkpoint(latest)
    assert state["world_size"] == 1 and state["ranks"] is None  # one process: nothing per rank
    for key in ("world_size", "ranks", "format", "gankit_version"):
        del state[key]
    save_checkpoint(state, latest)  # as gankit wrote it before distributed training
    result = Trainer(load_run_config(tmp_path, ["train.steps=4"]), tmp_path, resume=True).fit()
    assert result.step == 4


def test_sigterm_saves_a_checkpoint_and_stops(tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gankit",
            "train",
            "dcgan",
            "--data",
            "mnist-bundled",
            *TINY_ARGS,
            "--set",
            "train.steps=100000",
            "--set",
            "train.log_every=1",
            "--out",
            str(run),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (run / "losses.jsonl").is_file() or len((run / "losses.jsonl").read_text()) < 200:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "SIGTERM received" in err and "stopped early" in out
    step = load_checkpoint(run / "checkpoints" / "latest.pt")["step"]
    assert 2 <= step < 100000


def test_logged_statistics_are_means_over_the_steps_of_their_own_phase(tmp_path):
    trainer = Trainer(tiny_config("gan", "train.steps=4", "train.log_every=2"), tmp_path)
    real_loss = trainer.objective.loss
    calls = {"discriminator": 0, "generator": 0}

    def counting_loss(phase, batch):
        loss, _ = real_loss(phase, batch)
        calls[phase] += 1
        return loss, {f"count_{phase}": torch.tensor(float(calls[phase]))}

    trainer.objective.loss = counting_loss
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert [(r["count_discriminator"], r["count_generator"]) for r in records] == [
        (1.5, 1.5),
        (3.5, 3.5),
    ]


def test_periodic_evaluation_logs_metrics_keeps_the_best_and_leaves_training_alone(tmp_path):
    plain = Trainer(tiny_config("dcgan", "train.steps=6"), tmp_path / "plain")
    plain.fit()
    evaluated = Trainer(
        tiny_config("dcgan", "train.steps=6", "eval.metrics=[digit-fd]", "eval.every=2",
                    "eval.n=24"),
        tmp_path / "evaluated",
    )  # fmt: skip
    result = evaluated.fit()
    for name, network in plain.objective.networks.items():
        other = evaluated.objective.networks[name].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in network.state_dict().items()), name
    records = [json.loads(line) for line in (tmp_path / "evaluated" / "metrics.jsonl").open()]
    assert [(r["step"], r["metric"], r["n_generated"]) for r in records] == [
        (2, "digit-fd", 24), (4, "digit-fd", 24), (6, "digit-fd", 24),
    ]  # fmt: skip
    assert records[0]["reference"]["n"] == 24 and records[0]["extractor"].startswith("mnist-")
    assert [m.metric for m in result.metrics] == ["digit-fd"]
    best = load_checkpoint(tmp_path / "evaluated" / "checkpoints" / "best.pt")
    assert best["best"]["value"] == min(r["value"] for r in records)
    assert best["step"] == best["best"]["step"]


def test_train_lr_decay_start_decays_every_learning_rate_linearly_to_zero(tmp_path):
    trainer = Trainer(tiny_config("dcgan", "train.lr_decay_start=0.25"), tmp_path)  # 4 steps
    trainer.objective.lr_factor = lambda step: 0.5  # type: ignore[method-assign]
    seen = []
    for _ in range(4):
        trainer.train_step()
        groups = [trainer.optimizers[p.name].param_groups[0] for p in trainer.phases]
        seen.append([group["lr"] / p.lr for group, p in zip(groups, trainer.phases, strict=True)])
    # constant before step round(0.25 * 4) = 1, then (4 - step) / 3; times the family's factor
    assert seen == [[pytest.approx(0.5 * f)] * len(trainer.phases) for f in (1, 1, 2 / 3, 1 / 3)]
    assert linear_decay(4, 4, 1.0) == 1.0 and linear_decay(4, 4, 0.5) == 0.0  # past the end


def test_the_objective_lr_factor_scales_every_phase_learning_rate(tmp_path):
    trainer = Trainer(tiny_config("dcgan"), tmp_path)
    trainer.objective.lr_factor = lambda step: 1.0 / (step + 2)  # type: ignore[method-assign]
    trainer.train_step()
    trainer.train_step()  # step 1: factor 1/3
    for phase in trainer.phases:
        [group] = trainer.optimizers[phase.name].param_groups
        assert group["lr"] == pytest.approx(phase.lr / 3)


def test_a_phase_with_a_start_step_runs_only_from_that_step(tmp_path):
    trainer = Trainer(tiny_config("dcgan"), tmp_path)
    d_phase = trainer.phases[0]
    trainer.phases[0] = dataclasses.replace(d_phase, start=2)
    runs = []
    original = trainer.run_phase
    trainer.run_phase = lambda phase: (runs.append((trainer.step, phase.name)), original(phase))  # type: ignore[method-assign]
    for _ in range(3):
        trainer.train_step()
    assert [step for step, name in runs if name == d_phase.name] == [2]
    assert [step for step, name in runs if name == "generator"] == [0, 1, 2]


def test_the_objective_can_reset_every_optimiser_state_at_a_step(tmp_path):
    trainer = Trainer(tiny_config("dcgan"), tmp_path)
    trainer.objective.resets_optimizers = lambda step: step == 2  # type: ignore[method-assign]
    trainer.train_step()
    trainer.train_step()
    steps = {n: [float(s["step"]) for s in o.state.values()] for n, o in trainer.optimizers.items()}
    assert all(v and set(v) == {2.0} for v in steps.values())  # two Adam steps each
    trainer.train_step()  # step 2: cleared first, so this is Adam's first step again
    steps = {n: [float(s["step"]) for s in o.state.values()] for n, o in trainer.optimizers.items()}
    assert all(v and set(v) == {1.0} for v in steps.values())
