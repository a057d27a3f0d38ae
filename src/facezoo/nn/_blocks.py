"""Small building blocks shared by several networks."""

from __future__ import annotations

from collections.abc import Sequence

import torch  # noqa: F401 (the doctest uses it)
from torch import nn


def strided_convs(
    in_channels: int, channels: Sequence[int], dims: int = 2, norm: bool = False
) -> list[nn.Module]:
    """``len(channels)`` 3x3 convolutions of stride 2 (padding 1, so each halves the resolution), the i-th
    with ``channels[i]`` outputs, each followed by BatchNorm when ``norm`` (the convolution then has no
    bias) and a ReLU. ``dims``: 2 (images) or 3 (volumes). Returns the layers (for a ``Sequential``).

    Example:
        >>> layers = strided_convs(3, (8, 16))
        >>> nn.Sequential(*layers)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 16, 8, 8])
    """
    if dims not in (2, 3):
        raise ValueError(f"dims: expected 2 or 3, got {dims!r}")
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    batchnorm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    layers: list[nn.Module] = []
    for c in channels:
        layers.append(conv(in_channels, c, 3, stride=2, padding=1, bias=not norm))
        if norm:
            layers.append(batchnorm(c))
        layers.append(nn.ReLU(inplace=True))
        in_channels = c
    return layers
