"""Unwrapping an image into UV space through a mesh (nonlinear 3DMM face editing, Eq. 9's reference)."""

import torch

from facezoo.geometry import WeakPerspective
from facezoo.render import MeshRenderer
from facezoo.render.uv import render_uv, unwrap_texture, uv_coverage


def _grid_mesh(n=9):
    """A flat n x n vertex grid in the z = 0 plane, x, y in [-1, 1], uv = its own (x, y) in [0, 1]."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    verts = torch.stack((xs, ys, torch.zeros_like(xs)), -1).reshape(-1, 3)
    uv = (verts[:, :2] + 1) / 2
    tri = []
    for r in range(n - 1):
        for c in range(n - 1):
            i = r * n + c
            tri += [[i, i + 1, i + n], [i + 1, i + n + 1, i + n]]
    return verts, uv, torch.tensor(tri)


def test_unwrap_recovers_the_texture_a_mesh_was_rendered_with():
    verts, uv, tri = _grid_mesh()
    size = (24, 30)  # non-square UV map
    tex = torch.rand(1, 3, *size)
    tex = torch.nn.functional.avg_pool2d(tex, 3, 1, 1)  # smooth: bilinear lookups agree across resamplings
    cam = WeakPerspective(torch.tensor([20.0]), torch.eye(3)[None], torch.tensor([[32.0, 32.0]]))
    img = MeshRenderer(64)(verts[None], tri, cam, texture=tex, uv=uv, antialias=False).image
    out, mask = unwrap_texture(img, cam.project(verts[None]), uv, tri, size)
    inner = mask.clone()
    inner[..., :2, :] = inner[..., -2:, :] = inner[..., :, :2] = inner[..., :, -2:] = 0  # chart borders
    assert inner.sum() > 0.8 * size[0] * size[1] * 0.6
    err = ((out - tex).abs() * inner).sum() / (3 * inner.sum())
    assert err < 0.03
    # a vertex marked invisible masks out the texels of its triangles
    vis = torch.ones(1, verts.shape[0], dtype=torch.bool)
    vis[0, 40] = False  # the centre vertex of the 9 x 9 grid
    _, mask2 = unwrap_texture(img, cam.project(verts[None]), uv, tri, size, visible=vis)
    assert mask2.sum() < mask.sum() and mask2[0, 0, size[0] // 2, size[1] // 2] == 0


def test_unwrap_samples_the_projected_image_position():
    verts, uv, tri = _grid_mesh(3)
    img = torch.zeros(1, 2, 10, 10)
    img[0, 0] = torch.arange(10.0)[None, :] + 0.5  # channel 0 holds the pixel's x centre
    img[0, 1] = torch.arange(10.0)[:, None] + 0.5  # channel 1 its y centre
    cam = WeakPerspective(torch.tensor([4.0]), torch.eye(3)[None], torch.tensor([[5.0, 5.0]]))
    pts = cam.project(verts[None])
    out, mask = unwrap_texture(img, pts, uv, tri, 8)
    expected = render_uv(pts, uv, tri, 8)  # each texel's projected position (x, y), computed independently
    sel = mask[0, 0] > 0
    assert torch.allclose(out[0][:, sel], expected[0][:, sel], atol=1e-4)


def test_uv_coverage_of_a_full_square():
    verts, uv, tri = _grid_mesh(3)
    assert torch.equal(uv_coverage(uv, tri, (4, 6)), torch.ones(1, 1, 4, 6))
