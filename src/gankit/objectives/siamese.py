"""Siamese GAN for HD images (the "Combo" method): patch translation judged on whole images.

Sources. The siamese adversarial loss is Pasini's "Siamese GAN" (M. Pasini 2019, "A New Way to
look at GANs": the discriminator as a siamese network that encodes real images near the origin
and fakes beyond a margin); the content loss is TraVeLGAN's transformation-vector loss (Amodio &
Krishnaswamy 2019, "TraVeLGAN: Image-to-image Translation by Transformation Vector Learning",
CVPR, section 3: L_TraVeL and the siamese network's role), with one network playing both
TraVeLGAN's discriminator D and its siamese network S.

Combo. The generator G translates S x S patches (S = ``model.patch``). A training batch of 2S x 2S
domain-A images is cut into its four S x S patches, every patch is translated by G on its own (one
batch of 4B patches) and the outputs are put back where they came from: AB = combo(A), (B, C,
2S, 2S). D judges whole 2S x 2S images, so a seam between two of G's tiles is something D can see
and G must learn to continue content across tile borders; at inference G is applied to tiles of
any image (:mod:`gankit.translate`) or to a whole image at once (``translate``).

Losses. D maps an image to a vector of ``model.vector_length`` (LENVEC) numbers. With means over
the batch, m = ``model.margin`` and ||.|| the Euclidean norm:

    L_D = E||D(B)||^2 + E[max(0, m - ||D(AB)||)^2] + lambda_travel * L_content
    L_G = lambda_adversarial * E||D(AB)||^2 + lambda_travel * L_content
          + lambda_identity * E|combo(B) - B|_1 + lambda_lowpass * E|pool_k(AB) - pool_k(A)|_1

The last two terms are optional (0 by default, which is the Combo method). ``lambda_identity``:
CycleGAN's identity mapping loss (Zhu et al. 2017, section 5.2, after Taigman et al. 2017), G
applied to real B images must leave them unchanged. Neither the travel term nor D ties a
translation's absolute colours to its input's (the transformation vectors compare images only
with each other), so when the A and B photos differ in palette as well as in style, G also
learns the palette; the identity term keeps the colour composition of the input, as it does for
CycleGAN's paintings <-> photos. ``lambda_lowpass`` (in neither paper; gankit's option for
styles that keep a picture's composition, like a painting of a photo): pool_k is a k x k mean
(k = ``model.lowpass_window``, non-overlapping), so G's translation of A must keep A's local
mean colours at that scale and may change what lies below it (strokes, texture). The identity
term constrains G only on B images; this one constrains the translations themselves against
regional colour drift.

Sign conventions: real B images are pulled to the origin of D's vector space (D minimises their
squared norm) and fakes are pushed out to at least the margin (a squared hinge on the norm: its
gradient is zero once ||D(AB)|| >= m, so D spends no capacity on fakes it already rejects, and
||D(AB)|| does not grow without bound). G pulls the vectors of its fakes to the origin, where the
reals are: on ||D(AB)|| D and G compete (D's gradient on it is outward while it is inside the
margin, G's is always inward).

Content. For a pair (i, j) of the batch, the transformation vectors v_ij = D(A_i) - D(A_j) and
v'_ij = D(AB_i) - D(AB_j) must agree (TraVeLGAN, section 3):

    L_content = E_pairs[(1 - cos(v_ij, v'_ij)) + lambda_distance * ||v_ij - v'_ij||^2]

Cosine similarity is driven to 1 (TraVeLGAN's angle term). Its squared-distance term (which also
matches the vectors' lengths) is optional: ``lambda_distance`` weights it, 0 by default. Here the
siamese network is also the adversary, and a length-matching term in D's loss rewards D for
shrinking every transformation vector (the squared distance goes to 0 with them); TraVeLGAN
keeps its separate S from that collapse with a margin loss on ||v_ij|| that the Combo method does
not have. The cosine is scale-free and leaves D no such shortcut.

Pairs: all unordered pairs i < j of the batch, B(B - 1)/2 of them. TraVeLGAN sums over all
i != j; (j, i) adds nothing (v_ji = -v_ij and both terms are even in the pair of vectors), and
the vectors are computed once per image, so all pairs cost nothing beyond indexing and, unlike
a random permutation, use every relation in the batch, draw no random numbers and give a
lower-variance loss. A batch needs at least two images.

Who trains on what. D and G *cooperate* on the content term: it is the same function of D's
vectors in both losses (TraVeLGAN trains S and G jointly on L_TraVeL). In G's step it asks G for
translations whose vectors move like the inputs' do; in D's step it asks D for a vector space in
which G's translations preserve transformation vectors (e.g. one where the content of A that
survives translation is encoded), which is what makes the term a usable signal for G. In D's step
AB is made without a graph into G (detached) for every term: G's parameters are not updated in
that phase, so this changes none of D's gradients and only skips a backward pass through G.

Networks: :class:`~gankit.nets.siamese.PatchGenerator` (fully convolutional, batch norm with running
statistics at inference, or no norm) and :class:`~gankit.nets.siamese.SiameseDiscriminator` (strided
convolutions, flatten, linear to LENVEC; ``d_detail_gain`` > 0 also feeds it the images' amplified
high-pass detail, off by default: see that class). Phases: "discriminator" then "generator", each
with a fresh batch, Adam with ``train`` settings. D sees domain A and domain B images, so both
domains need the same number of channels (``data.channels``). With ``train.diffaugment`` each image
D sees is augmented with its own random transform, except that A_i and its translation AB_i share
one (:func:`gankit.nets.augment.same_transform`): the content term then compares transformation
vectors of images that differ by the translation alone, not by two augmentations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.data.base import ImageSet
from gankit.errors import ConfigError
from gankit.nets.augment import same_transform
from gankit.nets.siamese import (
    GeneratorNorm,
    PatchGenerator,
    SiameseDiscriminator,
    cut_patches,
    join_patches,
)
from gankit.objectives.base import Batch
from gankit.objectives.registry import OBJECTIVES
from gankit.objectives.translation import TranslationObjective

Stats = dict[str, torch.Tensor]


class SiameseConfig(ModelConfig):
    patch: int = Field(64, ge=4, le=2048)  # S: G's patch side; data.resolution must be 2S
    vector_length: int = Field(128, ge=2, le=4096)  # LENVEC: length of D's output vectors
    margin: float = Field(1.0, gt=0, le=1e4)  # m: fakes are pushed to ||D(AB)|| >= m
    lambda_adversarial: float = Field(1.0, gt=0)  # weight of ||D(AB)||^2 in G's loss
    lambda_travel: float = Field(1.0, ge=0)  # weight of the content term in both losses
    lambda_distance: float = Field(0.0, ge=0)  # weight of ||v - v'||^2 inside the content term
    lambda_identity: float = Field(0.0, ge=0)  # weight of E|combo(B) - B|_1 in G's loss (0: off)
    lambda_lowpass: float = Field(0.0, ge=0)  # weight of E|pool_k(AB) - pool_k(A)|_1 (0: off)
    lowpass_window: int = Field(8, ge=1, le=4096)  # k: side of the mean pool of lambda_lowpass
    g_width: int = Field(64, ge=1)  # channels of G's stem; each downsampling doubles them
    g_downsamplings: int = Field(2, ge=0, le=6)  # G's stride-2 stages
    g_residual_blocks: int = Field(6, ge=0)  # G's residual blocks at its lowest resolution
    g_norm: GeneratorNorm = "batch"  # batch norm (running statistics at inference) | none
    g_residual: bool = False  # G outputs clamp(A + r, -1, 1), r zero at init (starts as identity)
    d_width: int = Field(64, ge=1)  # channels of D's first convolution; later ones double
    d_spectral_norm: bool = True  # spectral norm on every layer of D
    d_detail_gain: float = Field(0.0, ge=0)  # g > 0: D also sees g x the images' high-pass detail
    max_channels: int = Field(512, ge=1)  # cap on any layer's channels


# --------------------------------------------------------------------------------------------------
# The loss terms, each on D's output vectors (N, L)


def squared_norm(vectors: torch.Tensor) -> torch.Tensor:
    """||v||^2 per row: (N, L) -> (N,), in fp32."""
    return vectors.float().square().sum(dim=1)


def real_term(real_vectors: torch.Tensor) -> torch.Tensor:
    """E||D(B)||^2: D pulls real images to the origin (and G, with fakes, its own vectors)."""
    return squared_norm(real_vectors).mean()


def margin_term(fake_vectors: torch.Tensor, margin: float) -> torch.Tensor:
    """E[max(0, m - ||D(AB)||)^2]: D pushes fakes out to the margin; zero beyond it."""
    norms = torch.linalg.vector_norm(fake_vectors.float(), dim=1)
    return F.relu(margin - norms).square().mean()


def pair_indices(n: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """All unordered pairs i < j of n items: two (n (n - 1) / 2,) int64 index tensors."""
    first, second = torch.triu_indices(n, n, offset=1, device=device)
    return first, second


def content_term(
    vectors_a: torch.Tensor, vectors_ab: torch.Tensor, lambda_distance: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TraVeLGAN's transformation-vector loss over all pairs i < j of the batch.

    vectors_a: (N, L) = D(A); vectors_ab: (N, L) = D(AB), row i the translation of A_i; N >= 2.
    Returns (loss, mean cosine, mean squared distance), scalars in fp32, with
    loss = E[1 - cos(v_ij, v'_ij)] + lambda_distance * E||v_ij - v'_ij||^2,
    v_ij = D(A_i) - D(A_j), v'_ij = D(AB_i) - D(AB_j).
    """
    first, second = pair_indices(vectors_a.shape[0], vectors_a.device)
    vectors_a, vectors_ab = vectors_a.float(), vectors_ab.float()
    moves_a = vectors_a[first] - vectors_a[second]
    moves_ab = vectors_ab[first] - vectors_ab[second]
    cosine = F.cosine_similarity(moves_a, moves_ab, dim=1).mean()
    distance = (moves_a - moves_ab).square().sum(dim=1).mean()
    return (1 - cosine) + lambda_distance * distance, cosine, distance


