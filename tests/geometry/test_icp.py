"""Umeyama and similarity ICP against known transforms (closed form, scipy's Kabsch, exact recovery)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from facezoo.geometry.icp import apply_similarity, centroid_init, similarity_icp, umeyama


def face_like_surface(n: int = 40_000, grid: bool = False, seed: int = 0) -> np.ndarray:
    """A dense asymmetric face-like height field in mm: head cap, nose ridge, eye sockets, chin, [n,3]."""
    rng = np.random.default_rng(seed)
    if grid:
        k = int(round(np.sqrt(n)))
        u = np.linspace(-1.0, 1.0, k)
        X, Y = (a.ravel() for a in np.meshgrid(u, u))
    else:
        X, Y = rng.uniform(-1.0, 1.0, (2, n))
    Z = (
        60.0 * np.sqrt(np.clip(1.0 - 0.8 * X**2 - 0.6 * Y**2, 0.0, None))
        + 25.0 * np.exp(-(X**2 / 0.02 + (Y + 0.05) ** 2 / 0.08))
        - 8.0 * np.exp(-((X - 0.35) ** 2 + (Y - 0.3) ** 2) / 0.02)
        - 8.0 * np.exp(-((X + 0.35) ** 2 + (Y - 0.3) ** 2) / 0.02)
        + 6.0 * np.exp(-(X**2 / 0.1 + (Y + 0.5) ** 2 / 0.01))
        + 3.0 * X * Y
    )
    return np.stack([70.0 * X, 90.0 * Y, Z], axis=1)


def random_similarity(rng, max_deg: float, scale=(0.9, 1.1), trans: float = 10.0):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    R = Rotation.from_rotvec(axis * np.deg2rad(rng.uniform(0.3, 1.0) * max_deg)).as_matrix()
    return R, rng.normal(size=3) * trans, float(rng.uniform(*scale))


def _inverse_apply(P, R, t, s):
    """Points ``src`` such that ``s R src + t = P``."""
    return (P - t) @ R / s


def _check(est, truth, tol=1e-5):
    R, t, s = (np.asarray(x) for x in est[:3])
    Rt, tt, st = truth
    assert np.abs(R - Rt).max() < tol
    assert np.abs(t - tt).max() < tol
    assert abs(float(s) - st) < tol


# ----------------------------------------------------------------------------------------------- umeyama


@pytest.mark.parametrize("with_scale", [True, False])
def test_umeyama_recovers_known_similarity_torch(with_scale):
    rng = np.random.default_rng(1)
    R, t, s = random_similarity(rng, 180.0, scale=(0.3, 3.0))
    if not with_scale:
        s = 1.0
    src = torch.randn(50, 3, dtype=torch.float64)
    dst = apply_similarity(src, R, t, s)
    Re, te, se = umeyama(src, dst, with_scale=with_scale)
    assert Re.dtype == torch.float64 and Re.shape == (3, 3) and te.shape == (3,) and se.shape == ()
    _check((Re, te, se), (R, t, s), tol=1e-10)


def test_umeyama_2d_batched_recovers_known_similarities_and_refuses_reflections():
    """The same function in 2D (the landmark crops' similarity): rotations by hand-written angles."""
    angles = torch.tensor([0.3, -2.0, 3.0], dtype=torch.float64)
    c, s_ = angles.cos(), angles.sin()
    R = torch.stack([torch.stack([c, -s_], -1), torch.stack([s_, c], -1)], -2)  # [3,2,2]
    scale = torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64)
    t = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [10.0, -7.0]], dtype=torch.float64)
    src = torch.randn(3, 12, 2, dtype=torch.float64)
    dst = scale[:, None, None] * src @ R.transpose(1, 2) + t[:, None]
    Re, te, se = umeyama(src, dst)
    torch.testing.assert_close(Re, R)
    torch.testing.assert_close(te, t)
    torch.testing.assert_close(se, scale)
    # a mirror image is fitted by the best proper rotation, never a reflection
    Rm, _, sm = umeyama(src[0], src[0] * torch.tensor([-1.0, 1.0], dtype=torch.float64))
    assert torch.linalg.det(Rm).item() == pytest.approx(1.0) and sm.item() > 0


def test_umeyama_numpy_batched_and_kabsch_reference():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(4, 30, 3))
    rot = Rotation.random(4, random_state=3).as_matrix()
    dst = src @ rot.transpose(0, 2, 1) + rng.normal(size=(4, 30, 3))
    R, t, s = umeyama(src, dst, with_scale=False)
    assert isinstance(R, np.ndarray) and R.shape == (4, 3, 3) and t.shape == (4, 3)
    for b in range(4):
        # scipy's Kabsch on centred points is an independent reference for the least-squares rotation.
        ref, _ = Rotation.align_vectors(dst[b] - dst[b].mean(0), src[b] - src[b].mean(0))
        np.testing.assert_allclose(R[b], ref.as_matrix(), atol=1e-10)
        np.testing.assert_allclose(t[b], dst[b].mean(0) - R[b] @ src[b].mean(0), atol=1e-10)
    assert np.allclose(s, 1.0)


