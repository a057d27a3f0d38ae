"""Batched landmark fitting of any linear morphable model: pose, identity and expression from 2D landmarks.

For each photo ``b`` we minimise, over rotation ``R``, the camera's translation part ``c`` and the
coefficients ``a = (id, exp)`` (units of std),

    E_b = sum_l w_l || pi(R X_l(a) ; c) - x_l ||^2 / n_b^2  +  lam_id ||id||^2 + lam_exp ||exp||^2

with ``X_l(a)`` the model point of landmark ``l`` (:mod:`facezoo.fitting.targets`; the jaw points move
along the silhouette, :mod:`facezoo.fitting.contour`), ``pi`` a weak-perspective (``c = (log s, t_x, t_y)``)
or perspective (``c = t`` in mm, focal and principal point fixed) projection, and ``n_b = sqrt(w h)`` of the
target landmarks' box (the AFLW2000-3D NME normaliser), so the prior weights mean the same at any photo size.
The coefficient prior is the model's standard-normal prior.

Solver: Levenberg-Marquardt on all unknowns at once, batched over the photos (one ``[P,P]`` solve per photo
and iteration, ``P = 6 + K_id + K_exp``), with an analytic Jacobian of a residual that touches only the
landmark vertices. The rotation is updated multiplicatively, ``R <-
exp([w]_x) R`` (linearised as ``(I + [w]_x) R`` in the Jacobian, applied exactly). The start is the linear
affine camera of the mean shape (:func:`~facezoo.fitting.camera.affine_camera_init`; with fewer than 10
points, e.g. five, a frontal similarity, :func:`~facezoo.fitting.camera.frontal_camera_init`) unless an
initial fit is given (``regress+fit``). The contour correspondences are re-chosen at every iteration of
the first two thirds, then kept, so that the last iterations converge on one objective. eos alternates
closed-form pose and shape solves with a fixed number of iterations; a joint LM step reaches the joint
optimum of the same objective (with an exact rotation instead of eos's projected affine camera).

Defaults (our choices; no paper fixes them): ``lam_id = lam_exp = 1e-3``, the MAP weight for residuals of
about 3 % of the face size per coordinate (annotation noise plus what the model cannot fit); 15 iterations.
On the 10 AFLW2000-3D samples with the SFM (``benchmarks/fitting.py``) 5e-4 gives a lower 2D and a higher
3D error, 2e-3 the reverse.

Example:
    >>> from facezoo.methods.base import build_morphable
    >>> from facezoo.geometry import WeakPerspective, euler_to_matrix
    >>> model = build_morphable("procedural:1000:10:5:5").double()
    >>> rot = euler_to_matrix(torch.tensor([[0.1, 0.3, 0.0]], dtype=torch.float64))
    >>> cam = WeakPerspective(torch.tensor([1.5], dtype=torch.float64), rot, torch.tensor([[128.0, 120.0]]))
    >>> ident = torch.zeros(1, 10, dtype=torch.float64); ident[0, 0] = 1.0
    >>> lm = cam.project(model.landmarks(model(ident, None)))
    >>> fit = fit_landmarks(model, lm, contour="fixed", lam_id=1e-9, lam_exp=1e-9)
    >>> float((fit.landmarks2d - lm).norm(dim=-1).max()) < 1e-3, round(float(fit.params["id"][0, 0]), 2)
    (True, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from facezoo.fitting.camera import affine_camera_init, frontal_camera_init, weak_to_perspective
from facezoo.fitting.contour import ContourLines, assign_contour, contour_lines, silhouette
from facezoo.fitting.targets import LandmarkSet, landmark_set
from facezoo.geometry import Perspective, WeakPerspective, axis_angle_to_matrix
from facezoo.morphable import MorphableModel

__all__ = ["LandmarkFit", "fit_landmarks", "landmark_normaliser"]


@dataclass
class LandmarkFit:
    """The result of :func:`fit_landmarks` (float64, on the model's device).

    ``params``: ``id [B,Kid]``, ``exp [B,Kexp]``; ``camera``: the fitted camera (photo pixels);
    ``vertices [B,V,3]``; ``landmarks3d [B,68,3]`` and ``landmarks2d [B,68,2]``: the model's iBUG-68 points
    with the jaw at the chosen contour vertices; ``landmark_index [B,68]``; ``nme [B]``: the fitted targets'
    mean error over ``sqrt(w h)`` of their box; ``cost [B]`` the final objective; ``iterations`` run.
    """

    params: dict[str, Tensor]
    camera: WeakPerspective | Perspective
    vertices: Tensor
    landmarks3d: Tensor
    landmarks2d: Tensor
    landmark_index: Tensor
    nme: Tensor
    cost: Tensor
    iterations: int = 0
    history: list[float] = field(default_factory=list)


def landmark_normaliser(points: Tensor, weight: Tensor | None = None) -> Tensor:
    """``sqrt(w h)`` ``[B]`` of the (weighted-in) points' bounding box ``[B,L,2]`` (AFLW2000-3D's NME
    normaliser).

    Example:
        >>> landmark_normaliser(torch.tensor([[[0.0, 0.0], [4.0, 9.0]]]))
        tensor([6.])
    """
    keep = torch.ones_like(points[..., 0], dtype=torch.bool) if weight is None else weight > 0
    big = torch.finfo(points.dtype).max
    lo = points.masked_fill(~keep[..., None], big).amin(1)
    hi = points.masked_fill(~keep[..., None], -big).amax(1)
    wh = (hi - lo).clamp_min(1e-6)
    return (wh[:, 0] * wh[:, 1]).sqrt()


def _check_targets(model: MorphableModel, landmarks: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor]:
    if not isinstance(landmarks, Tensor) or landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(
            f"landmarks: expected a [B,68|5,2] tensor of pixels, got {getattr(landmarks, 'shape', landmarks)}"
        )
    if not landmarks.is_floating_point() or not bool(torch.isfinite(landmarks).all()):
        raise ValueError("landmarks: expected finite floating-point pixel coordinates")
    dev = model.mean.device
    x = landmarks.to(dev, torch.float64)
    if weight is None:
        w = torch.ones(x.shape[:2], dtype=torch.float64, device=dev)
    else:
        if tuple(weight.shape) != tuple(x.shape[:2]):
            raise ValueError(f"weight: expected shape {tuple(x.shape[:2])}, got {tuple(weight.shape)}")
        w = weight.to(dev, torch.float64).clamp_min(0)
    return x, w


class _Problem:
    """Fixed data of one batched fit: the model's stacked bases (std folded in), the landmark set."""

    def __init__(self, model: MorphableModel, lset: LandmarkSet) -> None:
        m = model
        self.model = m
        dev = m.mean.device
        self.mean = m.mean.double()
        bases = []
        for basis, std in ((m.id_basis, m.id_std), (m.exp_basis, m.exp_std)):
            b = basis.double()
            bases.append(b if m.bases_scaled else b * std.double())
        self.basis = torch.cat(bases, -1)  # [V,3,K]
        self.n_id, self.n_exp = m.n_id, m.n_exp
        self.lset = LandmarkSet(
            *(t.to(dev) for t in (lset.index, lset.weight, lset.valid, lset.jaw, lset.ibug))
        )

    def vertices(self, coef: Tensor) -> Tensor:
        return self.mean + torch.einsum("vck,bk->bvc", self.basis, coef)

    def gather(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Landmark means ``[B,L,3]`` and bases ``[B,L,3,K]`` for per-photo ``index [B,L,2]``."""
        w = self.lset.weight.to(self.mean)[..., None]
        mean = (self.mean[index] * w).sum(-2)
        basis = (self.basis[index] * w[..., None]).sum(-3)
        return mean, basis


def _project(kind: str, xr: Tensor, c: Tensor, const: Tensor) -> Tensor:
    """Pixels ``[...,L,2]`` of rotated points ``xr [...,L,3]``; ``c`` the camera unknowns, ``const`` = (f, cx,
    cy) for the perspective camera."""
    if kind == "weak":
        s = c[..., 0:1].exp()
        return torch.stack((s * xr[..., 0] + c[..., 1:2], c[..., 2:3] - s * xr[..., 1]), -1)
    p = xr + c[..., None, :]
    d = -p[..., 2]
    f, cx, cy = const[..., 0:1], const[..., 1:2], const[..., 2:3]
    return torch.stack((cx + f * p[..., 0] / d, cy - f * p[..., 1] / d), -1)


def _residual_jacobian(rot, c, coef, lm_mean, lm_basis, target, sw, norm, prior, const, kind: str, jac: bool):
    """Residuals ``[B,2L+K]`` (landmarks over the normaliser, then the prior) and, with ``jac``, their
    Jacobian ``[B,2L+K,6+K]`` in (w, c, coef) at ``w = 0`` (analytic; checked against autograd in the
    tests)."""
    x = lm_mean + torch.einsum("blck,bk->blc", lm_basis, coef)  # [B,L,3]
    y = x @ rot.transpose(1, 2)
    proj = _project(kind, y, c, const)
    scale = (sw / norm[:, None])[..., None]  # [B,L,1]
    r_lm = (proj - target) * scale
    r = torch.cat((r_lm.flatten(1), prior * coef), -1)
    if not jac:
        return r, None
    b, n = y.shape[:2]
    k = coef.shape[-1]
    # d proj / d y  [B,L,2,3] and d proj / d c  [B,L,2,3]
    dpdy = y.new_zeros(b, n, 2, 3)
    dpdc = y.new_zeros(b, n, 2, 3)
    if kind == "weak":
        s = c[:, 0].exp()[:, None]
        dpdy[..., 0, 0], dpdy[..., 1, 1] = s, -s
        dpdc[..., 0, 0], dpdc[..., 1, 0] = s * y[..., 0], -s * y[..., 1]
        dpdc[..., 0, 1], dpdc[..., 1, 2] = 1.0, 1.0
    else:
        p = y + c[:, None]
        d = -p[..., 2]
        f = const[:, 0:1]
        dpdy[..., 0, 0], dpdy[..., 0, 2] = f / d, f * p[..., 0] / d**2
        dpdy[..., 1, 1], dpdy[..., 1, 2] = -f / d, -f * p[..., 1] / d**2
        dpdc = dpdy
    # y(w) = y + w x y: d y / d w = -[y]_x
    zero = torch.zeros_like(y[..., 0])
    yx, yy, yz = y.unbind(-1)
    neg_skew = torch.stack(
        (
            torch.stack((zero, yz, -yy), -1),
            torch.stack((-yz, zero, yx), -1),
            torch.stack((yy, -yx, zero), -1),
        ),
        -2,
    )  # [B,L,3,3] = -[y]_x
    j_w = dpdy @ neg_skew
    j_a = dpdy @ (rot[:, None] @ lm_basis)  # [B,L,2,K]
    j_lm = torch.cat((j_w, dpdc, j_a), -1) * scale[..., None]
    j_prior = torch.cat((y.new_zeros(b, k, 6), torch.diag_embed(prior.expand(b, k))), -1)
    return r, torch.cat((j_lm.reshape(b, 2 * n, 6 + k), j_prior), 1)


def _solve_spd(lhs: Tensor, rhs: Tensor) -> Tensor:
    """``lhs^-1 rhs`` for symmetric positive-definite ``lhs [B,P,P]``, ``rhs [B,P]`` (Cholesky; least squares
    for a batch item whose factorisation fails). Batched LU (``linalg.solve``) is avoided: some MKL builds
    fail on these matrices ("DLASWP parameter 6")."""
    chol, info = torch.linalg.cholesky_ex(lhs)
    out = torch.cholesky_solve(rhs[..., None], chol)[..., 0]
    bad = info != 0
    if bool(bad.any()):
        out[bad] = torch.linalg.lstsq(lhs[bad], rhs[bad][..., None]).solution[..., 0]
    return out


def fit_landmarks(
    model: MorphableModel,
    landmarks: Tensor,
    weight: Tensor | None = None,
    *,
    camera: Literal["weak", "perspective"] = "weak",
    focal: float | Tensor | None = None,
    center: Tensor | None = None,
    init: dict | None = None,
    contour: Literal["auto", "moving", "fixed"] = "auto",
    lam_id: float = 1e-3,
    lam_exp: float = 1e-3,
    iterations: int = 15,
    lines: ContourLines | None = None,
) -> LandmarkFit:
    """Fit ``model`` to ``landmarks [B,68|5,2]`` (photo pixels, y down), batched (module docstring).

    Args:
        model: any :class:`~facezoo.morphable.MorphableModel` (float32 or float64; the fit runs in float64).
        landmarks: iBUG-68 or Deep3DFace 5-point targets per photo.
        weight: ``[B,L]`` per-landmark weights (0: missing point); default 1.
        camera: ``"weak"`` (scaled orthographic, as eos) or ``"perspective"`` (``focal`` px and ``center
            [B,2]`` fixed; defaults: 4.5 x the landmark box's larger side as a 224-crop's 1015 px of
            Deep3DFace would be, and the box centre).
        init: start from ``{"id": [B,Kid], "exp": [B,Kexp], "camera": WeakPerspective | Perspective}``
            (``regress+fit``); the camera kind then follows ``init["camera"]``.
        contour: ``"moving"`` jaw points on the silhouette, ``"fixed"`` the model's jaw vertices, ``"auto"``
            moving when the model lacks jaw vertices (``landmark_valid`` False on the jaw) else fixed.
        lam_id, lam_exp: prior weights; iterations: Levenberg-Marquardt iterations.
        lines: precomputed :func:`~facezoo.fitting.contour.contour_lines` of ``model`` (else built here).
    """
    x, w = _check_targets(model, landmarks, weight)
    b, n_pts = x.shape[:2]
    if contour not in ("auto", "moving", "fixed"):
        raise ValueError(f"contour: expected 'auto', 'moving' or 'fixed', got {contour!r}")
    lset = landmark_set(model, n_pts)
    prob = _Problem(model, lset)
    dev, dt = prob.mean.device, torch.float64
    jaw = prob.lset.jaw
    moving = bool(jaw.any()) and (
        contour == "moving" or (contour == "auto" and not bool(prob.lset.valid[jaw].all()))
    )
    w = w * (prob.lset.valid | (jaw & moving)).to(dt)
    norm = landmark_normaliser(x, w)
    sw = w.sqrt()
    k = prob.basis.shape[-1]
    prior = torch.cat(
        (torch.full((prob.n_id,), lam_id, dtype=dt), torch.full((prob.n_exp,), lam_exp, dtype=dt))
    )
    prior = prior.sqrt().to(dev)
    if moving and lines is None:
        lines = contour_lines(model)
    index = prob.lset.index.expand(b, n_pts, 2).clone()

    # ---- start
    coef = torch.zeros(b, k, dtype=dt, device=dev)
    if init is not None:
        coef[:, : prob.n_id] = init["id"].to(dev, dt)[:, : prob.n_id] if prob.n_id else coef[:, :0]
        if prob.n_exp and init.get("exp") is not None:
            coef[:, prob.n_id :] = init["exp"].to(dev, dt)
        cam0 = init["camera"].to(dev, dt)
        camera = "weak" if isinstance(cam0, WeakPerspective) else "perspective"
    else:
        lm_mean, _ = prob.gather(index)
        fixed = w * (~jaw).to(dt) if moving else w
        few = bool(((fixed > 0).sum(-1) < 10).any())  # five points: the affine camera's depth is not fixed
        cam0 = (frontal_camera_init if few else affine_camera_init)(lm_mean, x, fixed)
        if camera == "perspective":
            lo, hi = x.amin(1), x.amax(1)
            f = 4.5 * (hi - lo).amax(-1) if focal is None else torch.as_tensor(focal, dtype=dt, device=dev)
            cen = (lo + hi) / 2 if center is None else center.to(dev, dt)
            cam0 = weak_to_perspective(cam0, f, cen)
        elif camera != "weak":
            raise ValueError(f"camera: expected 'weak' or 'perspective', got {camera!r}")
    rot = cam0.rotation.clone()
    if camera == "weak":
        c = torch.cat((cam0.scale.log()[:, None], cam0.t2d), -1)
        const = torch.zeros(b, 3, dtype=dt, device=dev)
    else:
        c = cam0.translation.clone()
        const = torch.cat((cam0.focal.expand(b)[:, None], cam0.center.expand(b, 2)), -1)

    sides = (torch.arange(n_pts, device=dev) > 8).long()  # iBUG 1-8 right (side 0), 10-17 left (side 1)

    def make_camera(rot_, c_):
        if camera == "weak":
            return WeakPerspective(c_[:, 0].exp(), rot_, c_[:, 1:])
        return Perspective(const[:, 0], const[:, 1:], rot_, c_)

    if moving:  # only the candidate vertices are evaluated while fitting: the lines index into them
        cand, local = torch.unique(lines.index, return_inverse=True)
        local_lines = ContourLines(local, lines.mask)
        cand_mean, cand_basis = prob.mean[cand], prob.basis[cand]

    def update_contour(coef_, rot_, c_):
        if not moving:
            return
        verts = cand_mean + torch.einsum("vck,bk->bvc", cand_basis, coef_)
        sil_idx, sil_pts = silhouette(local_lines, verts, make_camera(rot_, c_).project)
        sil_idx = torch.where(sil_idx >= 0, cand[sil_idx.clamp_min(0)], sil_idx)
        jaw_idx = jaw.nonzero().flatten()
        chosen = assign_contour(sil_idx, sil_pts, x[:, jaw_idx], sides[jaw_idx])
        index[:, jaw_idx] = chosen[..., None].expand(-1, -1, 2)

    def cost_of(coef_, rot_, c_, lm_mean, lm_basis):
        r, _ = _residual_jacobian(
            rot_, c_, coef_, lm_mean, lm_basis, x, sw, norm, prior, const, camera, False
        )
        return r.square().sum(-1)

    mu = torch.full((b,), 1e-3, dtype=dt, device=dev)
    history: list[float] = []
    eye = torch.eye(6 + k, dtype=dt, device=dev)
    it = 0
    for it in range(1, iterations + 1):  # noqa: B007
        if it <= max(1, (2 * iterations) // 3):  # then fixed, so that the last iterations converge
            update_contour(coef, rot, c)
        lm_mean, lm_basis = prob.gather(index)
        r, j = _residual_jacobian(rot, c, coef, lm_mean, lm_basis, x, sw, norm, prior, const, camera, True)
        cost = r.square().sum(-1)
        history.append(float(cost.mean()))
        jtj = j.transpose(1, 2) @ j
        g = (j.transpose(1, 2) @ r[..., None])[..., 0]
        diag = torch.diagonal(jtj, dim1=1, dim2=2).clamp_min(1e-12)
        for _ in range(4):  # a few damping retries per iteration
            lhs = jtj + (mu[:, None] * diag)[..., None] * eye
            step = -_solve_spd(lhs, g)
            rot_new = axis_angle_to_matrix(step[:, :3]) @ rot
            c_new, coef_new = c + step[:, 3:6], coef + step[:, 6:]
            new_cost = cost_of(coef_new, rot_new, c_new, lm_mean, lm_basis)
            ok = torch.isfinite(new_cost) & (new_cost <= cost)
            rot = torch.where(ok[:, None, None], rot_new, rot)
            c = torch.where(ok[:, None], c_new, c)
            coef = torch.where(ok[:, None], coef_new, coef)
            cost = torch.where(ok, new_cost, cost)
            mu = torch.where(ok, mu * 0.3, mu * 10.0).clamp(1e-9, 1e9)
            if bool(ok.all()):
                break
        if float(step.abs().max()) < 1e-9:
            break
    lm_mean, lm_basis = prob.gather(index)
    final = cost_of(coef, rot, c, lm_mean, lm_basis)
    cam = make_camera(rot, c)
    verts = prob.vertices(coef)
    idx68 = model.landmarks68.to(dev).expand(b, 68).clone()
    if n_pts == 68:
        idx68 = index[..., 0].clone()
    lm3d = torch.gather(verts, 1, idx68[..., None].expand(b, 68, 3))
    proj = cam.project(lm_mean + torch.einsum("blck,bk->blc", lm_basis, coef))
    nme = ((proj - x).norm(dim=-1) * (w > 0)).sum(-1) / (w > 0).sum(-1).clamp_min(1) / norm
    return LandmarkFit(
        params={"id": coef[:, : prob.n_id], "exp": coef[:, prob.n_id :]},
        camera=cam,
        vertices=verts,
        landmarks3d=lm3d,
        landmarks2d=cam.project(lm3d),
        landmark_index=idx68,
        nme=nme,
        cost=final,
        iterations=it,
        history=history,
    )
