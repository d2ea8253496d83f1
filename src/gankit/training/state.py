"""A trainer's resumable state: what a checkpoint holds, writing it, and putting it back.

A checkpoint holds everything needed to continue bit for bit on the same machine: the step,
every network, the EMA copy, every optimiser and the gradient scaler, the sampler's position and
augmentation draws, the fixed sample inputs, the objective's extra state (e.g. an image pool),
the best metric so far, the non-finite guard and every random stream, per rank under torchrun.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from gankit.errors import CheckpointError
from gankit.runfolder import checkpoint as ckpt
from gankit.runfolder.migrate import fit_checkpoint
from gankit.training import distributed

if TYPE_CHECKING:
    from gankit.training.trainer import Trainer

log = logging.getLogger("gankit")


def capture(trainer: Trainer) -> dict[str, Any]:
    """The whole training state. With several ranks a collective (every rank must call it):
    ``ranks`` holds each rank's own random streams, sampler and objective state, in order; the
    top-level ``rng`` and ``loader`` are rank 0's."""
    own = rank_state(trainer)
    objective, dist = trainer.objective, trainer.dist
    return {
        "family": trainer.cfg.family,
        "config": trainer.cfg.to_dict(),
        "step": trainer.step,
        "num_classes": objective.num_classes,
        "networks": {n: net.state_dict() for n, net in objective.networks.items()},
        "ema": trainer.ema.shadow.state_dict() if trainer.ema else None,
        "optimizers": {n: opt.state_dict() for n, opt in trainer.optimizers.items()},
        "scaler": trainer.scaler.state_dict(),
        "loader": trainer.loader.state_dict(),
        "fixed_inputs": trainer.fixed_inputs,
        "objective": objective.extra_state(),
        "best": trainer.evaluation.best if trainer.evaluation else None,
        "rng": own["rng"],
        "guard": trainer.guard.state_dict(),
        "world_size": dist.world_size,
        "ranks": dist.all_gather_object(own) if dist.enabled else None,
    }


def rank_state(trainer: Trainer) -> dict[str, Any]:
    """What differs between ranks: RNG states, the sampler's augmentation draws, the
    objective's extra state (e.g. an image pool); on the CPU when gathered from ranks."""
    state = {
        "rng": ckpt.capture_rng(),
        "loader": trainer.loader.state_dict(),
        "objective": trainer.objective.extra_state(),
    }
    return _to_cpu(state) if trainer.dist.enabled else state


def write_latest(trainer: Trainer, previous: int | None) -> None:
    """Write ``checkpoints/latest.pt`` atomically (rank 0). With ``train.keep_checkpoints`` =
    N > 1 the previous latest (of step ``previous``) stays as ``step-XXXXXX.pt`` (a hard link:
    no copy), N - 1 of them. A failed write (disk full, permissions) leaves the previous
    checkpoint intact and is one :class:`CheckpointError` line, on every rank."""
    run, dist = trainer.run, trainer.dist
    latest, keep = run.latest, trainer.cfg.train.keep_checkpoints
    state = capture(trainer)  # a collective with several ranks
    failure = None
    if dist.is_main:
        try:
            if keep > 1 and latest.is_file() and previous is not None and previous != trainer.step:
                ckpt.keep_copy(latest, run.step_checkpoint(previous))
            ckpt.save_checkpoint(state, latest)
        except OSError as exc:
            failure = str(exc.strerror or exc)
    if dist.enabled:  # every rank stops with rank 0's error, none waits forever
        failure = dist.broadcast_object(failure)
    if failure is not None:
        before = f"step {previous}" if previous is not None else "none"
        raise CheckpointError(
            f"could not write the checkpoint of step {trainer.step} to {latest} "
            f"({failure}); the previous checkpoint ({before}) is intact"
        )
    if dist.is_main:
        ckpt.prune(run.checkpoints, keep - 1)


