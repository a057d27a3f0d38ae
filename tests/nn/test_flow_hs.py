"""The weight-free pyramidal Horn-Schunck flow against images with a known synthetic flow."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facezoo.nn import HornSchunckConfig, HornSchunckFlow
from facezoo.nn.flow_hs import backward_warp


def textured(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = sum(
        F.interpolate(torch.rand(batch, 3, r, r, generator=g), size=(size, size), mode="bicubic")
        for r in (4, 8, 16)
    )
    return (out / 3).clamp(0, 1)


def known_flow(size: int) -> torch.Tensor:
    """A smooth flow of 1-4 px: a translation plus sinusoids (pixels, (dx, dy))."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    dx = 2.0 + 1.5 * torch.sin(2 * torch.pi * ys / size)
    dy = -1.0 + 1.0 * torch.cos(2 * torch.pi * xs / size)
    return torch.stack((dx, dy))[None]


def test_backward_warp_integer_shift():
    x = torch.arange(20.0).view(1, 1, 4, 5)
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 1.0  # out(p) = x(p + (1, 0))
    out = backward_warp(x, flow)
    assert torch.equal(out[..., :-1], x[..., 1:]) and torch.equal(out[..., -1], x[..., -1])  # border


def test_endpoint_error_on_a_known_smooth_flow():
    size = 48
    image2 = textured(2, size)
    truth = known_flow(size).expand(2, -1, -1, -1)
    image1 = backward_warp(image2, truth)  # image2(p + flow(p)) = image1(p): the estimator's convention
    est = HornSchunckFlow()(image1, image2)
    epe = (est - truth).norm(dim=1)[:, 6:-6, 6:-6].mean()  # away from the replicated borders
    assert float(truth.norm(dim=1).mean()) > 2.0
    assert float(epe) < 0.2, float(epe)  # measured 0.14 px at 64 px (benchmarks/mvfnet.py reports it)
    zero = (torch.zeros_like(truth) - truth).norm(dim=1)[:, 6:-6, 6:-6].mean()
    assert float(epe) < 0.1 * float(zero)


def test_identical_images_give_zero_flow_and_a_translation_its_shift():
    a = textured(1, 32, seed=3)
    assert float(HornSchunckFlow()(a, a).abs().max()) < 1e-6
    shift = torch.tensor([1.5, -0.5]).view(1, 2, 1, 1).expand(1, 2, 32, 32)
    est = HornSchunckFlow()(backward_warp(a, shift), a)[..., 6:-6, 6:-6]
    assert torch.allclose(est.mean((2, 3)), torch.tensor([[1.5, -0.5]]), atol=0.1)


def test_flow_is_differentiable_and_its_gradient_moves_images_toward_alignment():
    """|F|^2 of image2 = image1 shifted by t decreases as t shrinks: d|F|^2/dt > 0 at t = 2 (through the
    unrolled, checkpointed sweeps)."""
    a = textured(1, 32, seed=5)
    t = torch.tensor(2.0, requires_grad=True)
    shift = torch.stack((t, torch.zeros(()))).view(1, 2, 1, 1).expand(1, 2, 32, 32)
    loss = HornSchunckFlow()(a, backward_warp(a, shift)).square().mean()
    (g,) = torch.autograd.grad(loss, t)
    assert float(g) > 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="image1"):
        HornSchunckFlow()(torch.rand(3, 8, 8), torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="must agree"):
        HornSchunckFlow()(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="alpha"):
        HornSchunckFlow(HornSchunckConfig(alpha=0.0))
