"""Reading configs and weights written by an older format (docs/design.md, "Formats").

:data:`gankit.config.FORMAT` numbers the layout of configs and checkpoints this version writes.
A config read from a run folder, a checkpoint or an export without a ``format`` key was written
by format 1. :func:`migrate_config` brings such a config to the current format with the settings
that reproduce what the old code computed; :func:`fit_state_dict` converts weights whose layer
changed its parametrisation, exactly:

- format 1 -> 2 (issue 18, the families made faithful to their papers):
  - DCGAN-network families (dcgan, lsgan, wgan, wgan-gp and the conv CGAN): the generator's
    activation was LeakyReLU(0.2): ``model.g_activation: leaky_relu``.
  - CycleGAN: ``model.decay_start`` became the trainer's ``train.lr_decay_start``.
  - SPADE: spectral norm left G's head and to-image convs and D's first and last convs
    (W = W_orig / sigma(W_orig) with the stored power-iteration vectors, the function
    evaluation computed), and D's inner convs dropped their bias (an instance norm follows, which
    subtracts it again).
  - ProGAN's gain-1 output layers convert themselves (``nets/progan.py``, ``output_gain``).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from gankit.config import FORMAT
from gankit.errors import CheckpointError

log = logging.getLogger("gankit")

# Families whose generator is a DCGAN-style conv net with a ``model.g_activation`` option.
_DCGAN_GENERATORS = ("dcgan", "lsgan", "wgan", "wgan-gp", "cgan")
_SN = ".parametrizations.weight.original"


def config_format(tree: dict[str, Any]) -> int:
    """The format of a config mapping read from disk: its ``format`` key, else 1."""
    return int(tree.get("format", 1))


def migrate_config(tree: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """``tree`` (a config mapping read from disk) at the current format; a newer one than this
    gankit reads is one :class:`CheckpointError` line naming ``source``."""
    version = config_format(tree)
    if version > FORMAT:
        raise CheckpointError(
            f"{source}: written by a newer gankit (format {version}); this one reads format "
            f"{FORMAT} or older: upgrade gankit"
        )
    tree = copy.deepcopy(tree)
    if version < 2:
        tree = _config_1_to_2(tree)
    tree["format"] = FORMAT
    return tree


def _config_1_to_2(tree: dict[str, Any]) -> dict[str, Any]:
    family, model = tree.get("family"), tree.setdefault("model", {})
    if family in _DCGAN_GENERATORS:
        model.setdefault("g_activation", "leaky_relu")
    if family == "cyclegan" and "decay_start" in model:
        train = tree.setdefault("train", {})
        if train.get("lr_decay_start", 1.0) == 1.0:  # the two schedules multiplied
            train["lr_decay_start"] = model["decay_start"]
        del model["decay_start"]
    return tree


def fit_state_dict(network: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict, bool]:
    """``state`` (an older format's weights of ``network``) in the layout ``network`` has now,
    and whether anything was converted: spectral norm removed from a layer (the normalised
    weight, as evaluation computed it) and a bias a layer no longer has. Keys that fit are
    left alone; what remains unfitting fails in ``load_state_dict`` as before."""
    wanted = network.state_dict()
    state, changed = dict(state), False
    for key in [k for k in state if k.endswith(_SN)]:
        prefix = key[: -len(_SN)]
        if f"{prefix}.weight" in wanted and key not in wanted:
            u = state.pop(f"{prefix}.parametrizations.weight.0._u")
            v = state.pop(f"{prefix}.parametrizations.weight.0._v")
            original = state.pop(key)
            sigma = torch.dot(u, original.reshape(original.shape[0], -1) @ v)
            state[f"{prefix}.weight"] = original / sigma
            changed = True
    for key in [k for k in state if k.endswith(".bias") and k not in wanted]:
        if f"{key[: -len('.bias')]}.weight" in wanted or f"{key[:-5]}{_SN}" in wanted:
            del state[key]
            changed = True
    return state, changed


def fit_checkpoint(
    state: dict[str, Any], networks: dict[str, nn.Module], sampled: str
) -> list[str]:
    """Convert an older format's checkpoint ``state`` in place: its config (``state["config"]``,
    :func:`migrate_config`) and its network and EMA weights (:func:`fit_state_dict`; the EMA is
    a copy of ``networks[sampled]``). Returns the names of the networks whose parameters
    changed: their optimisers' states no longer match and the caller drops them."""
    if int(state.get("format", 1)) >= FORMAT:
        return []
    state["config"] = migrate_config(state["config"])
    changed = []
    for name, network in networks.items():
        if name in state["networks"]:
            state["networks"][name], did = fit_state_dict(network, state["networks"][name])
            changed += [name] if did else []
    if state.get("ema") is not None and sampled in networks:
        state["ema"], _ = fit_state_dict(networks[sampled], state["ema"])
    state["format"] = FORMAT
    return changed
