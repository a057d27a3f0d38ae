"""PWC-Net's correlation and warping against brute-force references."""

from __future__ import annotations

import torch

from facezoo.nn import PWCNet, correlation, warp


def test_correlation_matches_brute_force():
    torch.manual_seed(0)
    f1, f2 = torch.randn(2, 5, 6, 7, dtype=torch.float64), torch.randn(2, 5, 6, 7, dtype=torch.float64)
    d = 2
    out = correlation(f1, f2, d)
    assert out.shape == (2, 25, 6, 7)
    ref = torch.zeros_like(out)
    for b in range(2):
        for y in range(6):
            for x in range(7):
                for dy in range(-d, d + 1):
                    for dx in range(-d, d + 1):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < 6 and 0 <= xx < 7:
                            ch = (dy + d) * (2 * d + 1) + (dx + d)
                            ref[b, ch, y, x] = (f1[b, :, y, x] * f2[b, :, yy, xx]).sum() / 5
    assert torch.allclose(out, ref)


def test_warp_integer_shift_and_out_of_image_mask():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 10, dtype=torch.float64)
    flow = torch.zeros(1, 2, 8, 10, dtype=torch.float64)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # out(y, x) = x(y - 1, x + 2)
    out = warp(x, flow)
    assert torch.allclose(out[:, :, 1:, :-2], x[:, :, :-1, 2:])
    assert torch.all(out[:, :, 0] == 0) and torch.all(out[:, :, :, -2:] == 0)


def test_warp_gradcheck():
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    flow = (0.3 * torch.randn(1, 2, 5, 6, dtype=torch.float64)).requires_grad_(True)
    # stay off the mask threshold and integer sample positions, where warp is not differentiable
    torch.autograd.gradcheck(lambda a, f: warp(a, f)[:, :, 1:-1, 1:-1], (x, flow))


def test_flow_is_differentiable_in_both_images_and_sized_like_the_input():
    net = PWCNet().eval()
    a = torch.rand(1, 3, 50, 70, requires_grad=True)
    b = torch.rand(1, 3, 50, 70, requires_grad=True)
    flow = net(a, b)
    assert flow.shape == (1, 2, 50, 70)
    flow.square().sum().backward()  # MVF-Net's alignment loss
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
