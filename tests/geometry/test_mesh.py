"""Mesh operators against brute-force loops and closed forms (sphere, regular grid), plus gradcheck."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from facezoo.geometry import mesh

DT = torch.float64


def _sphere(n=600, r=2.0):
    """Fibonacci sphere, convex hull triangulation oriented outward."""
    i = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * i / n), math.pi * (1 + 5**0.5) * i
    p = np.stack((np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)), 1) * r
    tri = ConvexHull(p).simplices
    n_ = np.cross(p[tri[:, 1]] - p[tri[:, 0]], p[tri[:, 2]] - p[tri[:, 0]])
    flip = (n_ * p[tri].mean(1)).sum(1) < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    return torch.from_numpy(p), torch.from_numpy(tri.astype(np.int64))


def _grid(n=7, h=1.0):
    """Regular grid in the z = 0 plane, each square split by its (i,j)-(i+1,j+1) diagonal, CCW from +z."""
    xs = (np.arange(n) - (n - 1) / 2) * h
    x, y = np.meshgrid(xs, xs)
    v = np.stack((x.ravel(), y.ravel(), np.zeros(n * n)), 1)
    tri = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            tri += [[a, b, e], [a, e, d]]
    return torch.from_numpy(v), torch.tensor(tri)


def _random_mesh(seed=0):
    v, t = _grid(5)
    g = torch.Generator().manual_seed(seed)
    return (v + 0.2 * torch.randn(v.shape, generator=g, dtype=DT))[None], t


def test_normals_brute_force_and_sphere():
    v, t = _random_mesh()
    vn = mesh.vertex_normals(v, t)[0]
    ref = torch.zeros_like(vn)
    for a, b, c in t.tolist():
        n = torch.linalg.cross(v[0, b] - v[0, a], v[0, c] - v[0, a])
        for k in (a, b, c):
            ref[k] += n
    torch.testing.assert_close(vn, ref / ref.norm(dim=1, keepdim=True))
    torch.testing.assert_close(vn.norm(dim=1), torch.ones(len(vn), dtype=DT))
    p, tri = _sphere()
    radial = p / p.norm(dim=1, keepdim=True)
    assert ((mesh.vertex_normals(p[None], tri)[0] * radial).sum(1) > 0.999).all()
    fn = mesh.face_normals(p[None], tri)[0]
    assert ((fn * p[tri].mean(1)).sum(1) > 0).all()
    g, gt = _grid()
    torch.testing.assert_close(
        mesh.vertex_normals(g[None], gt)[0], torch.tensor([0.0, 0, 1], dtype=DT).expand(49, 3)
    )


def test_edges_neighbours_lengths():
    v, t = _random_mesh()
    want = sorted(
        {
            tuple(sorted((a, b)))
            for tri in t.tolist()
            for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0]))
        }
    )
    e = mesh.edges(t)
    assert [tuple(x) for x in e.tolist()] == want
    nb = mesh.vertex_neighbours(t, v.shape[1])
    for i in range(v.shape[1]):
        assert nb[i] == sorted({b if a == i else a for a, b in want if i in (a, b)})
    lengths = mesh.edge_lengths(v, t)[0]
    torch.testing.assert_close(lengths, torch.stack([(v[0, a] - v[0, b]).norm() for a, b in want]))


def test_uniform_laplacian_grid_closed_form():
    v, t = _grid(7, h=0.5)
    lap = mesh.uniform_laplacian(t, 49)
    interior = [r * 7 + c for r in range(1, 6) for c in range(1, 6)]
    lin = (2 * v[:, 0] - 3 * v[:, 1]).float()
    assert (lap @ lin[:, None])[interior].abs().max() < 1e-5  # linear functions are harmonic
    # x^2: the 6 neighbours have dx = +-h, +-h, 0, 0 -> mean(dx^2) = 4 h^2 / 6
    quad = (v[:, 0] ** 2).float()
    torch.testing.assert_close((lap @ quad[:, None])[interior, 0], torch.full((25,), 4 * 0.25 / 6))
    dense = mesh.uniform_laplacian(t, 49, normalize=False).to_dense()
    torch.testing.assert_close(dense.sum(1), torch.zeros(49))
    assert dense[24, 24] == -6


def test_cotangent_laplacian_brute_force_and_sphere():
    v, t = _random_mesh(1)
    lap, area = mesh.cotangent_laplacian(v[0], t)
    ref = torch.zeros(v.shape[1], v.shape[1], dtype=DT)
    for tri in t.tolist():
        for k in range(3):
            o, i, j = tri[k], tri[(k + 1) % 3], tri[(k + 2) % 3]
            a, b = v[0, i] - v[0, o], v[0, j] - v[0, o]
            ang = torch.acos((a @ b) / (a.norm() * b.norm()))
            ref[i, j] += 0.5 / math.tan(ang)
            ref[j, i] += 0.5 / math.tan(ang)
    ref -= torch.diag(ref.sum(1))
    torch.testing.assert_close(lap.to_dense(), ref)
    torch.testing.assert_close(area.sum(), mesh.face_normals(v, t, normalize=False)[0].norm(dim=1).sum() / 2)
    p, tri = _sphere(1500, r=2.0)
    lap, area = mesh.cotangent_laplacian(p, tri)
    hn = (lap @ p) / area[:, None]  # ~ -2 H n = -(2/r) n
    expected = -(2.0 / 2.0) * p / p.norm(dim=1, keepdim=True)
    err = (hn - expected).norm(dim=1)
    assert err.median() < 0.03 and err.max() < 0.25


def test_symmetric_pairs():
    v, _ = _grid(6)  # symmetric about x = 0
    perm = torch.randperm(36)
    pv = v[perm] + torch.tensor([0, 0, 0.0], dtype=DT)
    pairs = mesh.symmetric_pairs(pv, axis=0)
    torch.testing.assert_close(pv[pairs][:, 0], -pv[:, 0])
    torch.testing.assert_close(pv[pairs][:, 1:], pv[:, 1:])
    assert (pairs[pairs] == torch.arange(36)).all()
    shifted = pv.clone()
    shifted[0, 2] += 0.3
    p2 = mesh.symmetric_pairs(shifted, axis=0, tol=0.1)
    assert p2[0] == -1 and (p2[1:] >= 0).sum() == 34  # 0 and its partner lose each other


def test_crop():
    v, t = _random_mesh()
    keep = v[0, :, 0] < 0.3
    nv, nt, o2n = mesh.crop(v, t, keep)
    assert nv.shape == (1, int(keep.sum()), 3)
    kept_tris = [tri for tri in t.tolist() if all(keep[i] for i in tri)]
    assert nt.tolist() == [[int(o2n[i]) for i in tri] for tri in kept_tris]
    torch.testing.assert_close(nv[0, o2n[keep]], v[0, keep])
    assert (o2n[~keep] == -1).all()
    idx = torch.nonzero(keep).squeeze(1)
    nv2, nt2, _ = mesh.crop(v[0], t.int(), idx)
    torch.testing.assert_close(nv2, nv[0])
    assert nt2.dtype == torch.int32 and nt2.tolist() == nt.tolist()
    with pytest.raises(ValueError, match="repeat"):
        mesh.crop(v[0], t, torch.tensor([0, 0]))


def test_errors_and_gradcheck():
    v, t = _random_mesh()
    with pytest.raises(ValueError, match="triangles"):
        mesh.vertex_normals(v, t + 100)
    with pytest.raises(TypeError, match="triangles"):
        mesh.vertex_normals(v, t.double())
    with pytest.raises(ValueError, match="vertices"):
        mesh.vertex_normals(v[0], t)
    small = v[:, :9].clone().requires_grad_()
    tt = torch.tensor([[0, 1, 6], [0, 6, 5], [1, 2, 7], [1, 7, 6], [5, 6, 8]])
    assert torch.autograd.gradcheck(lambda x: mesh.vertex_normals(x, tt), (small,))
    assert torch.autograd.gradcheck(lambda x: mesh.edge_lengths(x, tt), (small,))
    assert torch.autograd.gradcheck(lambda x: mesh.cotangent_laplacian(x[0], tt)[0].to_dense(), (small,))


def test_vertex_normals_unit_weighting_is_the_official_sum_of_unit_normals():
    from facezoo.geometry.mesh import vertex_normals

    # vertex 0 shared by a large triangle in the z = 0 plane and a small one in the x = 0 plane
    v = torch.tensor([[[0.0, 0, 0], [4, 0, 0], [0, 4, 0], [0, 0, 1], [0, 1, 0]]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2], [0, 4, 3]])  # normals +z (area 8) and +x (area 0.5)
    unit = vertex_normals(v, tri, weighting="unit")[0, 0]
    area = vertex_normals(v, tri)[0, 0]
    s = 2**-0.5
    torch.testing.assert_close(unit, torch.tensor([s, 0.0, s], dtype=torch.float64))  # the bisector
    expect = torch.tensor([0.5, 0.0, 8.0], dtype=torch.float64)
    torch.testing.assert_close(area, expect / expect.norm())  # area-weighted
    with pytest.raises(ValueError, match="weighting"):
        vertex_normals(v, tri, weighting="angle")
