"""A weight-free differentiable optical flow: unrolled coarse-to-fine Horn–Schunck (Horn & Schunck 1981).

MVF-Net's alignment loss (mvfnet.txt Eq. 8) needs a *frozen, differentiable* dense flow estimator whose
output can be back-propagated to the images; the paper uses PWC-Net (:class:`facezoo.nn.PWCNet`, which needs
trained weights). This module is the documented weight-free alternative that facezoo uses when no PWC-Net
weights are given, so that every config trains out of the box.

Method (all plain tensor ops, so gradients reach both images through every iteration):

* grey images (mean of RGB), a Gaussian pyramid of ``levels`` levels (blur + 2x average pooling);
* from the coarsest level up: upsample the flow (x2 in size and value), then ``warps`` times backward-warp
  the second image by the current flow (bilinear, border padding) and solve the linearised Horn–Schunck
  energy ``sum (I_x du + I_y dv + I_t)^2 + alpha^2 |grad(u)|^2`` for the increment with ``iterations``
  Jacobi sweeps (``u <- u_avg - I_x (I_x (u_avg - u0) + I_y (v_avg - v0) + I_t) / (alpha^2 + I_x^2 + I_y^2)``,
  ``u_avg`` the 3x3 HS neighbourhood average); the derivatives are central differences of the mean of the
  first and the warped second image.

Output convention as :class:`~facezoo.nn.PWCNet`: ``flow [B,2,H,W]`` in pixels (dx, dy) such that
``image2(p + flow(p)) ~ image1(p)``. Accuracy on smooth known flows: ``tests/nn/test_flow_hs.py`` (its
endpoint error is printed by ``benchmarks/mvfnet.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

_GAUSS5 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


@dataclass(frozen=True)
class HornSchunckConfig:
    """Pyramidal Horn–Schunck configuration.

    Attributes:
        levels: pyramid levels (each halves the size; the coarsest is at least 8 px).
        warps: warping passes per level.
        iterations: Jacobi sweeps per warp.
        alpha: smoothness weight (intensities in [0, 1] per pixel); larger = smoother flow.
        checkpoint_every: when gradients are on, keep only every ``checkpoint_every``-th iterate and recompute
            the others in the backward pass (activation checkpointing; 0 = keep all). The unrolled sweeps
            otherwise hold ~1.5 flow-sized tensors each: ~4.6 GB for 48 pairs at 224^2.
    """

    levels: int = 4
    warps: int = 2
    iterations: int = 15
    alpha: float = 0.04
    checkpoint_every: int = 5


def _blur(x: Tensor) -> Tensor:
    k = _GAUSS5.to(x)
    c = x.shape[1]
    x = F.pad(x, (2, 2, 2, 2), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def backward_warp(x: Tensor, flow: Tensor) -> Tensor:
    """``out(p) = x(p + flow(p))``, bilinear, border padding; ``x [B,C,H,W]``, ``flow [B,2,H,W]`` (pixels)."""
    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=x.dtype), torch.arange(w, device=x.device, dtype=x.dtype),
        indexing="ij",
    )  # fmt: skip
    gx = (2.0 * (xs + flow[:, 0]) + 1.0) / w - 1.0
    gy = (2.0 * (ys + flow[:, 1]) + 1.0) / h - 1.0
    grid = torch.stack((gx, gy), -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _replicate1(x: Tensor) -> Tensor:
    """Replicate-pad the last two axes by one (two ``cat``s: several times faster than ``F.pad``'s
    replicate mode on CPU for these small maps)."""
    x = torch.cat((x[..., :1, :], x, x[..., -1:, :]), -2)
    return torch.cat((x[..., :1], x, x[..., -1:]), -1)


def _hs_average(x: Tensor) -> Tensor:
    """Horn–Schunck's neighbourhood average (edge weights 1/6, corners 1/12), replicate borders; slices, not
    a convolution (cheaper for these 2-channel maps)."""
    p = _replicate1(x)
    edges = p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]
    corners = p[..., :-2, :-2] + p[..., :-2, 2:] + p[..., 2:, :-2] + p[..., 2:, 2:]
    return (2.0 * edges + corners) / 12.0


def _gradients(x: Tensor) -> tuple[Tensor, Tensor]:
    p = _replicate1(x)
    return (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2.0, (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2.0


class HornSchunckFlow(nn.Module):
    """``forward(image1, image2) -> flow [B,2,H,W]`` (pixels; ``image2(p + flow(p)) ~ image1(p)``).

    ``image1``, ``image2``: ``[B,C,H,W]`` in [0, 1] (C = 3 RGB or 1 grey), equal shapes. No parameters.

    Example:
        >>> a = torch.rand(1, 3, 32, 32)
        >>> flow = HornSchunckFlow()(a, a)                 # identical images: zero flow
        >>> float(flow.abs().max()) < 1e-6
        True
    """

    def __init__(self, config: HornSchunckConfig = HornSchunckConfig()) -> None:
        super().__init__()
        if (
            config.levels < 1 or config.warps < 1 or config.iterations < 1 or not config.alpha > 0
            or config.checkpoint_every < 0
        ):  # fmt: skip
            raise ValueError(f"HornSchunckConfig: levels, warps, iterations >= 1 and alpha > 0, got {config}")
        self.config = config

    def _sweeps(self, flow: Tensor, f0: Tensor, grad: Tensor, it: Tensor, denom: Tensor, n: int) -> Tensor:
        for _ in range(n):
            avg = _hs_average(flow)
            r = ((grad * (avg - f0)).sum(1, keepdim=True) + it) / denom
            flow = avg - grad * r
        return flow

    def _level(self, i1: Tensor, i2: Tensor, flow: Tensor) -> Tensor:
        cfg = self.config
        a2 = cfg.alpha**2
        every = cfg.checkpoint_every if torch.is_grad_enabled() and cfg.checkpoint_every > 0 else 0
        for _ in range(cfg.warps):
            w2 = backward_warp(i2, flow)
            ix, iy = _gradients(0.5 * (i1 + w2))
            it = w2 - i1
            grad = torch.cat((ix, iy), 1)  # [B,2,H,W]
            denom = a2 + ix * ix + iy * iy
            f0, left = flow, cfg.iterations
            while left > 0:
                n = min(left, every) if every else left
                if every:
                    flow = checkpoint(self._sweeps, flow, f0, grad, it, denom, n, use_reentrant=False)
                else:
                    flow = self._sweeps(flow, f0, grad, it, denom, n)
                left -= n
        return flow

    def forward(self, image1: Tensor, image2: Tensor) -> Tensor:
        for name, x in (("image1", image1), ("image2", image2)):
            if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
                raise ValueError(f"HornSchunckFlow: {name} must be a float [B,C,H,W] tensor, got {type(x)}")
        if image1.shape != image2.shape:
            raise ValueError(
                f"HornSchunckFlow: image1 {tuple(image1.shape)} and image2 {tuple(image2.shape)} must agree"
            )
        g1, g2 = image1.mean(1, keepdim=True), image2.mean(1, keepdim=True)
        pyr = [(g1, g2)]
        for _ in range(self.config.levels - 1):
            a, b = pyr[-1]
            if min(a.shape[-2:]) < 16:
                break
            pyr.append((F.avg_pool2d(_blur(a), 2), F.avg_pool2d(_blur(b), 2)))
        flow = None
        for a, b in reversed(pyr):
            if flow is None:
                flow = a.new_zeros(a.shape[0], 2, *a.shape[-2:])
            else:
                sy, sx = a.shape[-2] / flow.shape[-2], a.shape[-1] / flow.shape[-1]
                flow = F.interpolate(flow, size=a.shape[-2:], mode="bilinear", align_corners=False)
                flow = flow * torch.tensor([sx, sy], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)
            flow = self._level(_blur(a), _blur(b), flow)
        return flow


__all__ = ["HornSchunckConfig", "HornSchunckFlow", "backward_warp"]
