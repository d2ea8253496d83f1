"""The objective contract: a GAN family's networks and math, with no optimiser or backward().

The trainer runs each objective's :class:`Phase` list every step: for a phase it computes
``loss(phase.name, batch)``, back-propagates it and steps the optimiser of ``phase.networks`` only.

A family sees its own settings (``model``), the data's (``data``) and nothing of the trainer's:
the trainer hands it the step (:meth:`Objective.set_step`) and this process's batch size (the
``batch_size`` argument), and fills in each phase's optimiser settings from ``train``
(docs/design.md, "The objective contract").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from gankit.config import DataConfig, ModelConfig, RunConfig
from gankit.data.base import ImageSet
from gankit.errors import ConfigError, GankitError

Batch = dict[str, torch.Tensor]  # "image": (N, C, H, W) float in [-1, 1]; "label": (N,) int64


def discriminator_accuracy(
    real_scores: torch.Tensor, fake_scores: torch.Tensor, threshold: float | None = 0.0
) -> torch.Tensor:
    """How often D tells real from fake: (P[real > t] + P[fake < t]) / 2, a detached scalar.

    real_scores, fake_scores: D's raw outputs (any shape). ``threshold`` t is the family's
    decision boundary (0 for logits and hinge scores, (a + b) / 2 for least squares); None: the
    midpoint of the two means (Wasserstein critics, whose scores have no fixed scale). 0.5 is a
    balanced game, 1.0 a discriminator that wins every time (the trainer warns, see
    :mod:`gankit.training.health`).
    """
    real, fake = real_scores.detach().float(), fake_scores.detach().float()
    t = (real.mean() + fake.mean()) / 2 if threshold is None else threshold
    return ((real > t).float().mean() + (fake < t).float().mean()) / 2


def linear_decay(step: int, total: int, start: float) -> float:
    """A learning-rate factor: 1 before ``round(start * total)``, then linear to 0 at ``total``:
    (total - step) / (total - round(start * total)), never below 0; ``start`` = 1 is constant.
    A function of the step and the totals only, so a resumed run continues it exactly (and one
    resumed with a larger ``total`` stretches the rest of it)."""
    begin = round(start * total)
    if step < begin or begin >= total:  # begin == total: no decay (and no division by 0)
        return 1.0
    return max(0.0, (total - step) / (total - begin))


def reject_conditions(family: str, conditions: dict[str, Any]) -> None:
    """A family without labels or truncation refuses them with one line, instead of ignoring."""
    given = [name for name, value in conditions.items() if value is not None]
    if given:
        raise GankitError(f"{family} does not support {', '.join(given)} when sampling")


@dataclass(frozen=True)
class Phase:
    """One optimisation step of some networks, e.g. "discriminator" or "generator".

    The optimiser settings left None are the run's: ``train.lr_g`` or ``train.lr_d`` by
    ``role``, ``train.betas`` and ``train.optimizer`` (the trainer fills them in,
    :func:`gankit.training.optim.resolve_phase`)."""

    name: str
    networks: tuple[str, ...]  # keys of Objective.networks whose parameters this phase updates
    role: Literal["generator", "discriminator"] = "discriminator"  # whose learning rate it takes
    lr: float | None = None  # None: train.lr_g / train.lr_d by role
    betas: tuple[float, float] | None = None  # Adam/AdamW betas (None: train.betas)
    optimizer: str | None = None  # adam | adamw | rmsprop | sgd (None: train.optimizer)
    repeats: int = 1  # how many times per training step (e.g. 5 critic steps in WGAN)
    every: int = 1  # run only on steps divisible by this (lazy regularisation)
    start: int = 0  # run only from this step on (e.g. SRGAN's D after the MSE pretraining)
    needs_data: bool = True  # False: the trainer passes no real batch (e.g. a generator step)


class Objective(nn.Module):
    """A GAN family. Subclasses set ``Config`` and ``description`` and implement the methods below.

    Networks live in ``self.networks`` (an nn.ModuleDict); ``"generator"`` is the one sampled from.
    """

    Config: ClassVar[type[ModelConfig]] = ModelConfig
    description: ClassVar[str] = ""
    sample_network: ClassVar[str] = "generator"  # which network the EMA tracks and samples use
    discriminators: ClassVar[tuple[str, ...]] = ("discriminator",)  # judge images (DiffAugment)
    task: ClassVar[str] = "generate"  # "generate" (from noise) | "translate" (image to image)

    def __init__(
        self,
        cfg: RunConfig,  # only its family, model and data sections are kept
        num_classes: int = 0,  # classes of a labelled dataset (conditional families)
        batch_size: int | None = None,  # this process's batch; None: cfg.train.batch_size
    ) -> None:
        super().__init__()
        self.family: str = cfg.family
        self.model_cfg: Any = cfg.model  # the family's own ModelConfig subclass
        self.data_cfg: DataConfig = cfg.data
        self.num_classes = num_classes
        self.batch_size = cfg.train.batch_size if batch_size is None else batch_size
        self.networks = nn.ModuleDict(self.build())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        data = self.data_cfg
        return (data.channels, data.resolution, data.resolution)

    def build(self) -> dict[str, nn.Module]:
        """The networks this family trains, by name."""
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        """The optimisation steps of one training step; by default :meth:`adversarial_phases`."""
        return self.adversarial_phases()

    def adversarial_phases(
        self,
        discriminator: str = "discriminator",
        discriminator_steps: int = 1,
        generator_needs_data: bool = False,  # True for translators: G's input is data
    ) -> list[Phase]:
        """The usual pair: ``discriminator_steps`` steps of the discriminator (or critic) on real
        batches, then one generator step, with the run's optimiser settings."""
        return [
            Phase(discriminator, (discriminator,), repeats=discriminator_steps),
            Phase("generator", ("generator",), role="generator", needs_data=generator_needs_data),
        ]

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar loss of ``phase`` and detached statistics (no .item(): no host sync)."""
        raise NotImplementedError

    def sample_inputs(
        self, n: int, generator: torch.Generator | None = None, **conditions: Any
    ) -> dict[str, torch.Tensor]:
        """Random generator inputs for n images, on the model's device. By default
        {"z": (n, model.latent_dim)} with z ~ N(0, I), and no conditions.

        ``conditions`` are family options such as ``labels`` ((n,) int64 classes of a
        conditional family) or ``truncation``; a family refuses those it does not support.
        """
        reject_conditions(self.family, conditions)
        latent_dim = self.model_cfg.latent_dim  # type: ignore[attr-defined]
        return {"z": torch.randn(n, latent_dim, generator=generator, device=self.device)}

    def check_data(self, images: ImageSet) -> None:
        """Refuse data this family cannot train on with a one-line ConfigError: by default, a
        two-domain translation set (the trainer calls this before training)."""
        if images.two_domains:
            raise ConfigError(
                f"{self.family} generates images from noise; data.source="
                f"{self.data_cfg.source!r} is a two-domain translation set: choose a one-domain "
                "source (mnist-bundled, mnist, cifar10, folder, ...)"
            )

    def fixed_inputs(
        self, n: int, generator: torch.Generator, data: Iterator[Batch]
    ) -> dict[str, torch.Tensor]:
        """The inputs of the fixed sample grids: by default :meth:`sample_inputs` from
        ``generator``; translators take images from ``data`` (batches of n) instead."""
        return self.sample_inputs(n, generator)

    def generate(
        self, inputs: dict[str, torch.Tensor], network: nn.Module | None = None
    ) -> torch.Tensor:
        """Images (n, C, H, W) in [-1, 1] from ``inputs``; ``network`` replaces G (e.g. EMA).
        By default the generator applied to ``inputs["z"]``."""
        return (network or self.networks[self.sample_network])(inputs["z"])

    def metric_view(self, images: torch.Tensor) -> torch.Tensor:
        """The part of generated images (n, C, H, W) that metrics compare with the training
        data; all of it, except for families whose samples are composites (CoGAN's pairs)."""
        return images

    def set_step(self, step: int) -> None:
        """Called by the trainer before each training step (e.g. ProGAN's fade-in schedule,
        SRGAN's stages): the only way a family learns the step."""

    def resets_optimizers(self, step: int) -> bool:
        """Whether the trainer clears every optimiser's state (Adam's moments) before ``step``,
        e.g. ProGAN when a new resolution starts. A function of the step alone (exact resume)."""
        return False

    def lr_factor(self, step: int) -> float:
        """The factor on every phase's learning rate at ``step`` (a schedule, e.g. CycleGAN's
        linear decay); a function of the step alone, so resuming continues it exactly."""
        return 1.0

    def after_step(self, phase: str) -> None:
        """Called by the trainer after each optimiser step of ``phase`` (e.g. weight clipping)."""

    def extra_state(self) -> dict[str, Any]:
        """State outside the networks that a checkpoint must keep (e.g. an image pool)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    @torch.no_grad()
    def sample(
        self,
        n: int,
        network: nn.Module | None = None,  # replaces the generator, e.g. its EMA copy
        seed: int | None = None,  # None: the global RNG; else the same seed, the same images
        batch_size: int = 256,  # images generated at once
        **conditions: Any,  # e.g. labels=(n,) int64, truncation=0.5: see sample_inputs
    ) -> torch.Tensor:
        """n images (n, C, H, W) float in [-1, 1] on the model's device, in evaluation mode."""
        rng = torch.Generator(self.device).manual_seed(seed) if seed is not None else None
        return self.generate_eval(self.sample_inputs(n, rng, **conditions), network, batch_size)

    @torch.no_grad()
    def generate_eval(
        self,
        inputs: dict[str, torch.Tensor],  # generator inputs, each (n, ...)
        network: nn.Module | None = None,  # replaces the generator, e.g. its EMA copy
        batch_size: int = 256,
    ) -> torch.Tensor:
        """:meth:`generate` in evaluation mode (BN running statistics, no dropout), in chunks of
        ``batch_size``, leaving the network's mode as it was: (n, C, H, W) in [-1, 1]."""
        network = network or self.networks[self.sample_network]
        n = next(iter(inputs.values())).shape[0]
        was_training = network.training
        network.eval()
        try:
            chunks = [
                self.generate({k: v[i : i + batch_size] for k, v in inputs.items()}, network)
                for i in range(0, n, batch_size)
            ]
        finally:
            network.train(was_training)
        return torch.cat(chunks)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
