"""Identity and expression deformation fields of the procedural face, and their orthonormalisation.

Every field is a 1-sigma displacement [V,3] in mm of the template. Identity: the population is a sum of
independent standard-normal coefficients times fixed fields (feature-local variations such as nose length or
jaw width, plus seed-dependent smooth random fields), so its covariance is exactly F F^T and PCA is the SVD of
F [3V, J] -- the same as PCA over infinitely many random "scans", without sampling noise. Expression:
named, localised deformations (jaw rotation about a hinge, smile, brow raise, ...) orthonormalised in order by
QR so that the first components keep their meaning, then seed-dependent localised random fields.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from facezoo.morphable.procedural_shape import (
    Y_CHIN,
    Y_EYE,
    Y_TIP,
    FaceGrid,
    gauss2,
    gauss_pair,
    seam_height,
    smoothstep,
)

EXP_NAMES = (
    "jaw_open",
    "smile",
    "brow_raise",
    "lip_pucker",
    "eye_close",
    "mouth_stretch",
    "brow_frown",
    "mouth_left",
    "cheek_puff",
    "lip_corner_down",
    "upper_lip_raise",
    "lower_lip_down",
    "jaw_left",
    "eye_close_right",
    "jaw_forward",
    "brow_raise_inner",
    "nose_wrinkle",
    "smile_right",
    "lips_roll_in",
    "squint",
)


def _vec(dx: np.ndarray | float, dy: np.ndarray | float, dz: np.ndarray | float, n: int) -> np.ndarray:
    return np.stack(np.broadcast_arrays(dx, dy, dz, np.zeros(n))[:3], 1).astype(np.float64)


def _random_fields(
    rng: np.random.Generator,
    verts: np.ndarray,
    front: np.ndarray,
    mirror: np.ndarray,
    count: int,
    centres: np.ndarray,
    scale: tuple[float, float],
    amp: float,
    asym: float,
    axes: tuple[float, float, float] = (0.45, 0.45, 1.0),
) -> np.ndarray:
    """[V,3,count] smooth random fields: each a sum of 3 Gaussian RBFs (random centre near ``centres`` [C,2]
    (x,y) mm, random width in ``scale`` mm, random direction weighted by ``axes``, z-dominant by default)
    whose amplitude grows with the width (a smooth-process spectrum), split into a symmetric part plus
    ``asym`` times its antisymmetric part."""
    # float32 while evaluating the RBFs: half the cost of exp, and ample for smooth fields.
    x, y = verts[None, :, 0].astype(np.float32), verts[None, :, 1].astype(np.float32)
    wf = front.astype(np.float32)
    out = np.empty((count, verts.shape[0], 3), np.float32)  # field-major while building: contiguous writes
    for k in range(count):
        c = centres[rng.integers(len(centres), size=3)] + rng.normal(0.0, 8.0, (3, 2))
        s = rng.uniform(*scale, size=3)
        d = rng.normal(0.0, 1.0, (3, 3)) * np.asarray(axes) * (amp * (s[:, None] / scale[1]) ** 1.5)
        c, s, d = c.astype(np.float32), s.astype(np.float32)[:, None], d.astype(np.float32)
        g = np.exp(-0.5 * (((x - c[:, :1]) / s) ** 2 + ((y - c[:, 1:]) / s) ** 2))  # [3,V]
        out[k] = (g * wf).T @ d
    m = out[:, mirror]
    m[..., 0] *= -1.0
    out = 0.5 * (1.0 + asym) * out + 0.5 * (1.0 - asym) * m
    return out.transpose(1, 2, 0).astype(np.float64)


def identity_fields(
    grid: FaceGrid, verts: np.ndarray, bumps: dict[str, np.ndarray], front: np.ndarray, seed: int, count: int
) -> np.ndarray:
    """[3V, 20 + count] identity fields (1-sigma, mm): 20 feature-local variations + ``count`` random smooth
    fields."""
    n = verts.shape[0]
    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    ys = seam_height(grid)
    lower = smoothstep((Y_TIP - 10.0 - y) / (Y_TIP - 10.0 - Y_CHIN))
    jaw = smoothstep((-20.0 - y) / 45.0) * front
    eyes = gauss_pair(x, y, 30.0, Y_EYE, 14.0, 11.0) * front
    mouth = gauss2(x, y, 0.0, ys, 25.0, 12.0) * front
    feats = [
        _vec(0.035 * x, 0.0, 0.0, n),  # face width
        _vec(0.0, 0.03 * y, 0.0, n),  # face height
        _vec(0.0, 0.0, 0.035 * (z + 10.0), n),  # depth
        _vec(0.0, -6.0 * lower, 0.0, n),  # lower-face length
        _vec(0.10 * x * jaw, 0.0, 0.0, n),  # jaw width
        _vec(0.0, 0.0, 4.0 * gauss2(x, y, 0.0, -68.0, 16.0, 12.0) * front, n),  # chin protrusion
        _vec(0.0, 0.0, 0.22 * bumps["nose"], n),  # nose projection
        _vec(0.15 * x * gauss2(x, y, 0.0, -6.0, 14.0, 10.0), 0.0, 0.0, n),  # nose width
        _vec(0.0, -3.5 * gauss2(x, y, 0.0, -5.0, 12.0, 10.0) * front, 0.0, n),  # nose length
        _vec(2.5 * np.tanh(x / 5.0) * eyes, 0.0, 0.0, n),  # eye spacing
        _vec(0.0, 2.5 * eyes, 0.0, n),  # eye height
        _vec(0.0, 0.0, 0.25 * bumps["sockets"], n),  # socket depth
        _vec(0.0, 0.0, 0.35 * bumps["brows"], n),  # brow ridge
        _vec(0.04 * x * gauss_pair(x, y, 46.0, 8.0, 14.0, 12.0), 0.0, 0.4 * bumps["cheekbones"], n),
        _vec(0.0, 0.0, 0.5 * bumps["cheeks"], n),  # cheek fullness
        _vec(0.0, 0.0, 0.3 * bumps["lips"], n),  # lip fullness
        _vec(0.12 * x * mouth, 0.0, 0.0, n),  # mouth width
        _vec(0.0, 2.5 * mouth, 0.0, n),  # mouth height
        _vec(0.0, 0.0, -6.0 * smoothstep((y - 40.0) / 60.0) * front, n),  # forehead slope
        _vec(0.0, 0.0, 0.4 * bumps["muzzle"], n),  # prognathism
    ]
    rng = np.random.default_rng([seed, 1])
    centres = np.stack(np.meshgrid(np.linspace(-60, 60, 7), np.linspace(-80, 80, 9)), -1).reshape(-1, 2)
    rand = _random_fields(rng, verts, front, grid.mirror(), count, centres, (15.0, 50.0), 1.2, 0.35)
    return np.concatenate([np.stack(feats, -1), rand], -1).reshape(3 * n, -1)


def jaw_weight(grid: FaceGrid, verts: np.ndarray) -> np.ndarray:
    """[V] in [0,1]: how much a vertex follows the jaw. Between the mouth corners it is sharp across the lip
    seam (the upper lip, rows > seam_row, stays; the lower lip moves), tapering toward the corners so that the
    mouth opens as an ellipse; smooth over the cheeks; fading toward the neck and ears."""
    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    row = np.arange(verts.shape[0]) // grid.n_theta
    ys = seam_height(grid)
    slot = 1.0 - smoothstep((np.abs(x) - 22.0) / 10.0)
    taper = 0.15 + 0.85 * np.cos(0.5 * np.pi * np.clip(np.abs(x) / 26.0, 0.0, 1.0)) ** 2
    lower_lip = taper + (1.0 - taper) * smoothstep((ys - y) / 18.0)
    smooth = smoothstep((ys + 6.0 - y) / 26.0)
    w = slot * (row <= grid.seam_row) * lower_lip + (1.0 - slot) * smooth
    return w * smoothstep((z + 10.0) / 50.0)


def expression_fields(
    grid: FaceGrid, verts: np.ndarray, front: np.ndarray, seed: int, count: int
) -> np.ndarray:
    """[3V, E] expression fields (1-sigma, mm): ``EXP_NAMES`` in order, then ``count`` random local ones."""
    n = verts.shape[0]
    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    ys = seam_height(grid)
    sgn = np.tanh(x / 3.0)
    w = jaw_weight(grid, verts)

    def rot_x(angle_deg: float) -> np.ndarray:  # rotation of the jaw about the x axis through the hinge
        a = np.deg2rad(angle_deg)
        yr, zr = y - 8.0, z - 5.0  # hinge near the temporomandibular joint
        return _vec(
            0.0, w * (yr * np.cos(a) - zr * np.sin(a) - yr), w * (yr * np.sin(a) + zr * np.cos(a) - zr), n
        )

    corners = gauss_pair(x, y, 25.0, ys, 9.0, 8.0) * front
    corner_r = gauss2(x, y, -25.0, ys, 9.0, 8.0) * front
    lips = gauss2(x, y, 0.0, ys, 18.0, 10.0) * front
    upper_lid = gauss_pair(x, y, 30.0, Y_EYE + 4.0, 10.0, 4.5) * front
    upper_lid_r = gauss2(x, y, -30.0, Y_EYE + 4.0, 10.0, 4.5) * front
    lower_lid = gauss_pair(x, y, 30.0, Y_EYE - 4.0, 11.0, 4.0) * front
    # Brows and forehead move up together; the weight ramps up over the brows and fades over the scalp.
    brow = smoothstep((y - Y_EYE - 6.0) / 16.0) * (1.0 - smoothstep((y - 75.0) / 35.0)) * front
    brow *= 1.0 - smoothstep((np.abs(x) - 45.0) / 20.0)
    inner_brow = gauss_pair(x, y, 16.0, 46.0, 12.0, 10.0) * front
    cheeks = gauss_pair(x, y, 34.0, -12.0, 13.0, 13.0) * front
    named = {
        "jaw_open": rot_x(5.0),
        "smile": _vec(4.0 * sgn * corners, 4.5 * corners + 2.0 * cheeks, -2.0 * corners + 1.5 * cheeks, n),
        "brow_raise": _vec(0.0, 3.5 * brow, 0.3 * brow, n),
        "lip_pucker": _vec(-0.25 * x * lips, 0.0, 5.0 * lips, n),
        "eye_close": _vec(0.0, -3.5 * upper_lid + 0.7 * lower_lid, 0.3 * upper_lid, n),
        "mouth_stretch": _vec(0.15 * x * lips, 0.0, -1.0 * lips, n),
        "brow_frown": _vec(-2.0 * sgn * inner_brow, -2.2 * inner_brow, 0.4 * inner_brow, n),
        "mouth_left": _vec(4.0 * lips, 0.0, 0.0, n),
        "cheek_puff": _vec(1.5 * sgn * cheeks, 0.0, 4.0 * cheeks, n),
        "lip_corner_down": _vec(0.0, -3.5 * corners, 0.0, n),
        "upper_lip_raise": _vec(0.0, 3.0 * gauss2(x, y, 0.0, ys + 7.0, 15.0, 5.5) * front, 0.0, n),
        "lower_lip_down": _vec(0.0, -3.0 * gauss2(x, y, 0.0, ys - 7.0, 14.0, 5.5) * front, 0.0, n),
        "jaw_left": _vec(4.0 * w, 0.0, 0.0, n),
        "eye_close_right": _vec(0.0, -3.5 * upper_lid_r, 0.3 * upper_lid_r, n),
        "jaw_forward": _vec(0.0, 0.0, 4.0 * w, n),
        "brow_raise_inner": _vec(0.0, 3.5 * inner_brow, 0.0, n),
        "nose_wrinkle": _vec(0.0, 2.0 * gauss2(x, y, 0.0, 10.0, 14.0, 9.0) * front, 0.0, n),
        "smile_right": _vec(4.0 * sgn * corner_r, 4.5 * corner_r, -2.0 * corner_r, n),
        "lips_roll_in": _vec(0.0, 0.0, -3.0 * gauss2(x, y, 0.0, ys, 16.0, 6.0) * front, n),
        "squint": _vec(0.0, 2.0 * lower_lid, 0.0, n),
    }
    rng = np.random.default_rng([seed, 2])
    centres = np.array([[0, ys], [20, ys], [-20, ys], [30, Y_EYE], [-30, Y_EYE], [25, 47], [-25, 47]], float)
    rand = _random_fields(rng, verts, front, grid.mirror(), count, centres, (8.0, 16.0), 1.5, 0.5)
    return np.concatenate([np.stack([named[k] for k in EXP_NAMES], -1), rand], -1).reshape(3 * n, -1)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run small dense LAPACK calls single-threaded: on a loaded machine, OpenMP threads spinning on a
    120x120 eigh cost ~1 s instead of ~1 ms, and small matrices gain nothing from threads."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _chol_qr(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Thin QR of a tall [D,J] matrix by Cholesky QR: a^T a = L L^T, Q = a L^-T, R = L^T (diag(R) > 0).
    Orthonormal to ~eps * cond(a)^2, ample for our well-conditioned fields, and much faster than
    Householder QR for D >> J."""
    with _one_thread():
        chol = torch.linalg.cholesky(a.T @ a)
    q = torch.linalg.solve_triangular(chol, a.T, upper=False).T
    return q, chol.T