def lowpass_term(translated: torch.Tensor, source: torch.Tensor, window: int) -> torch.Tensor:
    """E|pool_k(AB) - pool_k(A)|_1: the L1 distance of the k x k mean colours (k = window,
    non-overlapping; a remainder at the right and bottom is dropped) of the translations
    (B, C, H, W) and their sources (B, C, H, W); a scalar in fp32."""
    pooled = [F.avg_pool2d(x.float(), window) for x in (translated, source)]
    return (pooled[0] - pooled[1]).abs().mean()


# --------------------------------------------------------------------------------------------------
# The family


@OBJECTIVES.register("siamese")
class SiameseGAN(TranslationObjective):
    """Patch generator trained on reassembled 2S x 2S images against a siamese discriminator."""

    Config = SiameseConfig
    description = (
        "Siamese GAN for HD images (Combo): G on S x S patches joined into 2S x 2S images, "
        "siamese D with a margin loss, TraVeLGAN content loss"
    )
    discriminators = ("discriminator",)

    def build(self) -> dict[str, nn.Module]:
        self.check_sizes()
        m = self.model_cfg
        channels, resolution, _ = self.image_shape
        return {
            "generator": PatchGenerator(
                in_channels=channels, out_channels=channels, width=m.g_width,
                downsamplings=m.g_downsamplings, residual_blocks=m.g_residual_blocks,
                norm=m.g_norm, max_channels=m.max_channels, residual=m.g_residual,
            ),
            "discriminator": SiameseDiscriminator(
                resolution=resolution, channels=channels, vector_length=m.vector_length,
                width=m.d_width, max_channels=m.max_channels, spectral_norm=m.d_spectral_norm,
                detail_gain=m.d_detail_gain,
            ),
        }  # fmt: skip

    def check_sizes(self) -> None:
        """One-line ConfigErrors for sizes the method cannot train on."""
        patch, resolution = self.model_cfg.patch, self.data_cfg.resolution
        if resolution != 2 * patch:
            raise ConfigError(
                f"siamese cuts 2S x 2S images into four S x S patches: data.resolution="
                f"{resolution} must be 2 * model.patch = {2 * patch} (set data.resolution="
                f"{2 * patch} or model.patch={resolution // 2})"
            )
        smallest = 2 * 2**self.model_cfg.g_downsamplings
        if patch % (smallest // 2) or patch < smallest:
            raise ConfigError(
                f"model.patch={patch} must be a multiple of 2**model.g_downsamplings = "
                f"{smallest // 2} and at least {smallest} (G's lowest resolution is 2 px or more)"
            )
        window = self.model_cfg.lowpass_window
        if self.model_cfg.lambda_lowpass > 0 and resolution % window:
            raise ConfigError(
                f"model.lowpass_window={window} must divide data.resolution={resolution} "
                f"(the mean pool of lambda_lowpass tiles the 2S x 2S images)"
            )
        if self.batch_size < 2:
            raise ConfigError(
                f"train.batch_size={self.batch_size}: the siamese content loss compares "
                "pairs of images; use a batch of 2 or more"
            )

    def check_data(self, images: ImageSet) -> None:
        super().check_data(images)
        channels_a, channels_b = images.channels, images.channels_b
        if channels_a != channels_b:
            raise ConfigError(
                f"siamese needs both domains with the same channels (D embeds both): "
                f"data.source={self.data_cfg.source!r} has {channels_a} and {channels_b}"
            )

    @property
    def tile_size(self) -> int:
        """HD inference tiles are G's training patches, S x S."""
        return self.model_cfg.patch

    def combo(self, images: torch.Tensor, network: nn.Module | None = None) -> torch.Tensor:
        """Domain A (N, C, 2S, 2S) -> AB (N, C, 2S, 2S): cut into four S x S patches, each
        translated by G (one batch of 4N patches), put back in place."""
        patch = self.model_cfg.patch
        rows, cols = images.shape[-2] // patch, images.shape[-1] // patch
        generator = network or self.networks["generator"]
        return join_patches(generator(cut_patches(images, patch)), rows, cols)

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, Stats]:
        assert batch is not None, "both phases of siamese need a batch"
        if phase == "discriminator":
            return self.discriminator_loss(batch)
        if phase == "generator":
            return self.generator_loss(batch)
        raise KeyError(phase)

    def _embed(
        self, *groups: torch.Tensor, paired: tuple[int, int] | None = None
    ) -> list[torch.Tensor]:
        """D on several image batches in one pass (D has no batch statistics, so this equals
        separate passes, and spectral norm makes one power iteration): a (N_k, L) per group.

        ``paired=(i, j)``: groups i and j are row-aligned pairs (A and AB = combo(A)); with
        DiffAugment row r of both gets the same random transform, every other row its own."""
        discriminator = self.networks["discriminator"]
        sizes = [g.shape[0] for g in groups]
        ends = torch.tensor(sizes).cumsum(0).tolist()
        draws = torch.arange(ends[-1])  # row r: draw r, except that group j repeats group i
        if paired is not None:
            i, j = paired
            draws[ends[j] - sizes[j] : ends[j]] = draws[ends[i] - sizes[i] : ends[i]]
        with same_transform(discriminator, draws):
            vectors = discriminator(torch.cat(groups))
        return list(vectors.split(sizes))

    def discriminator_loss(self, batch: Batch) -> tuple[torch.Tensor, Stats]:
        """||D(B)||^2 + max(0, m - ||D(AB)||)^2 + lambda_travel * content, AB detached."""
        a, b = batch["a"], batch["b"]
        with torch.no_grad():
            fake = self.combo(a).to(b.dtype)
        real_vectors, fake_vectors, vectors_a = self._embed(b, fake, a, paired=(1, 2))
        m = self.model_cfg
        real, margin = real_term(real_vectors), margin_term(fake_vectors, m.margin)
        content, cosine, _ = content_term(vectors_a, fake_vectors, m.lambda_distance)
        loss = real + margin + m.lambda_travel * content
        return loss, {
            "loss_d": loss.detach(),
            "d_real_norm": torch.linalg.vector_norm(real_vectors.detach().float(), dim=1).mean(),
            "d_fake_norm": torch.linalg.vector_norm(fake_vectors.detach().float(), dim=1).mean(),
            "d_margin": margin.detach(),
            "d_content": content.detach(),
            "d_cosine": cosine.detach(),
        }

    def generator_loss(self, batch: Batch) -> tuple[torch.Tensor, Stats]:
        """lambda_adversarial * ||D(AB)||^2 + lambda_travel * content
        (+ lambda_identity * |combo(B) - B|_1 + lambda_lowpass * lowpass_term(AB, A)),
        AB = combo(A)."""
        a = batch["a"]
        fake = self.combo(a)
        fake_vectors, vectors_a = self._embed(fake, a.to(fake.dtype), paired=(0, 1))
        m = self.model_cfg
        adversarial = real_term(fake_vectors)
        content, cosine, distance = content_term(vectors_a, fake_vectors, m.lambda_distance)
        loss = m.lambda_adversarial * adversarial + m.lambda_travel * content
        stats = {
            "g_adversarial": adversarial.detach(),
            "g_content": content.detach(),
            "g_cosine": cosine.detach(),
            "g_distance": distance.detach(),
        }
        if m.lambda_identity > 0:
            b = batch["b"]
            identity = (self.combo(b).float() - b.float()).abs().mean()
            loss = loss + m.lambda_identity * identity
            stats["g_identity"] = identity.detach()
        if m.lambda_lowpass > 0:
            lowpass = lowpass_term(fake, a, m.lowpass_window)
            loss = loss + m.lambda_lowpass * lowpass
            stats["g_lowpass"] = lowpass.detach()
        return loss, {"loss_g": loss.detach(), **stats}
