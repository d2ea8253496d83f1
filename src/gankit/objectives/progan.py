"""ProGAN: Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and
Variation".

Training starts at s0 x s0 pixels (``model.stages[0]``, 4 in the paper) and doubles the
resolution stage by stage (section 3, figure 2). The schedule is a function of the step alone,
with P = ``model.steps_per_phase`` (the paper's 800k images per phase) and K stages:

    steps [0, P)                         stage 0, alpha = 1   (no fade-in: nothing to fade from)
    then, for each stage k = 1 .. K - 1:
      fade-in   P steps  (step t of P)   stage k, alpha = t / P   (0 -> 1 - 1/P)
      stabilise P steps                  stage k, alpha = 1
    from step P * (2K - 1) on            stage K - 1, alpha = 1

During a fade-in, G's new block is blended with the upsampled toRGB of the previous resolution,
D's new block with the fromRGB of the 2x average-pooled input, and the real images likewise:
x_r = lerp(up(pool(x_r)), x_r, alpha) after average-pooling the data to the stage's resolution.

Loss: WGAN-GP (Gulrajani et al. 2017, eq. 3; lambda = ``gp_lambda`` = 10, one critic step per
generator step, ``critic_steps``) plus the drift term epsilon_drift * E[D(x)^2] with
epsilon_drift = 0.001 (appendix A.1) in the critic's loss:

    L_D = E[D(G(z))] - E[D(x)] + lambda E[(||grad D(x_hat)||_2 - 1)^2] + epsilon_drift E[D(x)^2]
    L_G = -E[D(G(z))]

Adam lr 1e-3, betas (0, 0.99) (appendix A.1); an EMA of G (decay 0.999) for sampling. Both
optimisers' states (Adam's moments and step counts) are cleared whenever new layers come in or
finish fading in, as the reference code does (``reset_opt_for_new_lod=True`` in train.py): it
resets when floor(lod) or ceil(lod) changes, lod being the level of detail (0 = the final
resolution; stage k at alpha a is lod = K - 1 - k + (1 - a)). That is, before the first fade-in
step with alpha > 0 (lod leaves an integer: the step with alpha = 0 computes exactly the previous
resolution's function) and before the first stabilisation step (lod reaches the next integer):
see :func:`progan_resets_optimizers`. (The reference re-reads the schedule every 4 minibatches,
gankit every step.)

``generate`` samples at the stage the generator was last trained at (its ``trained_stage`` /
``trained_alpha`` buffers, which travel in checkpoints and exports) and upsamples the output to
``data.resolution`` by nearest neighbour, so sample grids and metrics always see one size; values
are clamped to [-1, 1] (the generator's output layer is linear).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.errors import CheckpointError
from gankit.losses import (
    drift_penalty,
    gradient_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from gankit.nets.progan import (
    ProGANDiscriminator,
    ProGANGenerator,
    check_resolutions,
    progan_resolutions,
)
from gankit.objectives.base import Batch, Objective, Phase, discriminator_accuracy
from gankit.objectives.registry import OBJECTIVES


class ProGANConfig(ModelConfig):
    latent_dim: int = Field(512, ge=1)  # length of z; normalised onto the hypersphere in G
    stages: list[int] | None = None  # resolutions grown through, e.g. [4, 8, 16, 32];
    #                                  None = s0 (4..7) doubling up to data.resolution
    steps_per_phase: int = Field(2000, ge=1)  # steps of each fade-in and each stabilisation
    g_width: int = Field(16, ge=1)  # G channels at the final resolution; doubled per halving
    d_width: int = Field(16, ge=1)  # D channels at the final resolution; doubled per halving
    max_channels: int = Field(512, ge=1)  # cap on any layer's channels (512 in the paper)
    gp_lambda: float = Field(10.0, ge=0)  # lambda: weight of the gradient penalty
    epsilon_drift: float = Field(0.001, ge=0)  # epsilon_drift: weight of E[D(x)^2]
    critic_steps: int = Field(1, ge=1)  # critic steps per generator step (1 in the paper)
    minibatch_group_size: int = Field(4, ge=1)  # group size of the minibatch stddev layer


def progan_schedule(step: int, num_stages: int, steps_per_phase: int) -> tuple[int, float]:
    """(stage, alpha) at training ``step``: see the module docstring for the schedule."""
    if step < steps_per_phase:
        return 0, 1.0
    phase, t = divmod(step - steps_per_phase, steps_per_phase)
    stage = phase // 2 + 1
    if stage >= num_stages:
        return num_stages - 1, 1.0
    return (stage, t / steps_per_phase) if phase % 2 == 0 else (stage, 1.0)


def progan_lod_bracket(step: int, num_stages: int, steps_per_phase: int) -> tuple[int, int]:
    """(floor(lod), ceil(lod)) of the reference's level of detail at ``step``, where stage k at
    alpha a has lod = K - 1 - k + (1 - a): (K-1-k, K-1-k) at alpha 1, (K-k, K-k) at alpha 0 and
    (K-1-k, K-k) while fading in. Computed from (stage, alpha) without float rounding."""
    stage, alpha = progan_schedule(step, num_stages, steps_per_phase)
    top = num_stages - 1 - stage  # lod of stage k at alpha = 1
    if alpha >= 1.0:
        return top, top
    if alpha <= 0.0:
        return top + 1, top + 1
    return top, top + 1


def progan_resets_optimizers(step: int, num_stages: int, steps_per_phase: int) -> bool:
    """Whether both optimisers' states are cleared before ``step``: floor(lod) or ceil(lod)
    differs from the previous step's (reference train.py, ``reset_opt_for_new_lod``). With
    P = steps_per_phase, for each stage k >= 1 these are steps P (2k - 1) + 1 (the first step of
    the fade-in with alpha > 0) and 2 k P (the first stabilisation step); one step when P = 1
    (a fade-in of one step at alpha = 0). Never at step 0: there is no state to clear."""
    if step <= 0:
        return False
    now = progan_lod_bracket(step, num_stages, steps_per_phase)
    return now != progan_lod_bracket(step - 1, num_stages, steps_per_phase)


@OBJECTIVES.register("progan")
class ProGAN(Objective):
    """Progressively grown G and D, WGAN-GP with the drift term."""

    Config = ProGANConfig
    description = "Karras et al. 2018: progressive growing, equalised LR, pixel norm, WGAN-GP"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step, self.stage, self.alpha = 0, 0, 1.0
        self.set_step(0)

    @property
    def resolutions(self) -> list[int]:
        """The stages' resolutions, validated against data.resolution."""
        stages = self.model_cfg.stages
        resolution = self.data_cfg.resolution
        if stages is None:
            return progan_resolutions(resolution)
        check_resolutions(stages, resolution)
        return list(stages)

    def build(self) -> dict[str, nn.Module]:
        m = self.model_cfg
        channels, stages = self.data_cfg.channels, self.resolutions
        return {
            "generator": ProGANGenerator(
                latent_dim=m.latent_dim,
                stages=stages,
                channels=channels,
                width=m.g_width,
                max_channels=m.max_channels,
            ),
            "discriminator": ProGANDiscriminator(
                stages=stages,
                channels=channels,
                width=m.d_width,
                max_channels=m.max_channels,
                group_size=m.minibatch_group_size,
            ),
        }

    def phases(self) -> list[Phase]:
        return self.adversarial_phases(discriminator_steps=self.model_cfg.critic_steps)

    def set_step(self, step: int) -> None:
        """Move to the (stage, alpha) of ``step``; record it in G's buffers for exports."""
        stages = len(self.networks["generator"].stages)
        self.step = step
        self.stage, self.alpha = progan_schedule(step, stages, self.model_cfg.steps_per_phase)
        generator = self.networks["generator"]
        generator.trained_stage.fill_(self.stage)
        generator.trained_alpha.fill_(self.alpha)

    def resets_optimizers(self, step: int) -> bool:
        """Both optimisers start afresh when new layers fade in and when they finish: see
        :func:`progan_resets_optimizers` (a function of the step: resuming repeats it)."""
        stages = len(self.networks["generator"].stages)
        return progan_resets_optimizers(step, stages, self.model_cfg.steps_per_phase)

    def extra_state(self) -> dict[str, Any]:
        return {"step": self.step, "stage": self.stage, "alpha": self.alpha}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the schedule position, refusing one that the config would not reproduce."""
        if not state:
            return
        stages = len(self.networks["generator"].stages)
        step, saved = int(state["step"]), (int(state["stage"]), float(state["alpha"]))
        expected = progan_schedule(step, stages, self.model_cfg.steps_per_phase)
        if saved != expected:
            raise CheckpointError(
                f"checkpoint's ProGAN schedule at step {step} is stage {saved[0]}, alpha "
                f"{saved[1]:.4g}, but model.stages/steps_per_phase give stage {expected[0]}, "
                f"alpha {expected[1]:.4g}"
            )
        self.set_step(step)

    @property
    def current_resolution(self) -> int:
        return self.networks["generator"].stages[self.stage]

    def real_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, R, R) data in [-1, 1] -> (N, C, r, r) at the current stage, faded like G."""
        factor = images.shape[-1] // self.current_resolution
        if factor > 1:
            images = F.avg_pool2d(images, factor)
        if self.alpha < 1.0:
            lower = F.interpolate(F.avg_pool2d(images, 2), scale_factor=2, mode="nearest")
            images = torch.lerp(lower, images, self.alpha)
        return images

    # ------------------------------------------------------------------------------------------
    # Losses

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase == "discriminator":
            assert batch is not None
            return self.discriminator_loss(batch["image"])
        if phase == "generator":
            return self.generator_loss(self.batch_size)
        raise KeyError(phase)

    def critic(self, images: torch.Tensor) -> torch.Tensor:
        """D's scores (N,) of images at the current stage and alpha."""
        return self.networks["discriminator"](images, self.stage, self.alpha)

    def fake_images(self, n: int) -> torch.Tensor:
        """(n, C, r, r) generated at the current stage and alpha (linear output)."""
        z = self.sample_inputs(n)["z"]
        return self.networks["generator"](z, self.stage, self.alpha)

    def discriminator_loss(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """images: (N, C, R, R) real data in [-1, 1] at data.resolution."""
        m = self.model_cfg
        real = self.real_images(images)
        with torch.no_grad():
            fake = self.fake_images(real.shape[0])
        real_scores, fake_scores = self.critic(real), self.critic(fake)
        wasserstein = wasserstein_critic_loss(real_scores, fake_scores)
        penalty = gradient_penalty(self.critic, real, fake)
        drift = drift_penalty(real_scores)
        loss = wasserstein + m.gp_lambda * penalty + m.epsilon_drift * drift
        device = loss.device
        stats = {
            "loss_d": loss.detach(),
            "wasserstein": -wasserstein.detach(),  # E[D(x)] - E[D(G(z))]
            "gradient_penalty": penalty.detach(),
            "drift": drift.detach(),
            "d_accuracy": discriminator_accuracy(real_scores, fake_scores, threshold=None),
            "stage": torch.full((), float(self.stage), device=device),
            "alpha": torch.full((), self.alpha, device=device),
        }
        return loss, stats

    def generator_loss(self, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = wasserstein_generator_loss(self.critic(self.fake_images(n)))
        return loss, {"loss_g": loss.detach()}

    # ------------------------------------------------------------------------------------------
    # Sampling

    def generate(
        self, inputs: dict[str, torch.Tensor], network: nn.Module | None = None
    ) -> torch.Tensor:
        """(n, C, R, R) in [-1, 1] at data.resolution, from the stage ``network`` was trained at
        (nearest-neighbour upsampled from that stage's resolution)."""
        network = network or self.networks["generator"]
        # Reading the buffers is a host sync: fine for sampling, never on the training path.
        stage, alpha = int(network.trained_stage), float(network.trained_alpha)
        images = network(inputs["z"], stage, alpha)
        factor = self.data_cfg.resolution // images.shape[-1]
        if factor > 1:
            images = F.interpolate(images, scale_factor=factor, mode="nearest")
        return images.clamp(-1.0, 1.0)
