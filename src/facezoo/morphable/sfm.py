"""Surrey Face Model (eos) reader: cereal portable-binary ``.bin`` files parsed with numpy, no eos dependency.

Files (eos's ``share/`` folder; the model is non-commercial: get it from the Surrey Face Model page,
cvssp.org/facemodel, or eos's repository for the low-resolution ``sfm_shape_3448.bin``):

* ``sfm_shape_<N>.bin``: u32 MorphableModel class version (1), then the shape ``PcaModel`` = mean [3N,1]
  (mm, xyz interleaved), orthonormal basis [3N,K] (column-major), eigenvalues [K,1] (variances, mm²),
  triangles (u64 count, then count x 3 int32, 0-based); then the colour ``PcaModel`` in the same layout (empty
  in the shape-only model; RGB in [0,1] otherwise); then texture coordinates (u64 count, then count x 2
  float64, v down). Each Eigen matrix is int32 rows, int32 cols, then rows*cols values, column-major.
* ``expression_blendshapes_<N>.bin``: u64 count, then per blendshape: name (u64 length + bytes), deformation
  [3N,1] float32 (int32 rows, int32 cols, data).
* ``ibug_to_sfm.txt``: TOML ``[landmark_mappings]``: iBUG point (1-based) = SFM vertex (0-based).
* ``sfm_model_contours.json`` (optional): the jaw contour vertices eos uses for contour fitting.

Conversion to a :class:`MorphableModel`:

* identity: ``id_basis`` = the orthonormal basis, ``id_std = sqrt(eigenvalues)`` (eos stores variances and
  rescales by their square roots), ``bases_scaled=False``.
* expression: the blendshapes are the expression basis as they are (anger, disgust, fear, happiness, sadness,
  surprise). They are NOT orthonormal (nor orthogonal) and have no statistics, so ``exp_std = 1``: a
  coefficient is a blendshape weight (eos fits them with non-negative least squares; facezoo's N(0,1) prior
  on them is a regulariser only).
* landmarks: 50 of the 68 iBUG points have an SFM vertex. The 16 jaw-contour points (iBUG 1-8, 10-17) and the
  two inner mouth corners (61, 65) have none: ``landmark_valid`` is False there and ``landmarks68`` holds a
  stand-in vertex (contour points: the vertex of ``sfm_model_contours.json`` whose height best matches an
  even spacing from the outer eye corner down to the chin, else the chin; inner mouth corners: the outer
  mouth corner), so that losses can mask them and plots still look sensible.
* frame: SFM is already +y up, +z out of the face, subject's right at -x, triangles CCW from outside, in mm;
  its origin is at the nose tip. With ``align_to_bfm=True`` (default) the mean is translated in y and z so
  that the nose tip (iBUG 31) sits where BFM's mean nose tip is, (., -8, 132) mm: the origin then lies near
  the head centre as facezoo's convention asks, and cameras tuned for BFM work unchanged.
* uv: eos's texture coordinates with v flipped to point up.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import numpy as np

from facezoo.morphable.formats import as_folders, find_file, orient_front
from facezoo.morphable.model import MorphableModel

__all__ = ["read_sfm_shape", "read_sfm_blendshapes", "read_ibug_to_sfm", "load_sfm", "BFM_NOSE_TIP_MM"]

#: BFM 2009's mean nose tip (iBUG 31 = index 30 of 3DDFA's keypoints) in mm; non-BFM loaders align to it.
BFM_NOSE_TIP_MM = np.array([0.0, -8.0, 132.0])
SFM_LICENCE = "Surrey Face Model: non-commercial research use only (see the SFM licence); eos code Apache-2.0"
WHERE_SFM = (
    "eos's share/ folder (github.com/patrikhuber/eos) or the Surrey Face Model page (cvssp.org/facemodel)"
)


class _Reader:
    """Little-endian cursor over a cereal portable-binary buffer, with errors that say what was being read."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def _need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(
                f"{self.path}: truncated or not an eos cereal file: reading {what} needs {n} bytes at offset "
                f"{self.pos}, the file has {len(self.data)}"
            )

    def scalar(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        self._need(size, what)
        (v,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return v

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        dt = np.dtype(dtype).newbyteorder("<")
        self._need(count * dt.itemsize, what)
        a = np.frombuffer(self.data, dt, count, self.pos)
        self.pos += count * dt.itemsize
        return a

    def matrix(self, what: str, dtype: str = "f4") -> np.ndarray:
        rows, cols = self.scalar("i", f"{what} rows"), self.scalar("i", f"{what} cols")
        if rows < 0 or cols < 0:
            raise ValueError(f"{self.path}: {what} has a negative size {rows}x{cols}; not an eos cereal file")
        return self.array(dtype, rows * cols, what).reshape(cols, rows).T  # column-major

    def vector_of(self, dtype: str, width: int, what: str) -> np.ndarray:
        n = self.scalar("Q", f"{what} count")
        return self.array(dtype, n * width, what).reshape(n, width)

    def string(self, what: str) -> str:
        n = self.scalar("Q", f"{what} length")
        return bytes(self.array("u1", n, what)).decode("utf-8", errors="replace")


def _pca(r: _Reader, what: str) -> dict[str, np.ndarray]:
    mean = r.matrix(f"{what} mean")
    basis = r.matrix(f"{what} basis")
    ev = r.matrix(f"{what} eigenvalues")
    tri = r.vector_of("i4", 3, f"{what} triangles")
    if mean.shape[0] and (mean.shape[1] != 1 or basis.shape[0] != mean.shape[0] or ev.size != basis.shape[1]):
        raise ValueError(
            f"{r.path}: inconsistent {what} PCA model: mean {mean.shape}, basis {basis.shape}, "
            f"eigenvalues {ev.shape}"
        )
    return {"mean": mean.reshape(-1), "basis": basis, "eigenvalues": ev.reshape(-1), "triangles": tri}


def read_sfm_shape(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Parse ``sfm_shape_<N>.bin``: dict with ``mean`` [3N], ``basis`` [3N,K], ``eigenvalues`` [K],
    ``triangles`` [T,3] 0-based, ``color_mean``/``color_basis``/``color_eigenvalues`` (empty for shape-only),
    ``texcoords`` [N,2] (v down), ``version``."""
    path = Path(path)
    r = _Reader(path.read_bytes(), path)
    version = r.scalar("I", "class version")
    if version != 1:
        raise ValueError(f"{path}: eos MorphableModel class version {version}; facezoo reads version 1")
    shape = _pca(r, "shape")
    color = _pca(r, "colour")
    tc = r.vector_of("f8", 2, "texture coordinates")
    if r.pos != len(r.data):
        raise ValueError(
            f"{path}: {len(r.data) - r.pos} unexpected trailing bytes after the texture coordinates"
        )
    n = shape["mean"].size // 3
    if shape["mean"].size % 3 or shape["triangles"].size == 0:
        raise ValueError(f"{path}: shape mean of {shape['mean'].size} values is not [3N] or has no triangles")
    if tc.shape[0] not in (0, n):
        raise ValueError(f"{path}: {tc.shape[0]} texture coordinates for {n} vertices")
    return {
        "version": np.array(version),
        **shape,
        "color_mean": color["mean"],
        "color_basis": color["basis"],
        "color_eigenvalues": color["eigenvalues"],
        "texcoords": tc,
    }


def read_sfm_blendshapes(path: str | os.PathLike) -> list[tuple[str, np.ndarray]]:
    """Parse ``expression_blendshapes_<N>.bin``: a list of (name, deformation [3N]) in file order."""
    path = Path(path)
    r = _Reader(path.read_bytes(), path)
    count = r.scalar("Q", "blendshape count")
    if count > 10_000:
        raise ValueError(f"{path}: claims {count} blendshapes; not an eos blendshapes file")
    out = []
    for i in range(count):
        name = r.string(f"blendshape {i} name")
        d = r.matrix(f"blendshape {i} ({name}) deformation")
        if d.ndim != 2 or d.shape[1] != 1:
            raise ValueError(f"{path}: blendshape {name!r} should be [3N,1], got {d.shape}")
        out.append((name, d.reshape(-1)))
    if r.pos != len(r.data):
        raise ValueError(f"{path}: {len(r.data) - r.pos} unexpected trailing bytes after {count} blendshapes")
    return out


def read_ibug_to_sfm(path: str | os.PathLike) -> dict[int, int]:
    """``[landmark_mappings]`` of ``ibug_to_sfm.txt``: {iBUG point (1-based): SFM vertex (0-based)}."""
    path = Path(path)
    mapping: dict[int, int] = {}
    section = None
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]").strip()
            continue
        m = re.fullmatch(r'"?(\d+)"?\s*=\s*(\d+)', line)
        if section == "landmark_mappings" and m:
            mapping[int(m.group(1))] = int(m.group(2))
    if not mapping or any(not 1 <= k <= 68 for k in mapping):
        raise ValueError(f"{path}: expected a [landmark_mappings] section of 'ibug (1..68) = vertex' lines")
    return mapping


def _landmarks(mapping: dict[int, int], mean: np.ndarray, contours: dict | None, path: Path):
    V = mean.shape[0]
    bad = {k: v for k, v in mapping.items() if v >= V}
    if bad:
        raise ValueError(f"{path}: landmark vertices {bad} are beyond the model's {V} vertices")
    lm = np.zeros(68, np.int64)
    valid = np.zeros(68, bool)
    for k, v in mapping.items():
        lm[k - 1], valid[k - 1] = v, True
    chin = mapping.get(9, int(np.argmin(mean[:, 1])))
    # Stand-ins (flagged invalid) for the points the SFM does not define.
    for inner, outer in ((61, 49), (65, 55)):
        if not valid[inner - 1]:
            lm[inner - 1] = mapping.get(outer, chin)
    top = {1: mapping.get(37), 17: mapping.get(46)}  # outer eye corners: height of iBUG 1 / 17
    for side, points, name in (
        ("right", range(1, 9), "right_contour"),
        ("left", range(17, 9, -1), "left_contour"),
    ):
        cont = np.asarray((contours or {}).get(name, []), dtype=np.int64)
        cont = cont[(cont >= 0) & (cont < V)]
        eye = top[1 if side == "right" else 17]
        for j, k in enumerate(points):
            if valid[k - 1]:
                continue
            if cont.size and eye is not None:
                # iBUG 1..9 are about evenly spaced in height from the eye corner to the chin.
                y = mean[eye, 1] + (mean[chin, 1] - mean[eye, 1]) * j / 8.0
                lm[k - 1] = cont[np.argmin(np.abs(mean[cont, 1] - y))]
            else:
                lm[k - 1] = chin
    return lm, valid


def _find_one(folders, pattern: str, expected: str) -> Path:
    for folder in as_folders(folders):
        if folder.is_file() and folder.match(pattern):
            return folder
        hits = sorted(folder.glob(pattern)) if folder.is_dir() else []
        if hits:
            return hits[0]
    return find_file(folders, pattern.replace("*", "3448"), expected, WHERE_SFM)


def load_sfm(folders, align_to_bfm: bool = True, blendshapes: bool = True) -> MorphableModel:
    """The Surrey Face Model as a :class:`MorphableModel` (see the module docstring for every choice).

    Args:
        folders: a folder (or several; or the shape ``.bin`` itself) holding ``sfm_shape_*.bin``,
            ``expression_blendshapes_*.bin`` (needed when ``blendshapes``), ``ibug_to_sfm.txt`` and optionally
            ``sfm_model_contours.json``.
        align_to_bfm: translate so the mean nose tip sits at BFM's (origin near the head centre).
        blendshapes: use the blendshapes as the expression basis (else Kexp=0).
    """
    dirs = [f.parent if f.is_file() else f for f in as_folders(folders)]
    shape_path = _find_one(folders, "sfm_shape_*.bin", "the SFM shape model (eos cereal binary)")
    s = read_sfm_shape(shape_path)
    V = s["mean"].size // 3
    mean = s["mean"].reshape(V, 3).astype(np.float64)
    id_basis = s["basis"].reshape(V, 3, -1)
    ev = s["eigenvalues"].astype(np.float64)
    if np.any(ev <= 0):
        raise ValueError(f"{shape_path}: eigenvalues (variances) must be positive, min {ev.min()}")

    exp_basis, names = None, []
    if blendshapes:
        bs_path = _find_one(
            dirs, "expression_blendshapes_*.bin", "the SFM expression blendshapes (eos cereal)"
        )
        bs = read_sfm_blendshapes(bs_path)
        for name, d in bs:
            if d.size != 3 * V:
                raise ValueError(
                    f"{bs_path}: blendshape {name!r} has {d.size} values, the shape model {3 * V}"
                )
        names = [n for n, _ in bs]
        exp_basis = np.stack([d.reshape(V, 3) for _, d in bs], -1) if bs else None

    map_path = find_file(dirs, "ibug_to_sfm.txt", "the iBUG-68 to SFM vertex mapping (TOML)", WHERE_SFM)
    cpath = find_file(dirs, "sfm_model_contours.json", "", WHERE_SFM, required=False)
    contours = json.loads(cpath.read_text()).get("model_contour") if cpath else None
    lm, valid = _landmarks(read_ibug_to_sfm(map_path), mean, contours, map_path)

    if align_to_bfm:
        offset = BFM_NOSE_TIP_MM - mean[lm[30]]
        offset[0] = 0.0  # keep SFM's midline at x = 0
        mean = mean + offset
    tex = {}
    if s["color_mean"].size:
        cev = s["color_eigenvalues"].astype(np.float64)
        tex = dict(
            tex_mean=s["color_mean"].reshape(V, 3),
            tex_basis=s["color_basis"].reshape(V, 3, -1),
            tex_std=np.sqrt(cev),
        )
    uv = None
    if s["texcoords"].shape[0] == V:
        uv = np.stack([s["texcoords"][:, 0], 1.0 - s["texcoords"][:, 1]], 1)
    return MorphableModel(
        mean=mean,
        id_basis=id_basis,
        id_std=np.sqrt(ev),
        exp_basis=exp_basis,
        triangles=orient_front(mean, s["triangles"].astype(np.int64))[0],
        landmarks68=lm,
        landmark_valid=valid,
        uv=uv,
        **tex,
        name=f"sfm-{V}",
        source=f"Surrey Face Model ({shape_path.name}); expression blendshapes: {', '.join(names) or 'none'}",
        licence=SFM_LICENCE,
    )
