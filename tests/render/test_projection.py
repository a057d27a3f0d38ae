"""MVF-Net's texture sampling and rendered projections (render/sampling.py), the domain-transform filter."""

from __future__ import annotations

import math

import pytest
import torch
from _reference import grid_surface

from facezoo.geometry.cameras import WeakPerspective
from facezoo.geometry.rotations import euler_to_matrix
from facezoo.render import MeshRenderer
from facezoo.render.domain_transform import domain_transform_filter
from facezoo.render.sampling import render_projection, sample_vertex_colours

S = 48


def _cap(n=900):
    pos, tri = grid_surface(n)
    v = pos[0, :, :2] / pos[0, :, 3:] * 40
    z = -pos[0, :, 3:] * 25
    return torch.cat((v, z - z.min()), -1)[None].contiguous(), tri


def _camera(yaw=0.0):
    rot = euler_to_matrix(torch.tensor([[0.0, yaw, 0.0]]))
    return WeakPerspective(torch.tensor([0.45]), rot, torch.tensor([[S / 2, S / 2]]))


def test_projection_a_to_a_reproduces_a_linear_image_where_visible():
    """An image linear in the pixel coordinates is reproduced exactly: bilinear sampling of a linear image is
    exact at the vertices, and weak perspective maps barycentrics affinely, so the interpolated colours are
    the same linear function (independent expectation: the formula of the image)."""
    v, tri = _cap()
    cam = _camera(0.3)
    ys, xs = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    image = torch.stack((xs / S, ys / S, 0.5 + 0.2 * (xs - ys) / S))[None]
    renderer = MeshRenderer(S)
    colours, visible = sample_vertex_colours(image, v, tri, cam, renderer)
    proj = render_projection(colours, visible, v, tri, cam, renderer)
    seen = proj.seen[0, 0] > 0
    assert seen.float().mean() > 0.2
    err = (proj.image - image).abs().amax(1)[0][seen]
    assert float(err.max()) < 1e-4
    assert torch.equal(proj.coverage >= proj.seen, torch.ones_like(proj.seen, dtype=torch.bool))


def test_projection_to_another_view_matches_the_surface_texture_and_masks_what_the_source_misses():
    """Texture a mesh by rendering smooth vertex colours in A, sample them back and project into B: close to
    rendering the colours in B directly where B's pixels are seen in A; a steep source sees less of B."""
    v, tri = _cap()
    torch.manual_seed(0)
    colours = (0.5 + 0.4 * torch.sin(v[..., :1] / 15 + torch.tensor([0.0, 1.0, 2.0]))).clamp(0, 1)
    renderer = MeshRenderer(S)
    cam_a, cam_b = _camera(0.5), _camera(-0.2)
    image_a = renderer(v, tri, cam_a, colors=colours, antialias=False).image
    target = renderer(v, tri, cam_b, colors=colours, antialias=False).image
    sampled, vis = sample_vertex_colours(image_a, v, tri, cam_a, renderer)
    proj = render_projection(sampled, vis, v, tri, cam_b, renderer)
    seen = proj.seen[0, 0] > 0
    err = (proj.image - target).abs().mean(1)[0][seen].mean()
    wrong = (proj.image - target.flip(-1)).abs().mean(1)[0][seen].mean()  # a mirrored target does not fit
    assert float(err) < 0.03 and float(err) < 0.3 * float(wrong)
    steep = render_projection(*sample_vertex_colours(image_a, v, tri, _camera(1.4), renderer), v, tri, cam_b,
                              renderer).seen  # fmt: skip
    assert 0 < steep.sum() < proj.seen.sum()


def test_projection_gradients_reach_the_source_image_and_the_vertices():
    v, tri = _cap(300)
    v = v.clone().requires_grad_(True)
    image = torch.rand(1, 3, S, S, requires_grad=True)
    renderer = MeshRenderer(S)
    colours, vis = sample_vertex_colours(image, v, tri, _camera(0.3), renderer)
    proj = render_projection(colours, vis, v, tri, _camera(-0.3), renderer)
    (proj.image * proj.seen).sum().backward()
    assert image.grad.abs().sum() > 0 and v.grad.abs().sum() > 0


def _reference_dt(x, guide, sigma_s, sigma_r):
    """One-iteration domain-transform RF on a single row, written from Gastal & Oliveira's Eqs. (loops)."""
    w = x.shape[-1]
    sigma_h = sigma_s  # N = 1: sigma_H1 = sigma_s sqrt(3) 2^0 / sqrt(3)
    a = math.exp(-math.sqrt(2) / sigma_h)
    d = [1 + sigma_s / sigma_r * float((guide[:, i] - guide[:, i - 1]).abs().sum()) for i in range(1, w)]
    j = [float(t) for t in x]
    for i in range(1, w):
        j[i] = j[i] + a ** d[i - 1] * (j[i - 1] - j[i])
    for i in range(w - 2, -1, -1):
        j[i] = j[i] + a ** d[i] * (j[i + 1] - j[i])
    return torch.tensor(j, dtype=torch.float64)


def test_domain_transform_matches_the_recursive_filter_equations_on_a_row():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 1, 15, dtype=torch.float64)
    guide = torch.rand(1, 3, 1, 15, dtype=torch.float64)
    out = domain_transform_filter(x, guide, sigma_s=5.0, sigma_r=0.3, iterations=1)
    ref = _reference_dt(x[0, 0, 0], guide[0, :, 0], 5.0, 0.3)
    torch.testing.assert_close(out[0, 0, 0], ref)


def test_domain_transform_keeps_constants_and_stops_at_guide_edges():
    const = torch.full((1, 1, 10, 12), 0.7)
    guide = torch.rand(1, 3, 10, 12)
    torch.testing.assert_close(domain_transform_filter(const, guide), const)
    step = torch.zeros(1, 1, 10, 20)
    step[..., :8] = 1.0
    edge = torch.zeros(1, 3, 10, 20)
    edge[..., 10:] = 1.0  # the guide's edge is 2 px right of the mask's
    flat = domain_transform_filter(step, torch.zeros_like(edge), sigma_s=6.0, sigma_r=0.1)
    snapped = domain_transform_filter(step, edge, sigma_s=6.0, sigma_r=0.1)
    assert float(flat[..., 12:].max()) > 0.05  # plain smoothing leaks past the guide's edge
    assert float(snapped[..., 10:].max()) < 1e-3 and float(snapped[..., 9].min()) > float(flat[..., 9].min())
    with pytest.raises(ValueError, match="guide"):
        domain_transform_filter(step, edge[..., :5])
