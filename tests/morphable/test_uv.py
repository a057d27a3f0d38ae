"""cylindrical_uv against closed forms on points of known azimuth and height."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facezoo.morphable.uv import cylindrical_uv


def _ring(azimuth_deg: np.ndarray, heights: np.ndarray, radius: float = 3.0) -> np.ndarray:
    """Points on a cylinder about +y through the origin, azimuth measured from +z toward +x."""
    a = np.deg2rad(azimuth_deg)
    return np.stack([radius * np.sin(a), heights, radius * np.cos(a)], 1)


def test_closed_form_around_y():
    az = np.array([0.0, 90.0, -90.0, 45.0, -135.0, 170.0])
    h = np.array([-2.0, 0.0, 2.0, 1.0, -1.0, 0.5])
    pts = np.concatenate([_ring(az, h), _ring(az + 180.0, h)])  # centroid at the origin (opposite pairs)
    uv = cylindrical_uv(torch.tensor(pts, dtype=torch.float64))
    az_all = np.concatenate([az, az + 180.0])
    expected_u = 0.5 + np.angle(np.exp(1j * np.deg2rad(az_all))) / (
        2 * math.pi
    )  # azimuth wrapped to (-pi, pi]
    np.testing.assert_allclose(uv[:, 0].numpy(), expected_u, atol=1e-12)
    h_all = np.concatenate([h, h])
    np.testing.assert_allclose(uv[:, 1].numpy(), (h_all + 2.0) / 4.0, atol=1e-12)
    assert uv.dtype == torch.float64


def test_translation_invariant_and_frontal_centre():
    pts = _ring(np.array([-60.0, 0.0, 60.0, 180.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    shifted = pts + np.array([10.0, -5.0, 40.0])
    np.testing.assert_allclose(cylindrical_uv(pts), cylindrical_uv(shifted), atol=1e-12)
    uv = cylindrical_uv(pts)
    assert isinstance(uv, np.ndarray) and uv.shape == (4, 2)
    # u grows toward +x on the front (the image right in a frontal view).
    assert uv[0, 0] < uv[1, 0] < uv[2, 0]


@pytest.mark.parametrize(("axis", "perm"), [("x", [2, 0, 1]), ("z", [1, 2, 0])])
def test_other_axes_are_cyclic_permutations(axis, perm):
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(50, 3, generator=g, dtype=torch.float64)
    # Relabel so that the chosen axis plays the role of y: new[:, perm[i]] = old[:, i].
    relabelled = torch.empty_like(pts)
    relabelled[:, perm] = pts
    np.testing.assert_allclose(
        cylindrical_uv(relabelled, axis=axis).numpy(), cylindrical_uv(pts).numpy(), atol=1e-12
    )


def test_flat_mesh_and_int_input():
    pts = torch.tensor([[1, 0, 0], [0, 0, 1], [-1, 0, 0]])
    uv = cylindrical_uv(pts)
    assert uv.is_floating_point()
    np.testing.assert_allclose(uv[:, 1].numpy(), 0.5)


def test_range_and_orientation_on_a_grid_mesh():
    """A cylinder-patch grid (CCW seen from outside) stays CCW in uv, all in [0, 1]."""
    az, h = np.meshgrid(np.linspace(-120.0, 120.0, 25), np.linspace(-1.0, 1.0, 9))
    pts = _ring(az.reshape(-1), h.reshape(-1))
    n_az = 25
    i, j = np.meshgrid(np.arange(n_az - 1), np.arange(8))
    a = (j * n_az + i).reshape(-1)
    tri = np.concatenate([np.stack([a, a + 1, a + 1 + n_az], 1), np.stack([a, a + 1 + n_az, a + n_az], 1)])
    uv = cylindrical_uv(pts)
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    t = uv[tri]
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    assert (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] > 0).all()


@pytest.mark.parametrize(
    ("value", "axis", "err", "match"),
    [
        (torch.zeros(4, 2), "y", ValueError, r"\[V,3\]"),
        (torch.zeros(0, 3), "y", ValueError, r"V > 0"),
        (torch.zeros(4, 3), "w", ValueError, "axis"),
        ([[0.0, 0.0, 0.0]], "y", TypeError, "vertices"),
    ],
)
def test_validation(value, axis, err, match):
    with pytest.raises(err, match=match):
        cylindrical_uv(value, axis=axis)
