"""Voxelisation against brute-force references: per-voxel ray casting over every triangle, convex hulls'
half-spaces (scipy), an axis-aligned box whose triangle diagonals pass exactly through voxel centres."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from facezoo.geometry import WeakPerspective
from facezoo.geometry.voxelize import image_space_points, volume_surface, voxel_centres, voxelize


def _brute_force(points: np.ndarray, tris: np.ndarray, shape, image_size, z_range, fill: str) -> np.ndarray:
    """Per voxel centre, every triangle: is the centre's column inside the triangle's projection, and is
    the triangle's depth there in front of the centre? ``behind``: any such triangle; ``inside``: odd
    count."""
    d_n, h_n, w_n = shape
    zc = z_range[0] + (np.arange(d_n) + 0.5) * (z_range[1] - z_range[0]) / d_n
    out = np.zeros(shape)
    for h in range(h_n):
        for w in range(w_n):
            q = np.array([(w + 0.5) * image_size[1] / w_n, (h + 0.5) * image_size[0] / h_n])
            depths = []
            for t in tris:
                a, b, c = points[t]
                m = np.array([[b[0] - a[0], c[0] - a[0]], [b[1] - a[1], c[1] - a[1]]])
                if abs(np.linalg.det(m)) < 1e-12:
                    continue
                u, v = np.linalg.solve(m, q - a[:2])
                if u >= 0 and v >= 0 and u + v <= 1:
                    depths.append(a[2] + u * (b[2] - a[2]) + v * (c[2] - a[2]))
            for d in range(d_n):
                n_front = sum(z > zc[d] for z in depths)
                out[d, h, w] = (
                    (n_front > 0 or any(z == zc[d] for z in depths)) if fill == "behind" else n_front % 2
                )
    return out


def test_behind_fill_matches_per_voxel_ray_casting_on_a_random_triangle_soup():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(0, 16, (40, 2)), rng.uniform(-6, 6, (40, 1))], axis=1)
    tris = rng.integers(0, 40, (25, 3))
    shape, size, zr = (10, 12, 9), (16, 16), (-5.0, 5.0)
    ref = _brute_force(pts, tris, shape, size, zr, "behind")
    got = voxelize(torch.tensor(pts)[None], torch.tensor(tris), shape, size, zr, fill="behind")[0]
    assert ref.sum() > 100
    np.testing.assert_array_equal(got.numpy(), ref)


@pytest.mark.parametrize("seed", [1, 2])
def test_inside_fill_matches_convex_hull_half_spaces(seed):
    """A closed convex mesh (scipy's hull of random points, triangles in any orientation): inside = every
    half-space inequality of the hull holds at the voxel centre (an independent point-in-mesh test)."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(30, 3)) * np.array([5.0, 4.0, 3.0]) + np.array([10.0, 9.0, 0.3])
    hull = ConvexHull(pts)
    tris = hull.simplices.copy()
    tris[::2] = tris[::2, ::-1]  # orientation must not matter
    shape, size, zr = (14, 20, 20), (20, 20), (-8.0, 8.0)
    zc, yc, xc = (a.double().numpy() for a in voxel_centres(shape, size, zr))
    grid = np.stack(np.meshgrid(xc, yc, zc, indexing="ij"), -1).transpose(2, 1, 0, 3)  # [D,H,W,3]
    ref = (grid @ hull.equations[:, :3].T + hull.equations[:, 3] < 0).all(-1)
    two = torch.tensor(np.stack([pts, pts + np.array([0.0, 0.0, 50.0])]))  # second: outside the range
    got = voxelize(two, torch.tensor(tris), shape, size, zr, fill="inside")
    assert ref.sum() > 200
    np.testing.assert_array_equal(got[0].numpy().astype(bool), ref)
    assert got[1].sum() == 0  # a mesh wholly in front of the volume has no voxel inside it


def test_edges_through_voxel_centres_are_counted_once():
    """A box whose faces are split along diagonals that pass exactly through column centres: a double
    count would flip the parity along those diagonals."""
    x0, x1, z0, z1 = 1.0, 7.0, -1.2, 1.3
    corners = np.array([[x, y, z] for z in (z0, z1) for y in (x0, x1) for x in (x0, x1)])
    quads = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]
    tris = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    shape, size, zr = (8, 8, 8), (8, 8), (-2.0, 2.0)
    got = voxelize(torch.tensor(corners)[None], torch.tensor(tris), shape, size, zr, fill="inside")[0]
    zc, yc, xc = voxel_centres(shape, size, zr, dtype=torch.float64)
    ref = (
        ((zc > z0) & (zc < z1))[:, None, None]
        & ((yc > x0) & (yc < x1))[None, :, None]
        & ((xc > x0) & (xc < x1))[None, None, :]
    )
    assert torch.equal(got.bool(), ref)
    behind = voxelize(torch.tensor(corners)[None], torch.tensor(tris), shape, size, zr, fill="behind")[0]
    assert torch.equal(behind.bool(), ((zc < z1)[:, None, None] & ref.any(0)[None]))


def test_surface_points_of_a_voxelised_plane_recover_its_depth_within_half_a_voxel():
    """A tilted plane z = 0.3 x - 0.2 y + 1: the extracted surface lies within half a slice of it."""
    xs = np.linspace(-2, 34, 10)
    xx, yy = np.meshgrid(xs, xs)
    pts = np.stack([xx.ravel(), yy.ravel(), 0.3 * xx.ravel() - 0.2 * yy.ravel() + 1.0], -1)
    tris = [(i * 10 + j, i * 10 + j + 1, i * 10 + j + 11) for i in range(9) for j in range(9)]
    tris += [(i * 10 + j, i * 10 + j + 11, i * 10 + j + 10) for i in range(9) for j in range(9)]
    zr = (-16.0, 16.0)
    vol = voxelize(torch.tensor(pts).float()[None], torch.tensor(tris), (32, 16, 16), 32, zr)
    surf = volume_surface(vol, 32, zr)[0]
    assert surf.shape == (256, 3)
    truth = 0.3 * surf[:, 0] - 0.2 * surf[:, 1] + 1.0
    assert (surf[:, 2] - truth).abs().max() <= 0.5 + 1e-5
    assert abs(float((surf[:, 2] - truth).mean())) < 0.1  # unbiased


def test_image_space_points_follow_the_camera_and_bad_input_is_named():
    cam = WeakPerspective(torch.tensor([0.5]), torch.eye(3)[None], torch.tensor([[8.0, 8.0]]))
    v = torch.tensor([[[2.0, 4.0, -6.0]]])
    torch.testing.assert_close(
        image_space_points(cam, v, torch.tensor([1.0])), torch.tensor([[[9.0, 6.0, -4.0]]])
    )
    tri = torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match="points"):
        voxelize(torch.zeros(3, 3), tri, (2, 2, 2), 4, (0, 1))
    with pytest.raises(ValueError, match="triangles: indices"):
        voxelize(torch.zeros(1, 2, 3), tri, (2, 2, 2), 4, (0, 1))
    with pytest.raises(ValueError, match="z_range"):
        voxelize(torch.zeros(1, 3, 3), tri, (2, 2, 2), 4, (1, 0))
    with pytest.raises(ValueError, match="fill"):
        voxelize(torch.zeros(1, 3, 3), tri, (2, 2, 2), 4, (0, 1), fill="solid")
