"""Albedo model and region masks of the procedural face.

Regions (eye openings, irises, brows, lips, hair) are smooth indicator functions of the template's (x, y) in
mm, placed consistently with the landmark targets of ``procedural_shape`` (e.g. the eyelid landmarks lie on
the boundary of the eye openings, the outer-lip landmarks on the lip outline). The albedo is a skin tone with
pinker cheeks, darker lips and brows, sclera/iris/pupil in the eye openings and darker hair above the
forehead. Texture variation is PCA (as for identity) over colour fields: brightness, warm/cool tone,
redness, lip/brow/iris/hair colour and seed-dependent smooth random colour fields.
"""

from __future__ import annotations

import numpy as np

from facezoo.morphable.procedural_bases import _random_fields
from facezoo.morphable.procedural_shape import X_EYE, Y_BROW, Y_EYE, FaceGrid, gauss_pair, seam_height

SKIN = np.array([0.76, 0.57, 0.46])
LIPS = np.array([0.66, 0.36, 0.36])
BROWS = np.array([0.30, 0.21, 0.16])
SCLERA = np.array([0.90, 0.88, 0.85])
IRIS = np.array([0.33, 0.22, 0.14])
PUPIL = np.array([0.05, 0.04, 0.04])
HAIR = np.array([0.22, 0.15, 0.11])


def _inside(t: np.ndarray, width: float = 0.12) -> np.ndarray:
    """Soft indicator of t < 1 (t a normalised radius)."""
    return 0.5 * (1.0 - np.tanh((t - 1.0) / width))


def regions(grid: FaceGrid, verts: np.ndarray, front: np.ndarray) -> dict[str, np.ndarray]:
    """Soft region indicators [V] in [0,1]: eyes, iris, pupil, brows, lips, nostrils, hair, cheeks, and
    ``zone`` (dilated eyes, brows and lips)."""
    x, y = verts[:, 0], verts[:, 1]
    ax = np.abs(x)
    ys = seam_height(grid)
    eye_r = np.sqrt(((ax - X_EYE) / 14.5) ** 2 + ((y - Y_EYE) / 4.3) ** 2)
    eyes = _inside(eye_r) * front
    iris_r = np.hypot(ax - X_EYE, y - Y_EYE)
    brow_y = Y_BROW + 3.0 * (1.0 - ((ax - 31.0) / 22.0) ** 2) - 0.5
    brow_half = 3.4 - 1.6 * np.clip((ax - 31.0) / 20.0, 0.0, 1.0)  # tapering toward the outer end
    brow_t = np.sqrt(((y - brow_y) / brow_half) ** 2 + ((ax - 31.5) / 20.5) ** 6)  # rounded ends
    brows = _inside(brow_t, 0.15) * front
    u = np.clip(ax / 25.5, 0.0, 1.0)
    top = ys + 1.0 + 8.5 * np.sqrt(1.0 - u**2) * (1.0 - 0.25 * np.exp(-((x / 3.0) ** 2)))  # cupid's bow dip
    bottom = ys - 1.0 - 10.5 * (1.0 - u**2) ** 0.6
    lip_t = np.where(y >= ys, (y - ys) / np.maximum(top - ys, 1e-3), (ys - y) / np.maximum(ys - bottom, 1e-3))
    lip_t = np.maximum(lip_t, ax / 25.5)
    lips = _inside(lip_t, 0.1) * front
    return {
        # Dilated zones (their landmarks lie on the region boundaries): what the "skin" mask leaves out.
        "zone": np.maximum.reduce([_inside(eye_r / 1.5), _inside(brow_t / 1.4), _inside(lip_t / 1.3)])
        * front,
        "eyes": eyes,
        "iris": eyes * _inside(iris_r / 5.5, 0.1),
        "pupil": eyes * _inside(iris_r / 2.0, 0.15),
        "brows": brows,
        "lips": lips,
        "nostrils": gauss_pair(x, y, 6.5, -12.5, 2.8, 1.6) * front,
        "hair": np.clip(_inside((95.0 - y) / 18.0, 0.15) + (1.0 - front), 0.0, 1.0),
        "cheeks": gauss_pair(x, y, 40.0, -5.0, 14.0, 12.0) * front,
    }


def _mix(base: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return base * (1.0 - alpha[:, None]) + colour[None, :] * alpha[:, None]


def albedo_mean(reg: dict[str, np.ndarray]) -> np.ndarray:
    """[V,3] RGB in [0,1]."""
    n = reg["eyes"].shape[0]
    tex = np.tile(SKIN, (n, 1))
    tex = tex + reg["cheeks"][:, None] * np.array([0.04, -0.03, -0.02])
    tex = _mix(tex, LIPS, reg["lips"])
    tex = _mix(tex, BROWS, 0.85 * reg["brows"])
    tex = _mix(tex, SCLERA, reg["eyes"])
    tex = _mix(tex, IRIS, reg["iris"])
    tex = _mix(tex, PUPIL, reg["pupil"])
    tex = _mix(tex, PUPIL, 0.6 * reg["nostrils"])
    tex = _mix(tex, HAIR, reg["hair"])
    return np.clip(tex, 0.0, 1.0)


def texture_fields(
    grid: FaceGrid,
    verts: np.ndarray,
    front: np.ndarray,
    reg: dict[str, np.ndarray],
    mean: np.ndarray,
    seed: int,
    count: int,
) -> np.ndarray:
    """[3V, J] colour fields (1-sigma, RGB units): 7 named + ``count`` smooth random ones."""
    skin = np.clip(1.0 - reg["eyes"] - reg["hair"], 0.0, 1.0)[:, None]
    feats = [
        0.08 * mean * (1.0 - reg["eyes"][:, None]),  # brightness (multiplicative)
        skin * np.array([0.025, 0.005, -0.025]),  # warm / cool
        skin * reg["cheeks"][:, None] * np.array([0.05, -0.02, -0.02])
        + skin * np.array([0.02, -0.01, -0.01]),
        reg["lips"][:, None] * np.array([0.06, -0.01, 0.01]),
        reg["brows"][:, None] * np.array([-0.06, -0.05, -0.04]),
        reg["iris"][:, None] * np.array([0.06, 0.08, 0.06]),
        reg["hair"][:, None] * np.array([0.08, 0.06, 0.04]),
    ]
    rng = np.random.default_rng([seed, 3])
    centres = np.stack(np.meshgrid(np.linspace(-60, 60, 7), np.linspace(-80, 80, 9)), -1).reshape(-1, 2)
    rand = _random_fields(
        rng,
        verts,
        front * skin[:, 0],
        grid.mirror(),
        count,
        centres,
        (12.0, 45.0),
        0.03,
        0.4,
        (1.0, 1.0, 1.0),
    )
    # Colour variations mostly along the skin-tone direction (lighter/darker, redder), little hue noise.
    mix = 0.8 * np.outer(SKIN / np.linalg.norm(SKIN), [1.0, 1.0, 1.0]) + 0.25 * np.eye(3)
    rand = np.einsum("dc,vck->vdk", mix, rand)
    return np.concatenate([np.stack(feats, -1), rand], -1).reshape(3 * verts.shape[0], -1)
