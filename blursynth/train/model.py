"""A small coarse-to-fine deblurring network in the spirit of the papers' models.

* Nah et al. 2017 (Sec. 3): a Gaussian pyramid of K = 3 scales, each scale a stack of ResBlocks whose
  "rectified linear unit after the shortcut connection is removed"; the finer scale receives the blurry image
  of its scale concatenated with the up-sampled coarser output; a multi-scale content (MSE) loss.
* Noroozi et al. 2017 (Sec. 3): "each subgraph needs to only generate a residual image, which is then added
  to the input blurry image".

Widths and depths are tiny (default 24 channels, 2 ResBlocks per scale, ~0.1 M parameters) so that the check
trains in seconds on two CPU cores; it proves that a dataset is learnable, not state of the art.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_GAUSS = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def gaussian_down(x: torch.Tensor) -> torch.Tensor:
    """Blur with a 5-tap binomial (Gaussian) kernel and take every second pixel. Shape: (B, C, H, W) -> /2."""
    c = x.shape[1]
    k = (_GAUSS[:, None] * _GAUSS[None, :]).to(x.device, x.dtype).expand(c, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k, stride=2, groups=c)


def pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``[x, down(x), down(down(x)), ...]``, finest first."""
    out = [x]
    for _ in range(levels - 1):
        out.append(gaussian_down(out[-1]))
    return out


class ResBlock(nn.Module):
    """conv-ReLU-conv plus the input, with no ReLU after the addition (Nah et al.)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ScaleNet(nn.Module):
    """One scale: head conv, ResBlocks, tail conv to a 3-channel residual."""

    def __init__(self, in_channels: int, width: int, blocks: int) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, width, 5, padding=2)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.tail = nn.Conv2d(width, 3, 5, padding=2)
        nn.init.zeros_(self.tail.weight)  # start as the identity: output = blurry input
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(self.head(x)))


class MultiScaleDeblur(nn.Module):
    """Coarse-to-fine deblurring over a ``scales``-level Gaussian pyramid.

    Shape: (B, 3, H, W) in [0, 1] -> list of ``scales`` tensors, finest first, (B, 3, H / 2^k, W / 2^k).
    """

    def __init__(self, scales: int = 3, width: int = 24, blocks: int = 2) -> None:
        super().__init__()
        self.scales = scales
        self.nets = nn.ModuleList([ScaleNet(3 if k == scales - 1 else 6, width, blocks) for k in range(scales)])

    def forward(self, blur: torch.Tensor) -> list[torch.Tensor]:
        levels = pyramid(blur, self.scales)
        outputs: list[torch.Tensor] = [None] * self.scales  # type: ignore[list-item]
        coarse = levels[-1]
        outputs[-1] = coarse + self.nets[-1](coarse)
        for k in range(self.scales - 2, -1, -1):
            up = F.interpolate(outputs[k + 1], size=levels[k].shape[-2:], mode="bilinear", align_corners=False)
            outputs[k] = levels[k] + self.nets[k](torch.cat([levels[k], up], dim=1))
        return outputs


def multiscale_mse(outputs: list[torch.Tensor], sharp: torch.Tensor) -> torch.Tensor:
    """Nah et al.'s multi-scale content loss: the mean over scales of the MSE against the sharp pyramid."""
    targets = pyramid(sharp, len(outputs))
    return sum(F.mse_loss(o.float(), t.float()) for o, t in zip(outputs, targets, strict=True)) / len(outputs)
