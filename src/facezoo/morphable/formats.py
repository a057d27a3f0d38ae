"""Small readers shared by the model loaders: locating source files with helpful errors, MATLAB files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["as_folders", "find_file", "loadmat", "load_npy", "mat_names", "mat_index", "orient_front"]


def as_folders(folders) -> list[Path]:
    """One folder or a sequence of folders, as a list of paths."""
    if isinstance(folders, (str, os.PathLike)):
        return [Path(folders)]
    return [Path(f) for f in folders]


def find_file(folders, names: str | tuple[str, ...], expected: str, where: str, required: bool = True):
    """The first of ``names`` found in ``folders`` (searched in order).

    Missing and ``required``: a FileNotFoundError that names the file, what it should contain and where users
    get it. Missing and not required: None.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    dirs = as_folders(folders)
    for folder in dirs:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    if not required:
        return None
    looked = ", ".join(str(d) for d in dirs)
    alt = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
    raise FileNotFoundError(
        f"{names[0]}{alt}: not found in {looked}. Expected {expected}. Get it from {where}."
    )


def mat_names(path: Path) -> set[str]:
    """Variable names in a MATLAB file (v5 via scipy, v7.3 via h5py)."""
    import scipy.io

    try:
        return {n for n, *_ in scipy.io.whosmat(str(path))}
    except NotImplementedError:
        import h5py

        with h5py.File(path, "r") as f:
            return set(f.keys())


def load_npy(path: Path) -> np.ndarray:
    """``np.load`` of a ``.npy`` of numbers (never unpickles: object arrays are refused), errors naming the
    file."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:
        raise ValueError(f"{path}: cannot read as a .npy array of numbers ({err})") from err


def loadmat(path: Path, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """Read ``keys`` from a MATLAB file (v5 with scipy; v7.3 with h5py, transposed back to MATLAB's shapes).

    Raises a ValueError naming the file and the missing keys.
    """
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path), variable_names=list(keys))
    except NotImplementedError:  # MATLAB v7.3 = HDF5, column-major
        import h5py

        with h5py.File(path, "r") as f:
            data = {k: np.asarray(f[k][()]).T for k in keys if k in f}
    except Exception as err:
        raise ValueError(f"{path}: cannot read as a MATLAB .mat file ({err}); expected {what}") from err
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{path}: lacks variables {missing}; expected {what}")
    return {k: np.asarray(data[k]) for k in keys}


def mat_index(
    path: Path, name: str, values: np.ndarray, length: int | None, upper: int, what: str
) -> np.ndarray:
    """A 1-based MATLAB index vector (any shape with one non-singleton axis) as 0-based int64, checked.

    Args:
        length: expected number of entries (None = any).
        upper: the indexed array's size (values must lie in [1, upper]).
    """
    v = np.asarray(values)
    if v.ndim > 2 or (v.ndim == 2 and min(v.shape) != 1):
        raise ValueError(f"{path}: {name} should be a vector ({what}), got shape {v.shape}")
    v = v.reshape(-1)
    if np.any(v != np.round(v)):
        raise ValueError(f"{path}: {name} should hold integer indices ({what})")
    v = v.astype(np.int64)
    if length is not None and v.size != length:
        raise ValueError(f"{path}: {name} has {v.size} entries, expected {length} ({what})")
    if v.size and (v.min() < 1 or v.max() > upper):
        raise ValueError(
            f"{path}: {name} should be 1-based indices in [1, {upper}] ({what}), got [{v.min()}, {v.max()}]"
        )
    return v - 1


def orient_front(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, bool]:
    """Triangles [T,3] wound counter-clockwise seen from outside, and whether they were flipped.

    A face model looks toward +z, so the frontmost part of the mesh (the triangles whose centroids lie in the
    front 10% of the depth range: nose, brows, lips) must have normals pointing to +z. Judging only there
    works for face crops and for whole heads alike (a head's normals sum to ~0 overall). Assumes the source's
    winding is consistent over the mesh, as it is for every supported model.
    """
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(triangles)
    n = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    zc = v[t, 2].mean(1)
    front = zc >= np.quantile(zc, 0.9)
    if n[front, 2].sum() < 0:
        return t[:, [0, 2, 1]].copy(), True
    return t, False