def migrate(trainer: Trainer, state: dict[str, Any]) -> None:
    """An older format's checkpoint ``state``, converted in place to this format
    (:func:`gankit.runfolder.migrate.fit_checkpoint`); the optimiser state of a phase whose
    networks changed their parameters is dropped (that phase's Adam restarts), with a warning."""
    objective = trainer.objective
    changed = fit_checkpoint(state, dict(objective.networks), objective.sample_network)
    for phase in trainer.phases:
        if set(phase.networks) & set(changed) and phase.name in state["optimizers"]:
            del state["optimizers"][phase.name]
            log.warning("%s: a checkpoint of an older format whose %s changed parametrisation: "
                        "the optimiser of phase %r starts afresh", trainer.run.latest,
                        ", ".join(changed), phase.name)  # fmt: skip


def check_resumable(trainer: Trainer, state: dict[str, Any]) -> None:
    """Refuse, in one line, a checkpoint of another family, architecture or dataset size."""
    cfg, run = trainer.cfg, trainer.run
    if state["family"] != cfg.family:
        raise CheckpointError(f"{run.latest}: a {state['family']!r} checkpoint, not {cfg.family!r}")
    differences = ckpt.architecture_differences(state["config"], cfg.to_dict())
    if differences:
        raise CheckpointError(
            f"cannot resume {run.root} with a changed architecture: " + "; ".join(differences)
        )
    if state["loader"]["dataset_size"] != len(trainer.images):
        raise CheckpointError(
            f"cannot resume {run.root}: the dataset has {len(trainer.images)} images, the "
            f"checkpoint was trained on {state['loader']['dataset_size']}"
        )


def restore(trainer: Trainer, state: dict[str, Any]) -> None:
    """Everything a checkpoint holds back into ``trainer`` (after :func:`check_resumable`)."""
    for name, network in trainer.objective.networks.items():
        network.load_state_dict(state["networks"][name])
    if trainer.ema is not None and state["ema"] is not None:
        trainer.ema.shadow.load_state_dict(state["ema"])
    for name, optimizer in trainer.optimizers.items():
        if name not in state["optimizers"]:  # dropped by migrate()
            continue
        # The implementation (fused or not) is this run's choice, not the checkpoint's:
        # load_state_dict would otherwise bring back the saved groups' flags.
        flags = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in optimizer.param_groups]
        optimizer.load_state_dict(state["optimizers"][name])
        for group, own in zip(optimizer.param_groups, flags, strict=True):
            group.update(own)
    trainer.scaler.load_state_dict(state["scaler"])
    trainer.fixed_inputs = {k: v.to(trainer.device) for k, v in state["fixed_inputs"].items()}
    trainer.step = int(state["step"])
    if trainer.evaluation is not None:
        trainer.evaluation.best = state.get("best")
    if "guard" in state:
        trainer.guard.load_state_dict(state["guard"])
    _restore_rank_state(trainer, state)


def _restore_rank_state(trainer: Trainer, state: dict[str, Any]) -> None:
    """This rank's random streams, sampler and objective state. Saved by as many ranks as
    now: each rank continues its own exactly. Saved by another number: the sampler continues at
    the same global position (see InfiniteLoader.load_state_dict), the objective's extra state
    is rank 0's, and the torch RNG of every rank is re-seeded from (train.seed, rank, step)."""
    dist = trainer.dist
    ranks = state.get("ranks")
    same_world = int(state.get("world_size") or 1) == dist.world_size
    if same_world and ranks:
        own = ranks[dist.rank]
    else:
        own = {"rng": state["rng"], "loader": state["loader"], "objective": state["objective"]}
    trainer.objective.load_extra_state(own["objective"])
    trainer.loader.load_state_dict(own["loader"])
    ckpt.restore_rng(own["rng"])
    if not same_world:
        seed = distributed.rank_seed(trainer.cfg.train.seed, dist.rank, trainer.step)
        torch.manual_seed(seed)


def _to_cpu(tree: Any) -> Any:
    """``tree`` (dicts, lists, tuples of tensors and plain values) with every tensor on the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.cpu()
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_cpu(v) for v in tree)
    return tree
