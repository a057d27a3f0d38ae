"""Landmark file formats and landmark index conventions.

Readers return numpy arrays in the file's own pixel coordinates (origin top-left, +y down). The datasets'
annotations come from MATLAB tools (iBUG ``.pts`` and 300W-LP/AFLW2000-3D ``.mat``: 1-based pixel indices);
we keep the values as they are, as the community's evaluation code (3DDFA, PRNet) does: the possible
half-pixel offset to facezoo's pixel-centre convention is below annotation noise and cancels in every metric
that compares predictions trained on the same data. Every reader raises
:class:`~facezoo.data.io.BadSampleError` naming the file and the problem.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from facezoo.data.io import BadSampleError

# iBUG-68 horizontal-flip permutation (0-based): flipped[i] = original[IBUG68_FLIP[i]] after x -> W - x.
IBUG68_FLIP: tuple[int, ...] = (
    *range(16, -1, -1),  # jaw 0..16
    *range(26, 21, -1),  # brows 17..21 <-> 26..22
    *range(21, 16, -1),
    27,
    28,
    29,
    30,  # nose bridge
    35,
    34,
    33,
    32,
    31,  # nostrils
    45,
    44,
    43,
    42,
    47,
    46,  # right eye (36..41) <-> left eye (42..47)
    39,
    38,
    37,
    36,
    41,
    40,
    54,
    53,
    52,
    51,
    50,
    49,
    48,  # outer lips 48..54
    59,
    58,
    57,
    56,
    55,  # outer lower lip 55..59
    64,
    63,
    62,
    61,
    60,  # inner upper lip 60..64
    67,
    66,
    65,  # inner lower lip 65..67
)
LANDMARKS5_FLIP: tuple[int, ...] = (1, 0, 2, 4, 3)
LANDMARKS5_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


def landmarks68_to_5(lm68: np.ndarray) -> np.ndarray:
    """iBUG-68 ``[...,68,2]`` -> 5 points ``[...,5,2]`` exactly as Deep3DFace's ``extract_5p``: eye centres =
    mean of the two eye corners (1-based 37/40 and 43/46), nose tip 31, mouth corners 49 and 55 (image-left
    first)."""
    lm68 = np.asarray(lm68)
    if lm68.shape[-2:] != (68, 2) and lm68.shape[-2] != 68:
        raise ValueError(f"lm68 must be [...,68,2], got {lm68.shape}")
    return np.stack(
        [
            lm68[..., [36, 39], :].mean(-2),
            lm68[..., [42, 45], :].mean(-2),
            lm68[..., 30, :],
            lm68[..., 48, :],
            lm68[..., 54, :],
        ],
        axis=-2,
    )


def _check_count(path: Path, points: np.ndarray, expected: int | tuple[int, ...] | None) -> np.ndarray:
    allowed = (expected,) if isinstance(expected, int) else expected
    if allowed is not None and points.shape[0] not in allowed:
        raise BadSampleError(
            path, f"expected {' or '.join(map(str, allowed))} landmarks, found {points.shape[0]}"
        )
    if not np.isfinite(points).all():
        raise BadSampleError(path, "landmarks contain NaN or inf")
    return points


def read_pts(path: str | Path, expected: int | tuple[int, ...] | None = 68) -> np.ndarray:
    """iBUG ``.pts`` (``version: 1`` / ``n_points: N`` / ``{`` / N lines ``x y`` / ``}``) -> ``[N,2]``."""
    path = Path(path)
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        start, end = lines.index("{"), lines.index("}")
        header = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[:start] if ":" in ln)}
        points = np.array(
            [[float(v) for v in ln.split()[:2]] for ln in lines[start + 1 : end]], dtype=np.float64
        )
    except FileNotFoundError as err:
        raise BadSampleError(path, "landmark file is missing") from err
    except (ValueError, IndexError) as err:
        raise BadSampleError(path, f"malformed .pts file ({err})") from err
    points = points.reshape(-1, 2)
    if "n_points" in header and int(header["n_points"]) != len(points):
        raise BadSampleError(
            path, f"header says n_points: {header['n_points']} but {len(points)} points follow"
        )
    return _check_count(path, points, expected)


def read_txt_points(path: str | Path, expected: int | tuple[int, ...] | None = 5) -> np.ndarray:
    """Whitespace-separated ``x y`` per line (Deep3DFace's 5-point detections: ``x<TAB>y``) -> ``[N,2]``."""
    path = Path(path)
    try:
        rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
        points = np.array([[float(r[0]), float(r[1])] for r in rows], dtype=np.float64).reshape(-1, 2)
    except FileNotFoundError as err:
        raise BadSampleError(path, "landmark file is missing") from err
    except (ValueError, IndexError) as err:
        raise BadSampleError(path, f"malformed landmark text file ({err})") from err
    return _check_count(path, points, expected)


def read_landmark_file(path: str | Path, expected: int | tuple[int, ...] | None = (68, 5)) -> np.ndarray:
    """Any supported landmark file by suffix: ``.pts`` (iBUG), ``.txt`` (x y lines), ``.mat`` (``pts``,
    ``pt2d``, ``pts_2d`` or ``pt3d_68``; ``[2,N]`` or ``[N,2]``) -> ``[N,2]``."""
    path = Path(path)
    if path.suffix == ".pts":
        return read_pts(path, expected)
    if path.suffix == ".mat":
        mat = loadmat_checked(path, ())
        for key in ("pts", "pts_2d", "pt3d_68", "pt2d"):
            if key in mat:
                return _check_count(path, _as_points(path, mat[key], key)[:, :2], expected)
        raise BadSampleError(path, "no landmark array (pts, pts_2d, pt3d_68 or pt2d) in the .mat file")
    return read_txt_points(path, expected)


def loadmat_checked(path: str | Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """``scipy.io.loadmat`` with errors that name the file: missing file, unreadable file, missing keys."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise BadSampleError(path, ".mat file is missing")
    try:
        mat = loadmat(path)
    except Exception as err:  # scipy raises ValueError/TypeError/MatReadError/OSError on malformed files
        raise BadSampleError(path, f"malformed .mat file ({type(err).__name__}: {err})") from err
    missing = [k for k in keys if k not in mat]
    if missing:
        raise BadSampleError(
            path,
            f"missing key(s) {missing} in the .mat file (has {[k for k in sorted(mat) if k[:2] != '__']})",
        )
    return mat


def _as_points(path: Path, array: np.ndarray, key: str, dims: int | None = None) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or (2 not in array.shape and 3 not in array.shape):
        raise BadSampleError(path, f"{key} has shape {array.shape}, expected [2|3,N] or [N,2|3]")
    if array.shape[0] in (2, 3) and array.shape[1] not in (2, 3):
        array = array.T
    elif array.shape[0] in (2, 3) and array.shape[1] in (2, 3) and array.shape[0] < array.shape[1]:
        array = array.T
    if dims is not None and array.shape[1] != dims:
        raise BadSampleError(path, f"{key} has {array.shape[1]} coordinates per point, expected {dims}")
    return array


#: sizes of the 3DDFA parameters in 300W-LP / AFLW2000-3D ``.mat`` files (BFM: 199 shape/texture, 29 exp.)
PARA_SIZES = {"Shape_Para": 199, "Exp_Para": 29, "Tex_Para": 199}


def read_3ddfa_mat(path: str | Path, landmarks: int | tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """300W-LP / AFLW2000-3D ``.mat`` -> dict of numpy arrays.

    Returns:
        ``pose`` [7] = ``Pose_Para`` [pitch, yaw, roll (rad), tx, ty, tz, scale]; ``id`` [199] ``Shape_Para``;
        ``exp`` [29] ``Exp_Para``; ``tex`` [199] ``Tex_Para`` when present; ``pt2d`` [N,2] (68 in 300W-LP, 21
        in AFLW2000-3D); ``pt3d_68`` [68,3] when present (AFLW2000-3D: x, y image pixels, z depth); ``roi``
        [4].
    """
    path = Path(path)
    mat = loadmat_checked(path, ("Pose_Para", "Shape_Para", "Exp_Para", "pt2d"))
    out: dict[str, np.ndarray] = {}
    pose = np.asarray(mat["Pose_Para"], dtype=np.float64).reshape(-1)
    if pose.shape != (7,) or not np.isfinite(pose).all():
        raise BadSampleError(
            path, f"Pose_Para must hold 7 finite values, got shape {np.shape(mat['Pose_Para'])}"
        )
    out["pose"] = pose
    for key, name in (("id", "Shape_Para"), ("exp", "Exp_Para"), ("tex", "Tex_Para")):
        if name in mat:
            values = np.asarray(mat[name], dtype=np.float64).reshape(-1)
            if values.shape != (PARA_SIZES[name],) or not np.isfinite(values).all():
                raise BadSampleError(
                    path,
                    f"{name} must hold {PARA_SIZES[name]} finite values (the 3DDFA BFM's), got shape "
                    f"{np.shape(mat[name])}" + ("" if np.isfinite(values).all() else " with NaN/inf"),
                )
            out[key] = values
    out["pt2d"] = _check_count(path, _as_points(path, mat["pt2d"], "pt2d", 2), landmarks)
    if "pt3d_68" in mat:
        out["pt3d_68"] = _check_count(path, _as_points(path, mat["pt3d_68"], "pt3d_68", 3), 68)
    if "roi" in mat:
        out["roi"] = np.asarray(mat["roi"], dtype=np.float64).reshape(-1)
    return out


def read_300wlp_landmarks(path: str | Path) -> dict[str, np.ndarray]:
    """``300W_LP/landmarks/<subset>/<name>_pts.mat`` -> ``pts_2d`` and ``pts_3d`` (each ``[68,2]``; ``pts_3d``
    are the 3D landmarks' projections, including self-occluded contour points)."""
    path = Path(path)
    mat = loadmat_checked(path, ("pts_2d", "pts_3d"))
    return {k: _check_count(path, _as_points(path, mat[k], k, 2), 68) for k in ("pts_2d", "pts_3d")}


def read_vggface2_meta(path: str | Path) -> dict[str, dict[str, Any]]:
    """VGGFace2 ``identity_meta.csv`` -> ``{class_id: {"name", "sample_num", "flag", "gender"}}``.

    Quirks of the real file handled here: spaces after commas; names quoted as a CSV field holding a space and
    a doubly-quoted name (``" ""14th_Dalai_Lama""``); and 6640 of the 9131 rows lack ``Sample_Num`` (e.g.
    ``n000659``: Flag and Gender are shifted left and the row ends with an empty field) -> ``sample_num`` is
    ``None`` there. ``flag`` 1 = train, 0 = test.
    """
    path = Path(path)
    if not path.is_file():
        raise BadSampleError(path, "identity_meta.csv is missing")
    out: dict[str, dict[str, Any]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    for line, row in enumerate(rows[1:], start=2):
        row = [c.strip() for c in row]
        if not row or not row[0]:
            continue
        try:
            if len(row) == 5 and row[4] == "":  # Sample_Num missing: id, name, flag, gender, ""
                class_id, name, flag, gender, num = row[0], row[1], int(row[2]), row[3], None
            elif len(row) == 5:
                class_id, name, num, flag, gender = row[0], row[1], int(row[2]), int(row[3]), row[4]
            else:
                raise ValueError(f"{len(row)} fields")
        except ValueError as err:
            raise BadSampleError(path, f"line {line}: malformed row {row} ({err})") from err
        out[class_id] = {"name": name.strip('" '), "sample_num": num, "flag": flag, "gender": gender}
    return out


def _read_named_rows(path: Path, n_values: int, what: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise BadSampleError(path, f"{what} CSV is missing")
    out = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, skipinitialspace=True)
        header = next(reader, None)
        if header is None or header[0].strip() != "NAME_ID" or len(header) != n_values + 1:
            raise BadSampleError(path, f"expected a header NAME_ID + {n_values} columns, got {header}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                out[row[0].strip()] = np.array([float(v) for v in row[1:]], dtype=np.float64)
            except ValueError as err:
                raise BadSampleError(path, f"line {line}: {err}") from err
            if len(out[row[0].strip()]) != n_values:
                raise BadSampleError(path, f"line {line}: expected {n_values} values, got {len(row) - 1}")
    return out


def read_vggface2_boxes(path: str | Path) -> dict[str, np.ndarray]:
    """``loose_bb_{train,test}.csv`` (``NAME_ID,X,Y,W,H``; ``"n000001/0001_01",60,60,79,109``)
    -> ``{name: [4]}``."""
    return _read_named_rows(Path(path), 4, "loose bounding-box")


def read_vggface2_landmarks(path: str | Path) -> dict[str, np.ndarray]:
    """``loose_landmark_{train,test}.csv`` (``NAME_ID,P1X,P1Y,...,P5Y``) -> name -> ``[5,2]`` (same 5-point
    order as :data:`LANDMARKS5_NAMES`)."""
    return {k: v.reshape(5, 2) for k, v in _read_named_rows(Path(path), 10, "loose landmark").items()}
