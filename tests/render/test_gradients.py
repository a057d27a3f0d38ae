import pytest
import torch
from _reference import grid_surface

from facezoo.render import antialias, interpolate, rasterize


def _toy(dtype=torch.float64):
    pos = torch.tensor(
        [[[-0.9, -0.8, 0.1, 1.0], [0.7, -0.9, 0.3, 1.4], [-0.6, 0.9, -0.2, 0.8], [0.9, 0.8, 0.4, 1.2]]],
        dtype=dtype,
    )
    tri = torch.tensor([[0, 1, 2], [1, 3, 2]], dtype=torch.int32)
    return pos, tri


def test_gradcheck_interpolate_attr_and_positions():
    pos, tri = _toy()
    attr = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    pos.requires_grad_(True)

    def f(attr, pos):
        rast = rasterize(pos, tri, (6, 7), backend="builtin")
        return interpolate(attr, rast, tri)

    assert torch.autograd.gradcheck(f, (attr, pos), eps=1e-7, atol=1e-5)


def test_gradcheck_rast_depth_channel():
    pos, tri = _toy()
    pos.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p: rasterize(p, tri, (5, 5), backend="builtin")[..., :3], (pos,), eps=1e-7, atol=1e-5
    )


def test_position_gradient_on_real_size_mesh_matches_finite_differences():
    pos, tri = grid_surface(10000)
    pos = pos.double()
    attr = torch.randn(1, pos.shape[1], 3, dtype=torch.float64)
    weight = torch.randn(1, 96, 96, 3, dtype=torch.float64)

    def loss(p):
        return (interpolate(attr, rasterize(p, tri, (96, 96), backend="builtin"), tri) * weight).sum()

    p = pos.clone().requires_grad_(True)
    loss(p).backward()
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        d = torch.randn(pos.shape, generator=g, dtype=torch.float64)
        eps = 1e-7  # small enough that no pixel changes triangle
        fd = (loss(pos + eps * d) - loss(pos - eps * d)) / (2 * eps)
        torch.testing.assert_close((p.grad * d).sum(), fd, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("vertex", [0, 1, 2])
def test_antialias_silhouette_gradient_matches_finite_differences(vertex):
    # one triangle over an empty background; moving a vertex changes coverage only through antialias
    pos = torch.tensor(
        [[[-0.63, -0.71, 0.0, 1.0], [0.77, -0.52, 0.0, 1.0], [-0.35, 0.66, 0.0, 1.0]]], dtype=torch.float64
    )
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    weight = torch.rand(1, 24, 24, 1, dtype=torch.float64)

    def image(p):
        rast = rasterize(p, tri, (24, 24), backend="builtin")
        return antialias((rast[..., 3:] > 0).to(p.dtype), rast, p, tri)

    p = pos.clone().requires_grad_(True)
    (image(p) * weight).sum().backward()
    for axis in (0, 1):
        d = torch.zeros_like(pos)
        d[0, vertex, axis] = 1.0
        eps = 1e-5  # the edges sweep far less than a pixel: no centre crossing
        fd = ((image(pos + eps * d) - image(pos - eps * d)) * weight).sum() / (2 * eps)
        analytic = p.grad[0, vertex, axis]
        assert fd.abs() > 1e-2  # moving a silhouette vertex changes the image
        assert torch.sign(analytic) == torch.sign(fd)
        torch.testing.assert_close(analytic, fd, rtol=1e-3, atol=1e-6)


def test_antialias_blends_only_silhouettes():
    pos, tri = grid_surface(400)
    rast = rasterize(pos, tri, (32, 32))
    color = torch.ones(1, 32, 32, 1)
    out = antialias(color * (rast[..., 3:] > 0), rast, pos, tri)
    interior = rast[..., 3] > 0
    # inner triangle boundaries of a smooth front-facing surface are not silhouettes: interior stays 1
    inner = interior.clone()
    inner[:, 1:-1, 1:-1] &= (
        interior[:, :-2, 1:-1] & interior[:, 2:, 1:-1] & interior[:, 1:-1, :-2] & interior[:, 1:-1, 2:]
    )
    inner[:, [0, -1]] = False
    inner[:, :, [0, -1]] = False
    assert torch.allclose(out[inner], torch.ones(1))
    assert ((out > 0) & (out < 1)).any()


def test_warp_and_torch_position_backward_agree():
    from facezoo.render._runtime import _load
    from facezoo.render.backends.builtin import barycentric_backward, barycentric_grad_warp

    if _load()[0] is None:
        pytest.skip("warp not importable")
    pos, tri = grid_surface(2500, batch=2)
    pos[1, :, 0] += 0.1
    rast = rasterize(pos, tri, (48, 48), backend="builtin")
    grad = torch.randn(rast.shape)
    a = barycentric_grad_warp(pos, tri, rast, grad)
    b = barycentric_backward(pos.double(), tri, rast.double(), grad)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
