"""The batched landmark fitter against known synthetic parameters, autograd, a sphere's silhouette and real
SFM / AFLW2000-3D data (skipped when ../shared/data is absent)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from facezoo.fitting import (
    contour_lines,
    fit_landmarks,
    landmark_normaliser,
    silhouette,
    transform_camera,
)
from facezoo.fitting.landmark_fit import _residual_jacobian
from facezoo.geometry import Perspective, WeakPerspective, euler_to_matrix
from facezoo.methods.base import build_morphable
from facezoo.morphable import MorphableModel

SHARED = Path(os.environ.get("FACEZOO_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


@pytest.fixture(scope="module")
def model():
    return build_morphable("procedural:1000:10:5:5").double()


def _truth(model, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    ident = torch.randn(b, model.n_id, generator=g, dtype=torch.float64)
    exp = torch.randn(b, model.n_exp, generator=g, dtype=torch.float64) * 0.5
    angles = (torch.rand(b, 3, generator=g, dtype=torch.float64) - 0.5) * torch.tensor([0.4, 0.8, 0.3])
    cam = WeakPerspective(1.0 + torch.rand(b, generator=g, dtype=torch.float64), euler_to_matrix(angles),
                          100 + 50 * torch.rand(b, 2, generator=g, dtype=torch.float64))  # fmt: skip
    return ident, exp, cam


def test_recovers_known_parameters_weak(model):
    ident, exp, cam = _truth(model)
    lm = cam.project(model.landmarks(model(ident, exp)))
    fit = fit_landmarks(model, lm, contour="fixed", lam_id=1e-10, lam_exp=1e-10, iterations=40)
    assert float((fit.landmarks2d - lm).norm(dim=-1).max()) < 1e-3
    # 68 points pin down 10 + 5 coefficients and the pose
    assert torch.allclose(fit.params["id"], ident, atol=2e-2)
    assert torch.allclose(fit.params["exp"], exp, atol=2e-2)
    assert torch.allclose(fit.camera.rotation, cam.rotation, atol=1e-3)
    assert torch.allclose(fit.camera.scale, cam.scale, rtol=1e-4)


def test_recovers_known_parameters_perspective(model):
    ident, exp, weak = _truth(model, b=2, seed=1)
    cam = Perspective(
        1500.0, (128.0, 128.0), weak.rotation, torch.tensor([[5.0, -3.0, -1200.0], [0, 8, -900]])
    )
    lm = cam.project(model.landmarks(model(ident, exp)))
    fit = fit_landmarks(model, lm, camera="perspective", focal=1500.0, center=torch.full((2, 2), 128.0),
                        contour="fixed", lam_id=1e-10, lam_exp=1e-10, iterations=40)  # fmt: skip
    assert float((fit.landmarks2d - lm).norm(dim=-1).max()) < 1e-3
    assert torch.allclose(fit.camera.translation, cam.translation.double(), atol=0.5)
    assert torch.allclose(fit.params["id"], ident, atol=3e-2)


def test_prior_shrinks_towards_the_mean(model):
    ident, exp, cam = _truth(model)
    lm = cam.project(model.landmarks(model(ident, exp)))
    weak = fit_landmarks(model, lm, contour="fixed", lam_id=1e-8, lam_exp=1e-8)
    strong = fit_landmarks(model, lm, contour="fixed", lam_id=1.0, lam_exp=1.0)
    assert float(strong.params["id"].norm()) < 0.2 * float(weak.params["id"].norm())
    assert float(strong.nme.mean()) > float(weak.nme.mean())


def test_batch_rows_are_independent(model):
    ident, exp, cam = _truth(model, b=3, seed=2)
    lm = cam.project(model.landmarks(model(ident, exp))) + torch.randn(3, 68, 2, dtype=torch.float64)
    batch = fit_landmarks(model, lm, contour="fixed")
    single = fit_landmarks(model, lm[1:2], contour="fixed")
    assert torch.allclose(batch.params["id"][1:2], single.params["id"], atol=1e-6)


def test_missing_points_are_ignored(model):
    ident, exp, cam = _truth(model, b=1)
    lm = cam.project(model.landmarks(model(ident, exp)))
    w = torch.ones(1, 68, dtype=torch.float64)
    w[0, :17] = 0
    bad = lm.clone()
    bad[0, :17] += 500.0  # garbage where the weight is 0
    a = fit_landmarks(model, bad, w, contour="fixed")
    b = fit_landmarks(model, lm, w, contour="fixed")
    assert torch.allclose(a.params["id"], b.params["id"], atol=1e-6)


@pytest.mark.parametrize("kind", ["weak", "perspective"])
def test_analytic_jacobian_matches_autograd(kind):
    g = torch.Generator().manual_seed(3)
    b, n, k = 2, 7, 4
    rot = euler_to_matrix(torch.rand(b, 3, generator=g, dtype=torch.float64) - 0.5)
    c = torch.tensor([[0.3, 10.0, 20.0], [-0.2, 5.0, 1.0]], dtype=torch.float64)
    if kind == "perspective":
        c = torch.tensor([[3.0, -2.0, -500.0], [1.0, 4.0, -700.0]], dtype=torch.float64)
    const = torch.tensor([[900.0, 60.0, 70.0]] * b, dtype=torch.float64)
    coef = torch.randn(b, k, generator=g, dtype=torch.float64)
    lm_mean = 50 * torch.randn(b, n, 3, generator=g, dtype=torch.float64)
    lm_basis = torch.randn(b, n, 3, k, generator=g, dtype=torch.float64)
    target = 100 * torch.rand(b, n, 2, generator=g, dtype=torch.float64)
    sw, norm = (
        torch.rand(b, n, generator=g, dtype=torch.float64),
        torch.tensor([50.0, 80.0], dtype=torch.float64),
    )
    prior = torch.full((k,), 0.1, dtype=torch.float64)
    _, jac = _residual_jacobian(rot, c, coef, lm_mean, lm_basis, target, sw, norm, prior, const, kind, True)

    def residual(theta):  # w, c, coef of all rows; rotation by the exact exponential map
        from facezoo.geometry import axis_angle_to_matrix

        w, cc, a = theta[:, :3], theta[:, 3:6], theta[:, 6:]
        r_ = axis_angle_to_matrix(w) @ rot
        return _residual_jacobian(r_, cc, a, lm_mean, lm_basis, target, sw, norm, prior, const, kind, False)[
            0
        ]

    theta = torch.cat((torch.zeros(b, 3, dtype=torch.float64) + 1e-12, c, coef), -1)
    full = torch.autograd.functional.jacobian(residual, theta)  # [B,R,B,P]
    auto = torch.stack([full[i, :, i] for i in range(b)])
    assert torch.allclose(jac, auto, atol=1e-6, rtol=1e-6)


def _sphere_model(radius=50.0, n=60):
    th = torch.linspace(-math.pi / 2 + 0.05, math.pi / 2 - 0.05, n, dtype=torch.float64)  # latitude
    ph = torch.linspace(-math.pi * 0.95, math.pi * 0.95, 2 * n, dtype=torch.float64)  # longitude, 0 = +z
    lat, lon = torch.meshgrid(th, ph, indexing="ij")
    v = radius * torch.stack((lat.cos() * lon.sin(), lat.sin(), lat.cos() * lon.cos()), -1).reshape(-1, 3)
    rows, cols = n, 2 * n
    tri = []
    for i in range(rows - 1):
        for j in range(cols - 1):
            a = i * cols + j
            tri += [[a, a + 1, a + cols], [a + 1, a + cols + 1, a + cols]]

    def nearest(p):
        return int((v - torch.tensor(p, dtype=torch.float64)).norm(dim=-1).argmin())

    lm = torch.zeros(68, dtype=torch.long)
    lm[36], lm[45] = nearest((-20, 20, 42)), nearest((20, 20, 42))
    lm[8] = nearest((0, -45, 20))
    for j in range(8):  # jaw at the sides, z >= 0
        y = 20 - 65 * j / 8
        x = math.sqrt(max(radius**2 - y**2, 0.0))
        lm[j], lm[16 - j] = nearest((-x, y, 0)), nearest((x, y, 0))
    return MorphableModel(mean=v, id_basis=None, exp_basis=None, triangles=torch.tensor(tri), landmarks68=lm)


def test_silhouette_of_a_sphere_is_its_outline():
    """Orthographic outline of a sphere at height y: x = t_x -/+ s sqrt(r^2 - y^2), whatever the yaw."""
    sphere = _sphere_model().double()
    lines = contour_lines(sphere, n_lines=10, depth_margin=2.0)
    rot = euler_to_matrix(torch.tensor([[0.0, 0.35, 0.0]], dtype=torch.float64))
    cam = WeakPerspective(torch.tensor([2.0], dtype=torch.float64), rot, torch.tensor([[200.0, 150.0]]))
    idx, pts = silhouette(lines, sphere.mean[None], cam.project)
    y = sphere.mean[idx.clamp_min(0), 1]  # model height of each chosen vertex (rotation about y keeps it)
    expected = 2.0 * (50.0**2 - y**2).clamp_min(0).sqrt()
    assert torch.allclose(pts[0, 0, :, 0], 200.0 - expected[0, 0], atol=2.0)  # right side: image left
    assert torch.allclose(pts[0, 1, :, 0], 200.0 + expected[0, 1], atol=2.0)


def test_moving_contour_beats_fixed_jaw_on_a_turned_face(model):
    """Targets on the true outline (brute force: the extreme projected vertex of the mesh's front half in
    each of 8 height bands per side) are fitted better when the jaw may slide."""
    ident, exp, cam = _truth(model, b=1, seed=5)
    cam = WeakPerspective(
        cam.scale, euler_to_matrix(torch.tensor([[0.0, 0.6, 0.0]], dtype=torch.float64)), cam.t2d
    )
    verts = model(ident, exp)
    lm = cam.project(model.landmarks(verts)).clone()
    proj = cam.project(verts)[0]
    mean = model.mean
    chin_y, eye_y = float(mean[model.landmarks68[8], 1]), float(mean[model.landmarks68[[36, 45]], 1].mean())
    for side, points in ((-1, range(0, 8)), (1, range(16, 8, -1))):
        for j, k in enumerate(points):
            y = eye_y + (chin_y - eye_y) * j / 8
            band = (
                ((mean[:, 1] - y).abs() < 4)
                & (side * mean[:, 0] > 0)
                & (mean[:, 2] > mean[model.landmarks68[:17], 2].min() - 5)
            )
            cand = band.nonzero().flatten()
            pick = cand[(side * proj[cand, 0]).argmax()]
            lm[0, k] = proj[pick]
    moving = fit_landmarks(model, lm, contour="moving", iterations=20)
    fixed = fit_landmarks(model, lm, contour="fixed", iterations=20)
    jaw = [*range(8), *range(9, 17)]
    err_m = (moving.landmarks2d[0, jaw] - lm[0, jaw]).norm(dim=-1).mean()
    err_f = (fixed.landmarks2d[0, jaw] - lm[0, jaw]).norm(dim=-1).mean()
    assert float(err_m) < 0.6 * float(err_f)


def test_normaliser_and_errors(model):
    assert float(landmark_normaliser(torch.tensor([[[0.0, 0.0], [4.0, 9.0]]]))) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="68"):
        fit_landmarks(model, torch.zeros(1, 7, 2))
    with pytest.raises(ValueError, match="finite"):
        fit_landmarks(model, torch.full((1, 68, 2), float("nan")))
    with pytest.raises(ValueError, match="isotropic"):
        cam = WeakPerspective(torch.tensor([1.0]), torch.eye(3)[None], torch.zeros(1, 2))
        transform_camera(cam, torch.tensor([[[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]]]))


@pytest.mark.skipif(
    not (SHARED / "sfm").is_dir() or not (SHARED / "aflw2000_3d").is_dir(), reason="no shared data"
)
def test_sfm_on_aflw2000_landmarks():
    from facezoo.data.landmarks import read_3ddfa_mat
    from facezoo.morphable.sfm import load_sfm

    sfm = load_sfm(SHARED / "sfm").double()
    mats = sorted((SHARED / "aflw2000_3d").glob("*.mat"))[:4]
    lm = torch.as_tensor(np.stack([read_3ddfa_mat(m)["pt3d_68"][:, :2] for m in mats]))
    fit = fit_landmarks(sfm, lm)
    inner = list(range(17, 68))
    err = (fit.landmarks2d[:, inner] - lm[:, inner]).norm(dim=-1).mean(-1) / landmark_normaliser(lm)
    assert float(err.max()) < 0.05  # AFLW2000-3D NME of a good fit is a few percent
    assert float(fit.nme.mean()) < 0.05
