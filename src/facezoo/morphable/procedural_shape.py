"""Geometry of the procedural face: the parameter grid, the head-shaped base surface, facial features,
triangles and the iBUG-68 landmark vertices.

The surface is a regular grid in (theta, phi): ``phi`` picks a horizontal slice (a row, constant height y
along a sagittal profile that curls under the chin and back over the forehead), ``theta`` the azimuth in
that slice (a column; x = W(y) sin(theta), so x grows with theta). Each slice is a "super-ellipse" through
the midline point whose front is flatter than an ellipse:
z = z_mid - (z_mid - Z_SIDE) (1 - cos(theta))^P_FLAT.
Facial features are smooth signed Gaussian bumps added along +z on the front (faded out toward the sides).
All lengths are millimetres in the model frame (+x the subject's left = image right, +y up, +z toward the
viewer, origin near the head centre). The face is ~165 mm from chin (y = -75) to the top of the forehead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Anchor heights and positions (mm). Subject's right is -x.
Y_EYE, X_EYE = 30.0, 30.0
Y_BROW = 46.0
Y_NASION = 33.0
Y_TIP = -3.0
Y_SEAM = -38.0
Y_CHIN = -75.0
Z_SIDE = -10.0
P_FLAT = 1.25

THETA_MAX = np.deg2rad(100.0)
PHI_MIN, PHI_MAX = np.deg2rad(-55.0), np.deg2rad(64.0)
THETA_FRONT = np.deg2rad(85.0)  # features and landmarks live within |theta| < THETA_FRONT


def smoothstep(t: np.ndarray) -> np.ndarray:
    """C1 ramp: 0 for t <= 0, 1 for t >= 1, 3t^2 - 2t^3 between."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def gauss2(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    """Separable unit-height Gaussian centred at (cx, cy) mm with widths (sx, sy) mm."""
    return np.exp(-0.5 * ((x - cx) / sx) ** 2 - 0.5 * ((y - cy) / sy) ** 2)


def gauss_pair(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    """Mirror-symmetric pair of Gaussians at (+-cx, cy)."""
    return gauss2(x, y, cx, cy, sx, sy) + gauss2(x, y, -cx, cy, sx, sy)


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))


@dataclass(frozen=True)
class FaceGrid:
    """The (theta, phi) parameter grid. Vertex ``j * n_theta + i`` sits at (theta[i], phi[j])."""

    theta: np.ndarray  # [n_theta] radians, symmetric about 0 (n_theta odd: a midline column exists)
    phi: np.ndarray  # [n_phi] radians, increasing (bottom to top)
    seam_row: int  # the lower-lip row; seam_row + 1 is the upper-lip row (the mouth opens between them)

    @property
    def n_theta(self) -> int:
        return int(self.theta.shape[0])

    @property
    def n_phi(self) -> int:
        return int(self.phi.shape[0])

    @property
    def mid_column(self) -> int:
        return self.n_theta // 2

    def mirror(self) -> np.ndarray:
        """[V] index of each vertex's mirror image (x -> -x)."""
        idx = np.arange(self.n_theta * self.n_phi).reshape(self.n_phi, self.n_theta)
        return idx[:, ::-1].reshape(-1)

    def angles(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-vertex (theta [V], phi [V])."""
        th, ph = np.meshgrid(self.theta, self.phi)
        return th.reshape(-1), ph.reshape(-1)


def _warp(s: np.ndarray, a: float) -> np.ndarray:
    """Monotone map of [-1, 1] onto itself, denser near 0 (slope 1/(1+a) there, (1+3a)/(1+a) at the ends)."""
    return (s + a * s**3) / (1.0 + a)


def _sagittal(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Midline profile: height y and depth z_mid (mm) of each row."""
    b = np.where(phi < 0, 112.0, 108.0)
    y = b * np.sin(phi)
    z = -5.0 + 95.0 * np.sqrt(np.cos(phi))
    # Curl under the chin: a smooth ramp pulls rows below the chin back toward the neck.
    z = z - 1.1 * 6.0 * np.logaddexp(0.0, (Y_CHIN - y) / 6.0)
    return y, z


def half_width(y: np.ndarray) -> np.ndarray:
    """Half-width W(y) of the head slice at height y (mm): temples ~72, jaw tapering to the chin."""
    return (
        72.0
        - 30.0 * _sigmoid((-y - 55.0) / 12.0)
        - 10.0 * _sigmoid((-y - 15.0) / 15.0)
        - 8.0 * _sigmoid((y - 70.0) / 15.0)
    )


def make_grid(n_vertices: int) -> FaceGrid:
    """Choose an (odd) n_theta and n_phi with n_theta * n_phi close to ``n_vertices``."""
    n_theta = int(round(np.sqrt(n_vertices / 0.95)))
    n_theta += 1 - n_theta % 2
    n_phi = int(round(n_vertices / n_theta))
    theta = THETA_MAX * _warp(np.linspace(-1.0, 1.0, n_theta), 0.6)
    mid, half = 0.5 * (PHI_MAX + PHI_MIN), 0.5 * (PHI_MAX - PHI_MIN)
    phi = mid + half * _warp(np.linspace(-1.0, 1.0, n_phi), 0.4)
    y_rows, _ = _sagittal(phi)
    seam_row = int(np.nonzero(y_rows < Y_SEAM)[0].max())
    return FaceGrid(theta=theta, phi=phi, seam_row=seam_row)


def grid_triangles(n_theta: int, n_phi: int) -> np.ndarray:
    """[T,3] int64 triangles of the grid, counter-clockwise seen from +z (outward on the face front).

    Quads (i, j) -> (i+1, j) -> (i+1, j+1) -> (i, j+1) run CCW in (x, y) because x grows with i and y with j;
    the diagonal is mirrored about the midline so that the mesh itself is left-right symmetric.
    """
    i, j = np.meshgrid(np.arange(n_theta - 1), np.arange(n_phi - 1))
    a = (j * n_theta + i).reshape(-1)
    b, c, d = a + 1, a + 1 + n_theta, a + n_theta
    left = (i < (n_theta - 1) // 2).reshape(-1)
    t1 = np.where(left[:, None], np.stack([a, b, d], 1), np.stack([a, b, c], 1))
    t2 = np.where(left[:, None], np.stack([b, c, d], 1), np.stack([a, c, d], 1))
    return np.concatenate([t1, t2], 0).astype(np.int64)


def base_surface(grid: FaceGrid) -> tuple[np.ndarray, np.ndarray]:
    """Head-shaped base: vertices [V,3] mm and the front weight [V] (1 on the face, 0 on the sides)."""
    th, ph = grid.angles()
    y, z_mid = _sagittal(ph)
    x = half_width(y) * np.sin(th)
    ramp = np.clip(1.0 - np.cos(th), 0.0, None) ** P_FLAT
    z = z_mid - (z_mid - Z_SIDE) * ramp
    front = smoothstep((THETA_FRONT - np.abs(th)) / np.deg2rad(25.0))
    return np.stack([x, y, z], 1), front


def seam_height(grid: FaceGrid) -> float:
    """Height of the lip seam: midway between the lower-lip and upper-lip rows."""
    y_rows, _ = _sagittal(grid.phi)
    return float(0.5 * (y_rows[grid.seam_row] + y_rows[grid.seam_row + 1]))


def feature_bumps(x: np.ndarray, y: np.ndarray, y_seam: float) -> dict[str, np.ndarray]:
    """Signed z-displacements (mm) of the facial features at points (x, y) [V]; summed into the template.

    Kept separate so that identity components can scale a single feature (nose projection, lip fullness...).
    """
    ax = np.abs(x)
    # Nose: a ridge growing from the nasion to the tip, widening downward, then dropping under the tip.
    t = smoothstep((Y_NASION + 10.0 - y) / (Y_NASION + 10.0 - Y_TIP))
    height = np.where(y >= Y_TIP, 22.0 * t**1.4, 22.0 * np.exp(-0.5 * ((y - Y_TIP) / 5.0) ** 2))
    width = 5.5 + 5.0 * t
    nose = height * np.exp(-0.5 * (x / width) ** 2)
    nose += 3.5 * gauss2(x, y, 0.0, Y_TIP, 6.0, 5.0)  # tip bulb
    nose += 8.0 * gauss_pair(x, y, 12.5, -8.0, 5.0, 5.0)  # alae (nostril wings)
    sockets = -11.0 * gauss_pair(x, y, 31.0, Y_EYE - 1.0, 14.0, 10.0)
    eyeballs = 6.5 * gauss_pair(x, y, X_EYE, Y_EYE, 10.0, 6.0)
    # The eye opening: a shallow slit between the lids.
    slit = -1.2 * np.exp(-0.5 * ((y - Y_EYE) / 1.5) ** 2) * smoothstep((15.0 - np.abs(ax - X_EYE)) / 3.0)
    brow_arc = Y_BROW + 3.0 * (1.0 - ((ax - 31.0) / 22.0) ** 2)
    brows = 5.0 * np.exp(-0.5 * ((y - brow_arc) / 5.5) ** 2 - 0.5 * ((ax - 30.0) / 18.0) ** 2)
    brows += 4.0 * gauss2(x, y, 0.0, Y_BROW - 3.0, 10.0, 7.0)  # glabella
    cheekbones = 7.0 * gauss_pair(x, y, 46.0, 8.0, 14.0, 12.0)
    cheeks = 3.0 * gauss_pair(x, y, 34.0, -20.0, 14.0, 14.0) - 3.0 * gauss_pair(x, y, 58.0, 45.0, 12.0, 12.0)
    lips = 6.5 * gauss2(x, y, 0.0, y_seam + 6.5, 15.0, 4.5) + 6.0 * gauss2(x, y, 0.0, y_seam - 6.0, 13.0, 4.5)
    lips -= 1.5 * gauss2(x, y, 0.0, y_seam, 20.0, 1.6)  # the lip line
    muzzle = 7.0 * gauss2(x, y, 0.0, y_seam + 2.0, 27.0, 17.0)
    chin = 10.0 * gauss2(x, y, 0.0, Y_CHIN + 10.0, 14.0, 9.0) - 2.5 * gauss2(
        x, y, 0.0, y_seam - 15.0, 14.0, 4.0
    )
    return {
        "nose": nose,
        "sockets": sockets,
        "eyeballs": eyeballs + slit,
        "brows": brows,
        "cheekbones": cheekbones,
        "cheeks": cheeks,
        "lips": lips,
        "muzzle": muzzle,
        "chin": chin,
    }


def template(grid: FaceGrid) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """The mean face: vertices [V,3] mm, the per-feature z-displacements [V] and the front weight [V]."""
    verts, front = base_surface(grid)
    bumps = {k: v * front for k, v in feature_bumps(verts[:, 0], verts[:, 1], seam_height(grid)).items()}
    verts = verts.copy()
    verts[:, 2] += sum(bumps.values())
    return verts, bumps, front


def _jaw_targets() -> np.ndarray:
    """[9,2] (x, y) targets of jaw points 0..8 (subject's right, ear level to the chin)."""
    beta = np.deg2rad(np.linspace(90.0, 0.0, 9))
    x = -68.0 * np.sin(beta) ** 0.85
    y = 22.0 - 97.0 * np.cos(beta) ** 0.85
    return np.stack([x, y], 1)


# Right-side (x <= 0) and midline targets (x, y) mm; the left side is the exact mirror.
_BROW_R = [(-50.0, 44.0), (-41.0, 48.0), (-31.0, 49.5), (-22.0, 48.5), (-14.0, 46.0)]  # 17..21
_NOSE = [(0.0, Y_NASION), (0.0, 22.0), (0.0, 10.0), (0.0, Y_TIP)]  # 27..30
_NOSTRIL_R = [(-11.0, -11.5), (-6.0, -13.5)]  # 31, 32 (33 is the midline)
_EYE_R = [(-44.0, 30.0), (-36.0, 34.0), (-24.0, 34.0), (-16.0, 30.0), (-24.0, 26.5), (-36.0, 26.5)]  # 36..41
_LIP_OUT_R = {48: (-25.0, 0.0), 49: (-16.0, 7.0), 50: (-6.0, 9.5), 59: (-16.0, -7.0), 58: (-7.0, -10.0)}


def landmark_indices(grid: FaceGrid, verts: np.ndarray) -> np.ndarray:
    """[68] int64 vertex indices of the iBUG-68 landmarks on the template ``verts`` [V,3].

    Each right-side point is the front vertex nearest (in x, y) to its target; the left side is its exact
    mirror and midline points are on the midline column. The inner lips use the two rows either side of the
    lip seam (upper 61-63 on ``seam_row + 1``, lower 65-67 on ``seam_row``) so that they stay distinct.
    """
    th, _ = grid.angles()
    mirror = grid.mirror()
    y_seam = seam_height(grid)
    right = np.nonzero((th <= 1e-9) & (np.abs(th) < THETA_FRONT))[0]

    def near(x: float, y: float, pool: np.ndarray = right) -> int:
        d = (verts[pool, 0] - x) ** 2 + (verts[pool, 1] - y) ** 2
        return int(pool[np.argmin(d)])

    def row_pick(row: int, x: float) -> int:
        pool = row * grid.n_theta + np.arange(grid.n_theta)
        return near(x, verts[pool[0], 1], pool[th[pool] <= 1e-9])

    lm = np.full(68, -1, dtype=np.int64)
    jaw = _jaw_targets()
    for k in range(9):
        lm[k] = near(*jaw[k])
        lm[16 - k] = mirror[lm[k]]
    for k, p in enumerate(_BROW_R):
        lm[17 + k] = near(*p)
        lm[26 - k] = mirror[lm[17 + k]]
    for k, p in enumerate(_NOSE):
        lm[27 + k] = near(*p)
    for k, p in enumerate(_NOSTRIL_R):
        lm[31 + k] = near(*p)
        lm[35 - k] = mirror[lm[31 + k]]
    lm[33] = near(0.0, -15.0)
    for k, p in enumerate(_EYE_R):  # 36..41 right eye; left eye 42..47 mirrors 39, 38, 37, 36, 41, 40
        lm[36 + k] = near(*p)
    for k, src in enumerate([39, 38, 37, 36, 41, 40]):
        lm[42 + k] = mirror[lm[src]]
    for k, (x, dy) in _LIP_OUT_R.items():
        lm[k] = near(x, y_seam + dy)
    lm[51] = near(0.0, y_seam + 8.0)
    lm[57] = near(0.0, y_seam - 11.0)
    for src, dst in [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56)]:
        lm[dst] = mirror[lm[src]]
    lm[60] = row_pick(grid.seam_row + 1, -21.0)
    lm[61] = row_pick(grid.seam_row + 1, -9.0)
    lm[62] = row_pick(grid.seam_row + 1, 0.0)
    lm[66] = row_pick(grid.seam_row, 0.0)
    lm[67] = row_pick(grid.seam_row, -9.0)
    lm[64] = mirror[lm[60]]
    lm[63] = mirror[lm[61]]
    lm[65] = mirror[lm[67]]
    return lm
