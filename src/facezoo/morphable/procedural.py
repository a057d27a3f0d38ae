"""The built-in procedural morphable model: facezoo's licence-clean default face, deterministic from a seed.

A head-shaped grid surface with facial features as smooth bumps (``procedural_shape``), identity PCA over
feature-local and smooth random variations and localised, orthonormalised expressions
(``procedural_bases``), a skin albedo model with masks (``procedural_texture``) and a cylindrical UV unwrap
(``uv``). See :func:`procedural_arrays` for the numbers.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from facezoo.morphable.procedural_bases import (
    expression_fields,
    identity_fields,
    orthonormalise,
    pca,
)
from facezoo.morphable.procedural_shape import grid_triangles, landmark_indices, make_grid, template
from facezoo.morphable.procedural_texture import albedo_mean, regions, texture_fields
from facezoo.morphable.uv import cylindrical_uv

if TYPE_CHECKING:
    from facezoo.morphable.model import MorphableModel

MIN_VERTICES = 600
MAX_VERTICES = 500_000


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"procedural model: {name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"procedural model: {name} must be in [{low}, {high}], got {value}")
    return int(value)


@functools.lru_cache(maxsize=8)
def _build(n_vertices: int, seed: int, n_id: int, n_exp: int, n_tex: int) -> dict[str, Any]:
    grid = make_grid(n_vertices)
    mean, bumps, front = template(grid)
    n = mean.shape[0]
    id_basis, id_std = pca(identity_fields(grid, mean, bumps, front, seed, count=max(n_id, 20)), n_id)
    exp_basis, exp_std = orthonormalise(expression_fields(grid, mean, front, seed, count=max(n_exp - 20, 0)))
    reg = regions(grid, mean, front)
    tex_mean = albedo_mean(reg)
    tex_basis, tex_std = pca(
        texture_fields(grid, mean, front, reg, tex_mean, seed, count=max(n_tex, 10)), n_tex
    )
    row = np.arange(n) // grid.n_theta
    chin_row = row[landmark_indices(grid, mean)[8]]
    th, _ = grid.angles()
    front_mask = (np.abs(th) < np.deg2rad(62.0)) & (row >= chin_row - 1) & (mean[:, 1] < 80.0)
    features = reg["zone"] > 0.5
    return {
        "mean": mean.astype(np.float32),
        "id_basis": id_basis.reshape(n, 3, n_id).astype(np.float32),
        "exp_basis": exp_basis[:, :n_exp].reshape(n, 3, n_exp).astype(np.float32),
        "triangles": grid_triangles(grid.n_theta, grid.n_phi),
        "landmarks68": landmark_indices(grid, mean),
        "id_std": id_std.astype(np.float32),
        "exp_std": exp_std[:n_exp].astype(np.float32),
        "tex_mean": tex_mean.astype(np.float32),
        "tex_basis": tex_basis.reshape(n, 3, n_tex).astype(np.float32),
        "tex_std": tex_std.astype(np.float32),
        "uv": cylindrical_uv(mean).astype(np.float32),
        "masks": {"front": front_mask, "skin": front_mask & ~features},
    }


def procedural_arrays(
    n_vertices: int = 5000, seed: int = 0, n_id: int = 80, n_exp: int = 64, n_tex: int = 80
) -> dict[str, Any]:
    """The procedural face as numpy arrays, keyed exactly like ``MorphableModel``'s keyword arguments.

    Geometry: a ~165 mm tall face (chin y = -75 mm to forehead top) on a head-shaped cap ~145 mm wide,
    nose tip ~+110 mm in z, origin near the head centre, on a regular (theta, phi) grid of about
    ``n_vertices`` vertices (the grid is n_theta x n_phi with n_theta odd, denser at the face centre;
    ~2k for tests, ~35k BFM-like). Mirror-symmetric mean, CCW triangles (outward normals).

    Identity: PCA of 20 feature-local variations (face width/height/depth, lower-face length, jaw width, chin,
    nose projection/width/length, eye spacing/height, socket depth, brow ridge, cheekbones, cheeks, lips,
    mouth width/height, forehead slope, prognathism) and max(n_id, 20) seed-dependent smooth random fields.
    The basis [V,3,n_id] is orthonormal as a [3V, n_id] matrix, so ``id_std`` (mm) is the norm of a 1-sigma
    displacement: the per-vertex RMS of component k is id_std[k] / sqrt(V) (about 4.5 mm for the first).

    Expression: ``EXP_NAMES`` in order (jaw_open = a 7 degree rotation of the jaw about a hinge near the
    temporomandibular joint, smile, brow_raise, lip_pucker, eye_close, ...), then localised random fields
    around the mouth, eyes and brows, QR-orthonormalised in that order (so the first ones keep their
    meaning); ``exp_std`` is each residual's norm (the first ones decrease, not all).

    Texture: skin-tone albedo with darker lips, brows, hair, white sclera and dark irises (RGB in [0,1]);
    PCA over brightness, tone, redness, lip/brow/iris/hair colour and random smooth colour fields.

    Landmarks: iBUG-68 vertex indices (subject's right = -x); the inner-lip points 61-63 / 65-67 sit on the
    two rows either side of the lip seam, so the jaw_open expression separates them. UVs: the cylindrical
    unwrap of the mean (:func:`facezoo.morphable.uv.cylindrical_uv`). Masks: "front" (the face from chin to
    forehead, |azimuth| < 62 degrees) and "skin" (front without eyes, brows and lips).

    Built once per argument tuple (cached) and returned as fresh copies.

    Example:
        >>> a = procedural_arrays(n_vertices=2000, n_id=10, n_exp=8, n_tex=6)
        >>> a["id_basis"].shape[1:], a["landmarks68"].shape
        ((3, 10), (68,))
    """
    n_vertices = _check_int("n_vertices", n_vertices, MIN_VERTICES, MAX_VERTICES)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    n_id = _check_int("n_id", n_id, 1, 199)
    n_exp = _check_int("n_exp", n_exp, 1, 199)
    n_tex = _check_int("n_tex", n_tex, 1, 199)
    arrays = _build(n_vertices, seed, n_id, n_exp, n_tex)
    out = {k: v.copy() for k, v in arrays.items() if k != "masks"}
    out["masks"] = {k: v.copy() for k, v in arrays["masks"].items()}
    out.update(bases_scaled=False, name=f"procedural(n_vertices={n_vertices}, seed={seed})", units="mm")
    return out


def procedural_model(
    n_vertices: int = 5000, seed: int = 0, n_id: int = 80, n_exp: int = 64, n_tex: int = 80
) -> MorphableModel:
    """The procedural face as a ``MorphableModel``; see :func:`procedural_arrays`.

    Example:
        >>> model = procedural_model(n_vertices=2000, n_id=10, n_exp=8, n_tex=6)
        >>> model.n_id
        10
    """
    from facezoo.morphable.model import MorphableModel

    return MorphableModel(**procedural_arrays(n_vertices, seed, n_id, n_exp, n_tex))
