"""CycleGAN: Zhu, Park, Isola & Efros 2017, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks".

Two translators, G: A -> B (``generator``) and F: B -> A (``generator_ba``), and two PatchGAN
discriminators, D_B judging domain B (``discriminator``) and D_A judging domain A
(``discriminator_a``), trained on unpaired images a ~ A, b ~ B with the full objective (eq. 3)

    L(G, F, D_A, D_B) = L_GAN(G, D_B, A, B) + L_GAN(F, D_A, B, A) + lambda L_cyc(G, F)
                        [+ 0.5 lambda L_identity(G, F)]

- L_GAN (eq. 1) in its least-squares form (section 4, "Training details"; Mao et al. 2017):
  G minimises E_a[(D_B(G(a)) - 1)^2]; D_B minimises E_b[(D_B(b) - 1)^2] + E_a[D_B(G(a))^2],
  divided by 2 so that D learns more slowly than G (appendix 7.1); the same for F and D_A.
  The scores are per 70 x 70 patch and averaged.
- L_cyc (eq. 2): E_a[||F(G(a)) - a||_1] + E_b[||G(F(b)) - b||_1], lambda = 10 (section 4).
- L_identity (section 5.2): E_b[||G(b) - b||_1] + E_a[||F(a) - a||_1], weight 0.5 lambda
  (appendix 7.1); it keeps colours when translating paintings and photos. The L1 norms are
  means over pixels.
- D sees generated images through a history of the 50 last ones per direction (section 4;
  Shrivastava et al. 2017): :class:`ImagePool`.
- Adam, lr 2e-4, betas (0.5, 0.999), batch 1; lr constant for the first 100 epochs, then
  linearly decayed to zero over the next 100 (section 4): the presets set the trainer's
  ``train.lr_decay_start: 0.5`` (constant for the first half of ``train.steps``, then linear to
  zero at the last step).
- Networks (appendix 7.2): :class:`~gankit.nets.translation.ResNetTranslator` (c7s1-64, d128,
  d256, 6 or 9 x R256, u128, u64, c7s1-3, reflection padding) and the 70 x 70
  :class:`~gankit.nets.translation.PatchGANDiscriminator` (C64-C128-C256-C512, no norm on C64).

Normalisation: instance norm (``model.norm: instance``, the default; ``batch`` and ``none`` are
the alternatives) normalises each image by its own statistics in training and in evaluation, as
the authors' ``InstanceNorm2d(track_running_stats=False)``. It also keeps running averages, for
``stats=running``. Tiled inference of a large image takes each norm layer's statistics over the
whole image, estimated from the tiles, so no tile is normalised by itself
(:mod:`gankit.translate.statistics`).

Channels: domain A has ``data.channels_a`` (default ``data.channels``), B ``data.channels``; G
maps A's channels to B's, F back, D_B reads B's, D_A A's. The identity loss feeds b to G, so it
needs equal channels.

Phases, as in the authors' code (``optimize_parameters``: one ``set_input`` per iteration, G and
F stepped first, then D_A and D_B): ``generator`` reads one batch {"a", "b"} and updates G and F
together; then ``discriminator`` (``Phase.needs_data=False``: it reads no batch of its own)
updates D_B and D_A on the real images of that same batch and on the fakes the generator phase
made from it (before G's update, as there), drawn through the pools. The batch and its fakes are
kept, detached, from the generator phase to the discriminator phase of the same step only: the
discriminator phase consumes them and :meth:`CycleGAN.set_step` drops anything left, so nothing
crosses a step and a checkpoint (taken between steps) needs only the pools.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.errors import ConfigError, GankitError
from gankit.losses import least_squares_discriminator_loss
from gankit.nets.translation import (
    Norm,
    PatchGANDiscriminator,
    ResNetTranslator,
    check_patch_fits,
)
from gankit.objectives.base import Batch, Phase
from gankit.objectives.registry import OBJECTIVES
from gankit.objectives.translation import TranslationObjective


class CycleGANConfig(ModelConfig):
    g_width: int = Field(64, ge=1)  # filters of the generators' c7s1 layer (c7s1-64)
    d_width: int = Field(64, ge=1)  # filters of the PatchGAN's first layer (C64)
    # residual blocks R256; None: the paper's rule, 9 at 256 px and above, else 6 (appendix 7.2)
    n_blocks: int | None = Field(None, ge=0)
    d_layers: int = Field(3, ge=1)  # PatchGAN stride-2 layers: 3 -> 70x70 patches, 2 -> 34x34
    norm: Norm = "instance"  # instance | batch | none (per-image statistics in evaluation)
    lambda_cycle: float = Field(10.0, ge=0)  # lambda: the weight of L_cyc (eq. 3)
    identity_weight: float = Field(0.5, ge=0)  # L_identity's weight in units of lambda (0: off)
    pool_size: int = Field(50, ge=0)  # generated images kept per direction for D (0: none)


class ImagePool:
    """A history of generated images for the discriminator (Shrivastava et al. 2017, section
    2.3; CycleGAN section 4).

    :meth:`query` takes a batch of new fakes and returns as many images for D: while the pool
    holds fewer than ``size`` images each new one is stored and returned; once full, each new one
    is, with probability 1/2, swapped for a uniformly chosen stored image (the stored one is
    returned, the new one kept), else returned as it is. The choices come from the global torch
    RNG (which checkpoints save), so a resumed run makes the same ones.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0  # images stored so far (at most size)
        self.images: torch.Tensor | None = None  # (size, C, H, W), the first ``count`` filled

    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """fakes: (N, C, H, W), detached -> (N, C, H, W) images for the discriminator."""
        if self.size == 0:
            return fakes
        if self.images is None:
            self.images = fakes.new_zeros((self.size, *fakes.shape[1:]))
        returned = []
        for image in fakes:
            if self.count < self.size:
                self.images[self.count] = image
                self.count += 1
                returned.append(image)
            elif torch.rand(()) < 0.5:  # the CPU generator: no device sync
                index = int(torch.randint(self.size, ()))
                returned.append(self.images[index].clone())
                self.images[index] = image
            else:
                returned.append(image)
        return torch.stack(returned)

    def state_dict(self) -> dict[str, Any]:
        """{"count": int, "images": (count, C, H, W)} (an empty tensor while nothing is stored)."""
        stored = self.images[: self.count].clone() if self.images is not None else torch.empty(0)
        return {"count": self.count, "images": stored}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.images = None
        if self.count:
            stored = state["images"]
            self.images = stored.new_zeros((self.size, *stored.shape[1:]))
            self.images[: self.count] = stored


