"""TF Inception (2015-12-05) with its 1008-way classifier, for the Inception Score.

The FID TorchScript file (``inception.py``) stops at pool3, but the Inception Score (Salimans et
al. 2016) needs class probabilities. This module rebuilds the same network in plain torch with the
module names of pytorch-fid's ``fid_inception_v3`` (torchvision's InceptionV3 layout with the
``FIDInceptionA/C/E_1/E_2`` blocks), so that its widely used weights file
``pt_inception-2015-12-05-6726825d.pth`` loads as is.

How it differs from torchvision's InceptionV3 (Szegedy et al. 2016), following the TF graph:
average pools in the A, C and E blocks do not count padding (``count_include_pad=False``); the
last E block pools with max instead of average; the classifier has 1008 outputs; BN eps is 1e-3;
the input is used as given, in [-1, 1] (``inception.preprocess``; no ImageNet re-normalisation).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import MetricError
from gankit.metrics.inception import RESIZE_METHODS, batched_forward, file_sha256

IS_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
IS_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + IS_WEIGHTS_FILENAME
)
IS_WEIGHTS_ENV = "GANKIT_IS_WEIGHTS"
IS_SHA256_PREFIX = "6726825d"  # torch.hub convention: the file name ends in its sha256's first 8
NUM_CLASSES = 1008  # the 2015-12-05 graph's classifier: 1000 ImageNet classes + 8 unused


class ISUnavailable(MetricError):
    """The Inception Score weights file is missing, corrupt or not the expected one."""


class ConvBN(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU: one TF ``conv`` node.

    x: (N, C_in, H, W) -> (N, C_out, H', W'). State-dict keys: ``conv.weight``, ``bn.*``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """TF's 3x3/1 SAME average pool: the padding is not counted in the mean."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block (``Mixed_5b/5c/5d``): 1x1, 5x5, double 3x3 and pooled branches.

    x: (N, C_in, 35, 35) -> (N, 224 + pool_features, 35, 35).
    """

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(in_channels, 64, 1)
        self.branch5x5_1 = ConvBN(in_channels, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool_3x3(x)),
        ]
        return torch.cat(branches, dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (``Mixed_6a``). x: (N, 288, 35, 35) -> (N, 768, 17, 17)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = ConvBN(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ]
        return torch.cat(branches, dim=1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (``Mixed_6b..6e``).

    x: (N, 768, 17, 17) -> (N, 768, 17, 17); ``channels_7x7`` is the inner width.
    """

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = ConvBN(in_channels, 192, 1)
        self.branch7x7_1 = ConvBN(in_channels, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(in_channels, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = self.branch7x7dbl_1(x)
        for layer in (
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            double = layer(double)
        branches = [
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            double,
            self.branch_pool(_avg_pool_3x3(x)),
        ]
        return torch.cat(branches, dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (``Mixed_7a``). x: (N, 768, 17, 17) -> (N, 1280, 8, 8)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(in_channels, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tower = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            tower = layer(tower)
        branches = [
            self.branch3x3_2(self.branch3x3_1(x)),
            tower,
            F.max_pool2d(x, kernel_size=3, stride=2),
        ]
        return torch.cat(branches, dim=1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3/3x1 outputs (``Mixed_7b``: average pool, ``Mixed_7c``: max pool).

    x: (N, C_in, 8, 8) -> (N, 2048, 8, 8). ``pool``: "avg" (TF ``mixed_9``) or "max" (``mixed_10``;
    pytorch-fid's ``FIDInceptionE_2``).
    """

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        assert pool in ("avg", "max")
        self.pool = pool
        self.branch1x1 = ConvBN(in_channels, 320, 1)
        self.branch3x3_1 = ConvBN(in_channels, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.pool == "avg":
            pooled = _avg_pool_3x3(x)
        else:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        branches = [
            self.branch1x1(x),
            self.branch3x3_2a(single),
            self.branch3x3_2b(single),
            self.branch3x3dbl_3a(double),
            self.branch3x3dbl_3b(double),
            self.branch_pool(pooled),
        ]
        return torch.cat(branches, dim=1)


class TFInceptionLogits(nn.Module):
    """TF Inception (2015-12-05) up to its 1008-way logits, in pytorch-fid's module layout.

    x: (N, 3, 299, 299) float in [-1, 1] (``inception.preprocess``) -> (N, 1008) logits.
    ``pool3(x)`` gives the (N, 2048) features the FID network outputs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, NUM_CLASSES)

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, 299, 299) in [-1, 1] -> (N, 2048) global-average-pooled features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # 147 -> 73
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # 71 -> 35
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e):
            x = block(x)
        for block in (self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor, fc_bias: bool = True) -> torch.Tensor:
        """x: (N, 3, 299, 299) in [-1, 1] -> (N, 1008) logits (without the fc bias if asked)."""
        features = self.pool3(x)
        return F.linear(features, self.fc.weight, self.fc.bias if fc_bias else None)


def default_is_weights_path() -> Path:
    """Where gankit looks for the IS weights by default: ~/.cache/gankit/weights/<file>."""
    return Path.home() / ".cache" / "gankit" / "weights" / IS_WEIGHTS_FILENAME


def find_is_weights(path: str | os.PathLike | None = None) -> Path:
    """``path``, else $GANKIT_IS_WEIGHTS, else the default path, else torch.hub's cached copy.

    torch.hub's cache (~/.cache/torch/hub/checkpoints) is where pytorch-fid downloads the file.
    Raises ISUnavailable (one line: the URL and where to put the file) when there is none.
    """
    chosen = path if path is not None else os.environ.get(IS_WEIGHTS_ENV) or None
    if chosen is not None:
        candidates = [Path(chosen).expanduser()]
    else:
        hub = Path(torch.hub.get_dir()) / "checkpoints" / IS_WEIGHTS_FILENAME
        candidates = [default_is_weights_path(), hub]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ISUnavailable(
        f"Inception Score weights not found at {candidates[0]}: download {IS_WEIGHTS_URL} "
        f"to {default_is_weights_path()} or set {IS_WEIGHTS_ENV} to the file"
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The file's state dict, loaded with ``weights_only=True`` (no code runs from the file)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which, in one line
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ISUnavailable(f"cannot read Inception Score weights {path}: {reason}") from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ISUnavailable(f"Inception Score weights {path} are not a state dict of tensors")
    return state


def _load_weights(network: TFInceptionLogits, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` strictly, except that old files may lack BN ``num_batches_tracked``."""
    expected = network.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        detail = (
            f"missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong_shape[:3]}"
        )
        raise ISUnavailable(f"Inception Score weights {path} do not fit the network: {detail}")
    network.load_state_dict(state, strict=False)


def load_is_network(
    path: str | os.PathLike | None = None,  # None: $GANKIT_IS_WEIGHTS, else the default path
    device: str | torch.device = "cpu",
    expected_sha256_prefix: str | None = IS_SHA256_PREFIX,  # None skips the check (tests)
) -> TFInceptionLogits:
    """The IS network with the pytorch-fid weights, in eval mode, channels_last, on ``device``.

    Raises ISUnavailable (one line) when the file is absent, does not start with the expected
    sha256 prefix, cannot be read or does not fit the network.
    """
    found = find_is_weights(path)
    if expected_sha256_prefix is not None:
        digest = file_sha256(found)
        if not digest.startswith(expected_sha256_prefix):
            raise ISUnavailable(
                f"Inception Score weights {found} have sha256 {digest[:8]}..., expected "
                f"{expected_sha256_prefix}...: download {IS_WEIGHTS_URL} again"
            )
    network = TFInceptionLogits()
    _load_weights(network, _read_state_dict(found), found)
    return network.to(device, memory_format=torch.channels_last).eval()


class InceptionLogitsExtractor:
    """Images -> TF Inception class logits (N, 1008) for the Inception Score.

    Uses the same preprocessing as the FID network (``inception.preprocess``). By default the
    fc bias is left out, as in the reference IS code (Salimans et al. 2016, which multiplies pool3
    by the ``softmax/logits/MatMul`` weights only) and torch-fidelity's ``logits_unbiased``.
    ``features()`` gives the (N, 2048) pool3 features, so this is also a FeatureExtractor.
    """

    dims: int = 2048
    num_classes: int = NUM_CLASSES

    def __init__(
        self,
        weights: str | os.PathLike | None = None,  # None: $GANKIT_IS_WEIGHTS, else default path
        device: str | torch.device = "cpu",  # where the network runs; outputs return on the CPU
        batch_size: int = 64,  # images per forward pass
        resize: str = "pil-bicubic-float",  # one of inception.RESIZE_METHODS
        fc_bias: bool = False,  # add the classifier bias (False: the reference IS protocol)
        expected_sha256_prefix: str | None = IS_SHA256_PREFIX,  # None skips the check
    ) -> None:
        if resize not in RESIZE_METHODS:
            raise MetricError(f"unknown resize method {resize!r}; choose one of {RESIZE_METHODS}")
        if batch_size < 1:
            raise MetricError(f"Inception batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.weights_path = find_is_weights(weights)
        self.network = load_is_network(self.weights_path, self.device, expected_sha256_prefix)
        self.hash = file_sha256(self.weights_path)
        self.resize = resize
        self.batch_size = batch_size
        self.fc_bias = fc_bias
        self.name = "tf-inception-2015-12-05-logits" + ("-with-fc-bias" if fc_bias else "")

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, C, H, W) uint8, C in {1, 3}, any H x W -> (N, 1008) float32 on the CPU."""

        def forward(batch: torch.Tensor) -> torch.Tensor:
            return self.network(batch, fc_bias=self.fc_bias)

        return batched_forward(forward, images, self.resize, self.batch_size, self.device)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, C, H, W) uint8 -> (N, 2048) pool3 features, float32 on the CPU."""
        return batched_forward(
            self.network.pool3, images, self.resize, self.batch_size, self.device
        )
