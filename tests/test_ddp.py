"""Data-parallel training: two CPU processes with gloo train like one process (the normal suite).

Two tests start processes: one spawns two ranks that train WGAN (batch norm in both networks,
synchronised) and compares them with each other and with single-process training on the same
global batches, then stops them with a SIGTERM to one rank; one runs ``gankit train`` under
``torchrun`` and resumes its checkpoints. The rest test the pieces (sampler sharding, the batch
rule, synchronised batch norm in one process) in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gankit.config import RunConfig
from gankit.data import load_images
from gankit.data.loader import InfiniteLoader
from gankit.errors import GankitError
from gankit.resolve import load_run_config
from gankit.runfolder.checkpoint import load_checkpoint
from gankit.training import Trainer
from gankit.training.distributed import Distributed, convert_sync_batchnorm
from tests.conftest import tiny_config

# (b)'s tolerance: the two runs differ only in float rounding (a mean over 16 images vs the mean of
# two means over 8, batch-norm statistics summed in another order), amplified by Adam's division
# by sqrt(v) over 6 steps at lr 2e-4; measured differences are ~1e-7, a bug is >= 1e-3.
PARAMETER_TOLERANCE = 1e-5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _equivalence_config() -> RunConfig:
    """WGAN with batch norm in G and the critic (synchronised), 2 critic steps per G step, EMA
    and an evaluation at the end: 6 steps of global batch 16. In fp32 and NCHW: the 1e-5
    agreement with one process is a property of fp32 sums; bf16 autocast (this CPU's default
    fast path) rounds the per-rank partial sums differently, about 1e-3 apart after 6 steps."""
    return tiny_config(
        "wgan", "train.steps=6", "train.batch_size=16", "train.sync_batchnorm=true",
        "train.ema=true", "train.log_every=3", "eval.metrics=[digit-fd]", "eval.n=30",
        "train.precision=fp32", "train.channels_last=false",
    )  # fmt: skip


def _share_the_global_noise(trainer: Trainer, rank: int, world_size: int) -> None:
    """Make rank r's training noise rows [r*n, (r+1)*n) of one draw of world_size*n latents.

    The trainer gives every rank a noise stream of its own (a global batch of distinct z); to
    compare with one process, both runs here draw the same global latents instead, so the only
    differences left are the ones data parallelism itself makes."""
    objective = trainer.objective
    shared = torch.Generator().manual_seed(1234)
    draw = objective.sample_inputs

    def sample_inputs(n, generator=None, **conditions):
        if generator is not None:  # sample grids and metrics: seeded, not training noise
            return draw(n, generator, **conditions)
        z = torch.randn(n * world_size, objective.model_cfg.latent_dim, generator=shared)
        return {"z": z[rank * n : (rank + 1) * n].to(objective.device)}

    objective.sample_inputs = sample_inputs  # type: ignore[method-assign]


def _poison_one_critic_step(trainer: Trainer, poisoned: bool) -> None:
    """The third critic loss (step 1) is NaN where ``poisoned``: on one rank only, the step must
    still be skipped on both (as the single process, poisoned too, skips it)."""
    loss, calls = trainer.objective.loss, {"critic": 0}

    def poisoned_loss(phase, batch):
        value, stats = loss(phase, batch)
        calls[phase] = calls.get(phase, 0) + 1
        if poisoned and phase == "critic" and calls[phase] == 3:
            value = value * float("nan")
        return value, stats

    trainer.objective.loss = poisoned_loss  # type: ignore[method-assign]


def _sigterm_during_step(trainer: Trainer, step: int) -> None:
    """This process receives SIGTERM while computing the generator loss of step ``step``."""
    loss = trainer.objective.loss

    def loss_then_signal(phase, batch):
        if phase == "generator" and trainer.step == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss(phase, batch)

    trainer.objective.loss = loss_then_signal  # type: ignore[method-assign]


def _trained_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    state = {f"{name}.{key}": value.detach().clone()
             for name, network in trainer.objective.networks.items()
             for key, value in network.state_dict().items()}  # fmt: skip
    assert trainer.ema is not None
    state |= {f"ema.{k}": v.clone() for k, v in trainer.ema.shadow.state_dict().items()}
    for phase, optimizer in trainer.optimizers.items():
        for index, values in optimizer.state_dict()["state"].items():
            state |= {f"{phase}.{index}.{k}": v.clone() for k, v in values.items()}
    return state


def _equivalence_worker(rank: int, world_size: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))  # fmt: skip
    torch.set_num_threads(1)
    trainer = Trainer(_equivalence_config(), Path(folder) / "ddp")
    _share_the_global_noise(trainer, rank, world_size)
    _poison_one_critic_step(trainer, poisoned=rank == 1)
    result = trainer.fit()
    metrics = [(m.metric, m.value, m.protocol["n_generated"]) for m in result.metrics]
    saved = {
        "state": _trained_state(trainer),
        "metrics": metrics,
        "step": result.step,
        "per_rank_batch": trainer.loader.batch_size,
        "skipped": trainer.guard.skipped,
    }
    # Train on; rank 1 alone gets a SIGTERM during step 7 (0-based): both stop after it.
    trainer.cfg.train.steps = 1000
    if rank == 1:
        _sigterm_during_step(trainer, 7)
    stopped = trainer.fit()
    saved |= {"stopped": (stopped.step, stopped.interrupted), "after": _trained_state(trainer)}
    torch.save(saved, Path(folder) / f"rank{rank}.pt")


def test_two_gloo_processes_train_like_one_process_with_the_same_global_batch(tmp_path):
    mp.spawn(_equivalence_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [r["step"] for r in ranks] == [6, 6] and [r["per_rank_batch"] for r in ranks] == [8, 8]
    assert [r["skipped"] for r in ranks] == [1, 1]  # the NaN of rank 1 skipped step 1 on both
    # (a) every parameter, buffer, EMA weight and optimiser moment is identical on both ranks
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert first.keys() == second.keys()
    different = [k for k in first if not torch.equal(first[k], second[k])]
    assert not different, f"ranks disagree on {different[:5]}"

    # (b) one process, the same global batches of 16 (and the same latents): the same training
    single = Trainer(_equivalence_config(), tmp_path / "single")
    _share_the_global_noise(single, 0, 1)
    _poison_one_critic_step(single, poisoned=True)
    result = single.fit()
    assert single.guard.skipped == 1
    expected = _trained_state(single)
    assert expected.keys() == first.keys()
    worst = max((expected[k].float() - first[k].float()).abs().max().item() for k in expected)
    assert worst < PARAMETER_TOLERANCE, f"largest difference {worst:.3g}"
    moved = max((expected[k].float() - single_start).abs().max().item()
                for k, single_start in _initial_generator(tmp_path).items())  # fmt: skip
    assert moved > 100 * PARAMETER_TOLERANCE  # training really moved the weights

    # the losses logged by rank 0 are the means over both ranks: those of the single process
    logged = [json.loads(line) for line in (tmp_path / "ddp" / "losses.jsonl").open()][:2]
    reference = [json.loads(line) for line in (tmp_path / "single" / "losses.jsonl").open()]
    assert [r["step"] for r in logged] == [r["step"] for r in reference] == [3, 6]
    for ours, theirs in zip(logged, reference, strict=True):
        for key in ("loss_critic", "loss_g", "critic_real", "critic_fake"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-6), key
    # the metric saw the features of all 30 images, 15 from each rank: the same number
    [(metric, value, n)] = ranks[0]["metrics"]
    assert ranks[1]["metrics"] == ranks[0]["metrics"]
    assert (metric, n) == ("digit-fd", 30)
    assert value == pytest.approx(result.metrics[0].value, rel=1e-3)
    # only rank 0 wrote: one line per evaluation, one run folder
    records = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").open()]
    assert [(r["step"], r["n_generated"]) for r in records] == [(6, 30)]

    # a SIGTERM to rank 1 stopped both ranks after the same step, still identical, checkpointed
    assert [r["stopped"] for r in ranks] == [(8, True), (8, True)]
    assert all(torch.equal(v, ranks[1]["after"][k]) for k, v in ranks[0]["after"].items())
    assert load_checkpoint(tmp_path / "ddp" / "checkpoints" / "latest.pt")["step"] == 8


def _initial_generator(tmp_path: Path) -> dict[str, torch.Tensor]:
    """The generator's weights before training (same seed, same initialisation)."""
    fresh = Trainer(_equivalence_config(), tmp_path / "fresh")
    return {f"generator.{k}": v for k, v in fresh.objective.networks["generator"]
            .state_dict().items() if v.is_floating_point()}  # fmt: skip