@OBJECTIVES.register("cyclegan")
class CycleGAN(TranslationObjective):
    """Two ResNet translators and two PatchGANs with LSGAN, cycle and identity losses."""

    Config = CycleGANConfig
    description = "Zhu et al. 2017: unpaired A<->B, ResNet G/F, 70x70 PatchGANs, LSGAN + cycle"
    discriminators = ("discriminator", "discriminator_a")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pool_size = self.model_cfg.pool_size
        self.pools = {"a": ImagePool(pool_size), "b": ImagePool(pool_size)}
        # This step's generator-phase batch and fakes for its D phase, all detached:
        # {"real_a": a, "real_b": b, "fake_a": F(b), "fake_b": G(a)}; None between steps.
        self._step_images: dict[str, torch.Tensor] | None = None

    @property
    def n_blocks(self) -> int:
        """Residual blocks: ``model.n_blocks``, or 9 at 256 px and above and 6 below."""
        m, resolution = self.model_cfg, self.data_cfg.resolution
        return m.n_blocks if m.n_blocks is not None else (9 if resolution >= 256 else 6)

    def build(self) -> dict[str, nn.Module]:
        m, data = self.model_cfg, self.data_cfg
        channels_a, channels_b = data.domain_a_channels, data.channels
        check_patch_fits(data.resolution, m.d_layers)
        if m.identity_weight > 0 and channels_a != channels_b:
            raise ConfigError(
                f"model.identity_weight={m.identity_weight} compares G(b) with b, which needs "
                f"domains of equal channels (A: {channels_a}, B: {channels_b}): set "
                "model.identity_weight=0"
            )

        def translator(fan_in: int, fan_out: int) -> nn.Module:
            return ResNetTranslator(
                in_channels=fan_in,
                out_channels=fan_out,
                width=m.g_width,
                n_blocks=self.n_blocks,
                norm=m.norm,
            )

        def discriminator(channels: int) -> nn.Module:
            return PatchGANDiscriminator(
                in_channels=channels, width=m.d_width, layers=m.d_layers, norm=m.norm
            )

        return {
            "generator": translator(channels_a, channels_b),  # G: A -> B
            "generator_ba": translator(channels_b, channels_a),  # F: B -> A
            "discriminator": discriminator(channels_b),  # D_B
            "discriminator_a": discriminator(channels_a),  # D_A
        }

    def phases(self) -> list[Phase]:
        """G and F on a batch, then D_B and D_A on the same batch (no data of their own)."""
        return [
            Phase("generator", ("generator", "generator_ba"), role="generator"),
            Phase("discriminator", ("discriminator", "discriminator_a"), needs_data=False),
        ]

    def set_step(self, step: int) -> None:
        """A new step: nothing of the last one's generator phase is judged in this one."""
        self._step_images = None

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``generator``: on ``batch``. ``discriminator``: with no batch (the trainer's call), on
        the real images and fakes of this step's generator phase; given a batch (a caller of
        its own), on that batch with fakes made from it."""
        if phase == "generator":
            assert batch is not None, "the generator phase translates a batch"
            return self.generator_loss(batch["a"], batch["b"])
        if phase == "discriminator":
            images, self._step_images = self._step_images, None
            if batch is not None:
                return self.discriminator_loss(batch["a"], batch["b"])
            if images is None:
                raise GankitError(
                    "cyclegan's discriminator phase judges the batch of the same step's "
                    "generator phase, and none ran before it in this step"
                )
            fakes = {"a": images["fake_a"], "b": images["fake_b"]}
            return self.discriminator_loss(images["real_a"], images["real_b"], fakes)
        raise KeyError(phase)

    # ------------------------------------------------------------------------------------------
    # The loss terms; real_a: (N, C, H, W) from A, real_b: (N, C, H, W) from B, both in [-1, 1]

    @staticmethod
    def adversarial_loss(fake_scores: torch.Tensor) -> torch.Tensor:
        """E[(D(fake) - 1)^2]: the generators' least-squares L_GAN (section 4; not halved)."""
        return (fake_scores.float() - 1).square().mean()

    def generator_terms(
        self, real_a: torch.Tensor, real_b: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The unweighted terms {"gan": L_GAN(G, D_B) + L_GAN(F, D_A), "cycle": L_cyc (eq. 2),
        "identity": L_identity (section 5.2; only when its weight is > 0)} and the fakes
        {"a": F(b), "b": G(a)}. L1 norms are means over pixels."""
        g, f = self.networks["generator"], self.networks["generator_ba"]
        fake_b, fake_a = g(real_a), f(real_b)
        terms = {
            "gan": self.adversarial_loss(self.networks["discriminator"](fake_b))
            + self.adversarial_loss(self.networks["discriminator_a"](fake_a)),
            "cycle": l1(f(fake_b), real_a) + l1(g(fake_a), real_b),
        }
        if self.model_cfg.identity_weight > 0:
            terms["identity"] = l1(g(real_b), real_b) + l1(f(real_a), real_a)
        return terms, {"a": fake_a, "b": fake_b}

    def generator_loss(
        self, real_a: torch.Tensor, real_b: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_GAN(G, D_B) + L_GAN(F, D_A) + lambda L_cyc + identity_weight lambda L_identity
        (eq. 3 and section 5.2). The batch and its fakes are kept, detached, for this step's
        discriminator phase."""
        m = self.model_cfg
        terms, fakes = self.generator_terms(real_a, real_b)
        loss = terms["gan"] + m.lambda_cycle * terms["cycle"]
        if "identity" in terms:
            loss = loss + m.identity_weight * m.lambda_cycle * terms["identity"]
        self._step_images = {
            "real_a": real_a.detach(),
            "real_b": real_b.detach(),
            **{f"fake_{domain}": fake.detach().float() for domain, fake in fakes.items()},
        }
        stats = {f"loss_{name}": term.detach() for name, term in terms.items()}
        return loss, {"loss_g": loss.detach(), **stats}

    def discriminator_loss(
        self,
        real_a: torch.Tensor,
        real_b: torch.Tensor,
        fakes: dict[str, torch.Tensor] | None = None,  # {"a": F(b), "b": G(a)}, (N, C, H, W)
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """1/2 [E(D_B(b) - 1)^2 + E D_B(fake_b)^2] + the same for D_A (eq. 1 in its
        least-squares form, halved: appendix 7.1), the fakes drawn through the pools. The
        trainer passes the generator phase's batch and fakes; without ``fakes`` they are made
        here from ``real_a``, ``real_b`` (without a graph into the generators)."""
        if fakes is None:
            with torch.no_grad():
                fakes = {
                    "a": self.networks["generator_ba"](real_b).float(),
                    "b": self.networks["generator"](real_a).float(),
                }
        stats: dict[str, torch.Tensor] = {}
        loss = real_a.new_zeros((), dtype=torch.float32)
        reals = {"a": real_a, "b": real_b}
        for domain, name in (("b", "discriminator"), ("a", "discriminator_a")):  # D_B, D_A
            discriminator, real = self.networks[name], reals[domain]
            fake = self.pools[domain].query(fakes[domain]).to(real.dtype)
            real_scores, fake_scores = discriminator(real), discriminator(fake)
            loss = loss + least_squares_discriminator_loss(real_scores, fake_scores, a=0.0, b=1.0)
            stats[f"d_{domain}_real"] = real_scores.detach().float().mean()  # near 1 when D wins
            stats[f"d_{domain}_fake"] = fake_scores.detach().float().mean()  # near 0 when D wins
        return loss, {"loss_d": loss.detach(), **stats}

    # ------------------------------------------------------------------------------------------
    # State outside the networks

    def extra_state(self) -> dict[str, Any]:
        """The pools' contents and fill counts (a step's batch and fakes never outlive it)."""
        return {f"pool_{domain}": pool.state_dict() for domain, pool in self.pools.items()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for domain, pool in self.pools.items():
            pool.load_state_dict(state[f"pool_{domain}"])
        self._step_images = None


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference, in fp32: ||x - y||_1 / (number of elements)."""
    return (x.float() - y.float()).abs().mean()
