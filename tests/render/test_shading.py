"""SH shading: Deep3DFace's formula written out, closed forms, Monte Carlo orthonormality, gradcheck."""

import math

import numpy as np
import pytest
import torch

from facezoo.render.shading import DEEP3D_AMBIENT, SH_A, SH_C, sh_basis, sh_shade

DT = torch.float64


def _unit(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=DT)
    return x / x.norm(dim=-1, keepdim=True)


def _deep3d_compute_color(face_texture, face_norm, gamma):
    """Deep3DFaceRecon_pytorch ParametricFaceModel.compute_color, written out."""
    a = [np.pi, 2 * np.pi / np.sqrt(3.0), 2 * np.pi / np.sqrt(8.0)]
    c = [1 / np.sqrt(4 * np.pi), np.sqrt(3.0) / np.sqrt(4 * np.pi), 3 * np.sqrt(5.0) / np.sqrt(12 * np.pi)]
    b = gamma.shape[0]
    gamma = gamma.reshape([b, 3, 9]) + torch.tensor([0.8, 0, 0, 0, 0, 0, 0, 0, 0], dtype=gamma.dtype).reshape(
        1, 1, -1
    )
    gamma = gamma.permute(0, 2, 1)
    n = face_norm
    y = torch.cat(
        [
            a[0] * c[0] * torch.ones_like(n[..., :1]),
            -a[1] * c[1] * n[..., 1:2],
            a[1] * c[1] * n[..., 2:],
            -a[1] * c[1] * n[..., :1],
            a[2] * c[2] * n[..., :1] * n[..., 1:2],
            -a[2] * c[2] * n[..., 1:2] * n[..., 2:],
            0.5 * a[2] * c[2] / np.sqrt(3.0) * (3 * n[..., 2:] ** 2 - 1),
            -a[2] * c[2] * n[..., :1] * n[..., 2:],
            0.5 * a[2] * c[2] * (n[..., :1] ** 2 - n[..., 1:2] ** 2),
        ],
        dim=-1,
    )
    return torch.cat([y @ gamma[..., :1], y @ gamma[..., 1:2], y @ gamma[..., 2:]], dim=-1) * face_texture


def test_matches_deep3d():
    n = _unit(2 * 50).reshape(2, 50, 3)
    albedo = torch.rand(2, 50, 3, dtype=DT)
    gamma = torch.randn(2, 27, dtype=DT) * 0.3
    torch.testing.assert_close(
        sh_shade(albedo, n, gamma, ambient=DEEP3D_AMBIENT), _deep3d_compute_color(albedo, n, gamma)
    )
    torch.testing.assert_close(
        sh_shade(albedo, n, gamma.reshape(2, 3, 9), ambient=0.8), sh_shade(albedo, n, gamma, 0.8)
    )
    assert SH_A == pytest.approx((math.pi, 2 * math.pi / 3**0.5, 2 * math.pi / 8**0.5))
    assert SH_C[2] == pytest.approx(0.5 * math.sqrt(15 / math.pi))  # the textbook Y2-2 constant


def test_constant_light_is_uniform_scale():
    n = _unit(64).reshape(1, 8, 8, 3)  # per-pixel normals [B,H,W,3]
    albedo = torch.rand(1, 8, 8, 3, dtype=DT)
    g = torch.zeros(1, 9, dtype=DT)
    g[0, 0] = 1.7
    torch.testing.assert_close(sh_shade(albedo, n, g), albedo * 1.7 * math.sqrt(math.pi) / 2)


def test_linear_light_closed_form():
    """Band-1 coefficients gamma = k (-d_y, d_z, -d_x) / (a1 c1) give shade = albedo * (ambient + k n.d)."""
    d = torch.tensor([0.3, -0.5, 0.8], dtype=DT)
    d = d / d.norm()
    k, amb = 0.6, 0.4
    g = torch.zeros(1, 9, dtype=DT)
    g[0, 0] = amb / (SH_A[0] * SH_C[0])
    g[0, 1:4] = k * torch.stack((-d[1], d[2], -d[0])) / (SH_A[1] * SH_C[1])
    n = _unit(100)[None]
    albedo = torch.full((1, 100, 3), 0.5, dtype=DT)
    torch.testing.assert_close(sh_shade(albedo, n, g), 0.5 * (amb + k * (n @ d))[..., None].expand(1, 100, 3))