def test_umeyama_scale_matches_least_squares_optimum():
    g = torch.Generator().manual_seed(4)
    src = torch.randn(40, 3, generator=g, dtype=torch.float64)
    dst = 1.7 * src + 0.1 * torch.randn(40, 3, generator=g, dtype=torch.float64)
    R, t, s = umeyama(src, dst)

    def cost(scale):
        return float(((dst - apply_similarity(src, R, t + 0.0, scale)) ** 2).sum())

    # Only the scale is perturbed, so re-derive t for each scale (t* = μd - s R μs) before comparing.
    def cost_opt_t(scale):
        tt = dst.mean(0) - scale * R @ src.mean(0)
        return float(((dst - apply_similarity(src, R, tt, scale)) ** 2).sum())

    assert cost(s) <= cost_opt_t(float(s) + 1e-3) and cost(s) <= cost_opt_t(float(s) - 1e-3)


def test_umeyama_never_returns_a_reflection():
    src = torch.randn(20, 3, dtype=torch.float64)
    mirrored = src * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    R, _, s = umeyama(src, mirrored)
    assert torch.linalg.det(R).item() == pytest.approx(1.0)
    assert s.item() > 0


def test_umeyama_input_errors():
    with pytest.raises(ValueError, match="src"):
        umeyama(torch.zeros(5, 1), torch.zeros(5, 1))
    with pytest.raises(ValueError, match="at least 3 points in 3D"):
        umeyama(torch.rand(2, 3), torch.rand(2, 3))
    with pytest.raises(ValueError, match="dst"):
        umeyama(torch.zeros(5, 3), torch.zeros(6, 3))
    with pytest.raises(TypeError, match="src"):
        umeyama([[0, 0, 0]] * 4, torch.zeros(4, 3))


# ------------------------------------------------------------------------------------------ similarity ICP


def test_icp_recovers_random_similarities_from_centroid_init():
    P = face_like_surface(40_000)
    rng = np.random.default_rng(5)
    for _ in range(3):
        truth = random_similarity(rng, max_deg=10.0)
        est = similarity_icp(_inverse_apply(P, *truth), P)
        assert est[3]["fitness"] == pytest.approx(1.0)
        _check(est, truth)


def test_icp_on_a_grid_needs_the_plane_stage():
    """On a regular grid point-to-point ICP stalls near half a spacing; point→plane→point is exact."""
    P = face_like_surface(40_000, grid=True)
    rng = np.random.default_rng(6)
    truth = random_similarity(rng, max_deg=10.0)
    src = _inverse_apply(P, *truth)
    stalled = similarity_icp(src, P)
    assert np.abs(np.asarray(stalled[1]) - truth[1]).max() > 1e-3
    est = similarity_icp(src, P, stages=("point", "plane", "point"))
    _check(est, truth)
    assert est[3]["inlier_rmse"] < 1e-8


def test_icp_large_rotation_with_landmark_init_torch():
    P = face_like_surface(30_000, seed=7)
    rng = np.random.default_rng(8)
    truth = random_similarity(rng, max_deg=170.0, scale=(0.5, 2.0), trans=100.0)
    src = torch.from_numpy(_inverse_apply(P, *truth))
    # 68 "landmarks": corresponding points with 0.5 mm noise, as a landmark detector would give.
    idx = rng.choice(len(P), 68, replace=False)
    lm_dst = torch.from_numpy(P[idx] + rng.normal(scale=0.5, size=(68, 3)))
    init = umeyama(src[idx], lm_dst)
    R, t, s, info = similarity_icp(src, torch.from_numpy(P), init=init)
    assert R.dtype == torch.float64 and isinstance(s, torch.Tensor)
    _check((R, t, s), truth)
    # From the centroid alone the same problem is hopeless: the landmarks are what makes it work.
    R0, _, _, _ = similarity_icp(src, torch.from_numpy(P), max_iterations=20)
    assert np.abs(R0.numpy() - truth[0]).max() > 1e-2


def test_icp_real_ict_facekit_mesh(shared_data):
    path = shared_data / "ict_facekit" / "generic_neutral_mesh.obj"
    if not path.exists():
        pytest.skip("ICT-FaceKit mesh absent")
    with open(path) as f:
        V = np.array([line.split()[1:4] for line in f if line.startswith("v ")], dtype=np.float64)
    V = np.unique(V * 10.0, axis=0)  # cm -> mm; seam duplicates removed (they only tie nearest neighbours)
    assert len(V) > 20_000
    rng = np.random.default_rng(9)
    truth = random_similarity(rng, max_deg=10.0)
    est = similarity_icp(_inverse_apply(V, *truth), V, stages=("point", "plane", "point"))
    _check(est, truth)


def test_centroid_init_matches_centroids_and_rms_radius():
    P = face_like_surface(2000)
    T = centroid_init(P, 2.0 * P + 5.0)
    np.testing.assert_allclose(T[:3, :3], 2.0 * np.eye(3), atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], np.full(3, 5.0), atol=1e-9)


def test_icp_input_errors():
    P = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="stages"):
        similarity_icp(P, P, stages=("points",))
    with pytest.raises(ValueError, match="init"):
        similarity_icp(P, P, init="landmarks")
    with pytest.raises(ValueError, match="target"):
        similarity_icp(P, P[:, :2])
    with pytest.raises(ValueError, match="max_correspondence_distance"):
        similarity_icp(P, P, max_correspondence_distance=0.0)