def _torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "gankit",
               *args]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


TORCHRUN_ARGS = [
    "--data", "mnist-bundled", "--set", "data.resolution=16", "--set", "data.max_images=256",
    "--set", "model.latent_dim=8", "--set", "model.g_width=8", "--set", "model.d_width=8",
    "--set", "train.batch_size=16", "--set", "train.device=cpu", "--set", "train.progress=false",
    "--set", "train.log_every=2", "--set", "train.steps=4", "--set", "train.checkpoint_every=2",
    "--set", "train.keep_checkpoints=2", "--set", "train.sample_every=2",
    "--set", "train.sync_batchnorm=true", "--set", "train.ema=true",
    "--set", "output.tensorboard=false",
]  # fmt: skip


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(checkpoint)
    flat = {f"{n}.{k}": v for n, sd in state["networks"].items() for k, v in sd.items()}
    return flat | {f"ema.{k}": v for k, v in state["ema"].items()}


def test_gankit_train_under_torchrun_writes_once_and_resumes_exactly_on_two_ranks(tmp_path):
    run = tmp_path / "run"
    straight = _torchrun("train", "dcgan", *TORCHRUN_ARGS, "--out", str(run))
    assert straight.returncode == 0, straight.stderr[-3000:]
    losses = [json.loads(line)["step"] for line in (run / "losses.jsonl").open()]
    assert losses == [2, 4]  # rank 0 alone writes
    assert straight.stdout.count("gankit: finished at step 4") == 1  # and alone reports
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-000002.png", "step-000004.png",
    ]  # fmt: skip
    assert (run / "export" / "generator.safetensors").is_file()
    log_text = (run / "log.txt").read_text()
    assert "2 processes (gloo), 8 images per process of the global batch 16" in log_text
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert state["step"] == 4 and state["world_size"] == 2 and len(state["ranks"]) == 2
    rank_rngs = [r["rng"]["torch"] for r in state["ranks"]]
    assert not torch.equal(*rank_rngs)  # each rank its own noise stream
    assert state["config"]["train"]["batch_size"] == 16  # the global batch is what is saved
    exported = json.loads((run / "export" / "config.json").read_text())
    assert exported["config"]["train"]["batch_size"] == 16

    # Resume the step-2 checkpoint on two ranks: every RNG, sampler and weight continues exactly.
    again = tmp_path / "again"
    shutil.copytree(run, again)
    shutil.copy(again / "checkpoints" / "step-000002.pt", again / "checkpoints" / "latest.pt")
    resumed = _torchrun("train", "--resume", str(again))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, actual = (
        _weights(run / "checkpoints" / "latest.pt"),
        _weights(again / "checkpoints" / "latest.pt"),
    )
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"

    # Resume on one process (another world size): the global batch stays 16, all on this rank.
    single = Trainer(load_run_config(run, ["train.steps=6"]), run, resume=True)
    assert single.loader.batch_size == 16
    assert single.loader.order.position == 2 * state["loader"]["position"]
    assert single.fit().step == 6