def pca(fields: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of the population sum_j N(0,1) fields[:, j]: (basis [D,k] orthonormal, std [k]).

    The covariance is F F^T, whose leading eigenvectors are the left singular vectors of F [D,J]; computed
    from the small Gram matrix F^T F = W S^2 W^T (U = F W S^-1; orthonormal to ~eps (s_1/s_k)^2)."""
    f = torch.from_numpy(fields)
    gram = f.T @ f
    with _one_thread():
        evals, w = torch.linalg.eigh(gram)
    order = torch.argsort(evals, descending=True)[:k]
    std = evals[order].clamp_min(0.0).sqrt()
    w = w[:, order]
    # Deterministic signs: u_k . f_j = std_k w_jk, so make u_k agree with the field it loads most on.
    w = w * torch.sign(w.gather(0, w.abs().argmax(0, keepdim=True)))
    return (f @ (w / std)).numpy(), std.numpy()


def orthonormalise(fields: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """QR in column order: (basis [D,E] orthonormal, std [E]). Column j of the basis is field j minus its
    projection on the earlier ones, normalised (positive dot product with field j); its std is that
    residual's norm (mm), so field j's own 1-sigma part is preserved."""
    q, r = _chol_qr(torch.from_numpy(fields))
    return q.numpy(), torch.diagonal(r).numpy()