def test_directional_light_clamped_cosine():
    """Ramamoorthi & Hanrahan: the irradiance of a directional light, E(n) = max(0, n.d), is approximated by
    sum_l A_l sum_m Y_lm(d) Y_lm(n) with A = (pi, 2pi/3, pi/4); by the addition theorem this equals
    1/4 + t/2 + (5/16) (3t^2 - 1)/2 with t = n.d, within 0.094 of max(0, t) (worst at t = 0)."""
    d = torch.tensor([[-0.2, 0.4, 0.9]], dtype=DT)
    d = d / d.norm()
    y_d = sh_basis(d, irradiance=False)[0]
    a_rh = torch.tensor([math.pi] + [2 * math.pi / 3] * 3 + [math.pi / 4] * 5, dtype=DT)
    a_ours = torch.tensor([SH_A[0]] + [SH_A[1]] * 3 + [SH_A[2]] * 5, dtype=DT)
    g = (a_rh / a_ours * y_d)[None]  # Deep3DFace's basis already carries a_l
    n = _unit(2000, seed=3)[None]
    shade = sh_shade(torch.ones(1, 2000, 3, dtype=DT), n, g)[0, :, 0]
    t = n[0] @ d[0]
    torch.testing.assert_close(shade, 0.25 + t / 2 + 5 / 32 * (3 * t**2 - 1))
    err = shade - t.clamp_min(0)
    assert err.abs().max() < 0.094 and err.abs().mean() < 0.04


def test_orthonormal_basis_monte_carlo():
    n = _unit(400_000, seed=1)
    y = sh_basis(n, irradiance=False)
    gram = 4 * math.pi * (y.T @ y) / len(n)
    assert (gram - torch.eye(9, dtype=DT)).abs().max() < 0.02
    a2 = torch.tensor([SH_A[0]] + [SH_A[1]] * 3 + [SH_A[2]] * 5, dtype=DT) ** 2
    yi = sh_basis(n[:100], irradiance=True)
    torch.testing.assert_close(yi, y[:100] * a2.sqrt())


def test_mono_and_errors_and_gradcheck():
    n = _unit(10)[None]
    albedo = torch.rand(1, 10, 3, dtype=DT)
    g9 = torch.randn(1, 9, dtype=DT)
    torch.testing.assert_close(sh_shade(albedo, n, g9), sh_shade(albedo, n, g9.repeat(1, 3)))
    with pytest.raises(ValueError, match="coeffs"):
        sh_shade(albedo, n, torch.zeros(1, 10, dtype=DT))
    with pytest.raises(ValueError, match="batch"):
        sh_shade(albedo, n, torch.zeros(2, 9, dtype=DT))
    with pytest.raises(ValueError, match="normals"):
        sh_basis(torch.zeros(4, 2))
    args = (
        albedo.requires_grad_(),
        n.clone().requires_grad_(),
        torch.randn(1, 27, dtype=DT, requires_grad=True),
    )
    assert torch.autograd.gradcheck(lambda a, b, c: sh_shade(a, b, c, ambient=0.8), args)


def test_shade_vertices_is_sh_shade_of_the_unit_normal_sums():
    from facezoo.geometry.mesh import vertex_normals
    from facezoo.render.shading import sh_shade, shade_vertices

    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, 6, 3, generator=g, dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2], [1, 3, 2], [2, 3, 4], [3, 5, 4]])
    albedo = torch.rand(2, 6, 3, generator=g, dtype=torch.float64)
    light = torch.randn(2, 27, generator=g, dtype=torch.float64)
    for kind in ("unit", "area"):
        expect = sh_shade(albedo, vertex_normals(v, tri, weighting=kind), light)
        torch.testing.assert_close(shade_vertices(v, tri, albedo, light, normals=kind), expect)