def test_ranks_take_the_single_process_batch_between_them():
    images = load_images(tiny_config("dcgan", "data.max_images=30").data)
    cfg = tiny_config("dcgan").data
    single = InfiniteLoader(images, cfg, batch_size=12, seed=3)
    ranks = [InfiniteLoader(images, cfg, batch_size=4, seed=3, rank=r, world_size=3)
             for r in range(3)]  # fmt: skip
    # 30 images, 3 ranks: epochs of 30 for one process, of 10 per rank (30 divides by 3)
    for _ in range(5):  # crosses two epoch boundaries
        together = torch.cat([r.order.take(4) for r in ranks])
        assert sorted(together.tolist()) == sorted(single.order.take(12).tolist())


def test_an_epoch_of_every_rank_has_the_same_length():
    images = load_images(tiny_config("dcgan", "data.max_images=31").data)
    ranks = [InfiniteLoader(images, tiny_config("dcgan").data, 5, seed=0, rank=r, world_size=2)
             for r in range(2)]  # fmt: skip
    for _ in range(9):  # 15 per rank per epoch (one image left out of each epoch's order)
        for loader in ranks:
            loader.order.take(5)
    assert [(r.order.epoch, r.order.position) for r in ranks] == [(2, 15), (2, 15)]


def test_a_sampler_resumes_on_another_world_size_at_the_same_global_position():
    images = load_images(tiny_config("dcgan", "data.max_images=64").data)
    cfg = tiny_config("dcgan").data
    two = [InfiniteLoader(images, cfg, 4, seed=0, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):
        for loader in two:
            next(loader)
    four = [InfiniteLoader(images, cfg, 2, seed=0, rank=r, world_size=4) for r in range(4)]
    for loader in four:
        loader.load_state_dict(two[0].state_dict())
    single = InfiniteLoader(images, cfg, 8, seed=0)
    single.order.take(24)  # the three global batches of 8 taken above
    together = torch.cat([loader.order.take(2) for loader in four])
    assert sorted(together.tolist()) == sorted(single.order.take(8).tolist())


def test_the_global_batch_must_divide_among_the_processes():
    assert Distributed(rank=1, world_size=4).local_batch(64) == 16
    with pytest.raises(GankitError, match=r"train.batch_size=10 is the global batch .* 4 "):
        Distributed(rank=0, world_size=4).local_batch(10)
    assert Distributed(rank=2, world_size=3).shard(10) == (6, 10)


def test_synchronised_batch_norm_keeps_the_layer_in_a_single_process():
    from gankit.nets.blocks import PlainBatchNorm2d

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.BatchNorm1d(2))
    plain = PlainBatchNorm2d(3)
    converted = [convert_sync_batchnorm(m, torch.device("cpu")) for m in (network[0], plain)]
    assert converted == [1, 1]
    assert isinstance(plain, PlainBatchNorm2d) and isinstance(network[0], torch.nn.BatchNorm2d)
    x = torch.randn(4, 3, 5, 5)
    reference = torch.nn.BatchNorm2d(3)
    assert torch.equal(plain(x, torch.zeros(4)), reference(x))  # the condition is still accepted
    assert torch.equal(plain.running_mean, reference.running_mean)
    assert plain.state_dict().keys() == reference.state_dict().keys()
