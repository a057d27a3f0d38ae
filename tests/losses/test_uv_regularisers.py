"""The nonlinear 3DMM's UV-space regularisers against brute-force loops over texels (Eq. 8, 9, 10, 14, 16)."""

import math

import pytest
import torch

from facezoo.losses.uv_regularisers import (
    albedo_constancy,
    albedo_symmetry,
    chromaticity,
    residual_magnitude,
    residual_soft_symmetry,
    shape_smoothness,
)

torch.manual_seed(0)
H, W = 4, 5


def _mask():
    m = torch.ones(1, 1, H, W)
    m[0, 0, 0, 0] = m[0, 0, 3, 1] = m[0, 0, 2, 4] = 0
    return m


def test_albedo_symmetry_brute_force():
    a, m = torch.rand(2, 3, H, W), _mask()
    total = count = 0.0
    for b in range(2):
        for r in range(H):
            for c in range(W):
                if m[0, 0, r, c] and m[0, 0, r, W - 1 - c]:
                    total += float((a[b, :, r, c] - a[b, :, r, W - 1 - c]).abs().mean())
                    count += 1
    assert float(albedo_symmetry(a, m)) == pytest.approx(total / count, rel=1e-5)
    sym = torch.rand(1, 3, H, W)
    sym = (sym + sym.flip(-1)) / 2
    assert float(albedo_symmetry(sym)) < 1e-7


def test_albedo_constancy_brute_force_with_chromaticity_weights():
    a, img, m = torch.rand(1, 3, H, W), torch.rand(1, 3, H, W) + 0.1, _mask()
    alpha, p = 15.0, 0.8
    c = img / img.norm(dim=1, keepdim=True)
    total = count = 0.0
    for r in range(H):
        for col in range(W):
            for dr, dc in ((0, 1), (1, 0)):
                r2, c2 = r + dr, col + dc
                if r2 >= H or c2 >= W or not (m[0, 0, r, col] and m[0, 0, r2, c2]):
                    continue
                w = math.exp(-alpha * float((c[0, :, r, col] - c[0, :, r2, c2]).norm()))
                total += w * float((a[0, :, r, col] - a[0, :, r2, c2]).norm()) ** p
                count += 1
    got = albedo_constancy(a, chromaticity(img), m, alpha=alpha, p=p)
    assert float(got) == pytest.approx(total / count, rel=1e-4)
    # where the input's chromaticity changes, the albedo may change too: a large alpha turns those pairs off
    edge = torch.zeros(1, 3, 1, 2)
    edge[0, 0, 0, 1] = 1.0
    chroma = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]])
    assert float(albedo_constancy(edge, chroma, alpha=15.0)) < 1e-6
    assert float(albedo_constancy(edge, torch.ones(1, 3, 1, 2))) == pytest.approx(1.0, rel=1e-4)


def test_shape_smoothness_brute_force():
    s, m = torch.randn(2, 3, H, W), _mask()
    total = count = 0.0
    for b in range(2):
        for r in range(H):
            for c in range(W):
                if not m[0, 0, r, c]:
                    continue
                nb = [(r + dr, c + dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))]
                nb = [(i, j) for i, j in nb if 0 <= i < H and 0 <= j < W and m[0, 0, i, j]]
                if not nb:
                    continue
                mean = sum(s[b, :, i, j] for i, j in nb) / len(nb)
                total += float((s[b, :, r, c] - mean).norm())
                count += 1
    assert float(shape_smoothness(s, m)) == pytest.approx(total / count, rel=1e-4)
    # a flat map scores 0 (a constant surface has no Laplacian)
    assert float(shape_smoothness(torch.ones(1, 3, H, W) * 7.0, m)) < 1e-3


def test_residual_magnitude_hand_values_and_valid_rows():
    r = torch.tensor([[[[1.0, -3.0]]], [[[100.0, 100.0]]]])
    assert float(residual_magnitude(r, valid=torch.tensor([True, False]))) == 2.0
    assert float(residual_magnitude(r[:1])) == 2.0


def test_residual_soft_symmetry_copies_the_seen_side_only():
    dz = torch.tensor([[[[0.0, 5.0, 2.0]]]], requires_grad=True)
    occluded = torch.tensor([[[[1.0, 0.0, 0.0]]]])  # the left texel is unseen; its mirror is the right one
    loss = residual_soft_symmetry(dz, occluded)
    assert float(loss.detach()) == pytest.approx(2.0 / 3.0)
    loss.backward()
    assert dz.grad[0, 0, 0].tolist() == pytest.approx([-1.0 / 3.0, 0.0, 0.0])  # the seen side is a target


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="chromaticity"):
        albedo_constancy(torch.rand(1, 3, 2, 2), torch.rand(1, 3, 2, 3))
    with pytest.raises(ValueError, match="mask"):
        albedo_symmetry(torch.rand(1, 3, 2, 2), torch.ones(1, 1, 3, 3))
