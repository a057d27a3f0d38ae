"""ICT-FaceKit (USC ICT, MIT licence): the permissive real face model, from the upstream OBJ folder or the
derived ``.npz``.

Sources:

* upstream ``FaceXModel/`` folder: ``generic_neutral_mesh.obj`` (26,719 vertices, quads and triangles,
  cm), ``identity000.obj`` ... ``identity099.obj`` (neutral + sigma-scaled identity PCA mode: full meshes on
  the same topology), one OBJ per expression blendshape named as in ``vertex_indices.json``'s ``expressions``
  (``browDown_L.obj`` ...), and ``vertex_indices.json`` (``idx_to_landmark_verts``: 68 vertices in Multi-PIE
  order, which is the iBUG-68 order; ``idx_to_fitting_verts`` ...).
* the derived ``.npz`` (not an upstream file): ``neutral`` [V,3] cm, ``faces_quad`` [F,4] 0-based with -1 in
  the 4th slot for a triangle, ``identity_deltas`` [100,V,3] and ``expression_deltas`` [53,V,3] (cm,
  deltas from the neutral; identity already scaled by its sigma), ``expression_names``.

Conversion choices:

* region: the face + head-and-neck region, i.e. the first 11,248 vertices of the full mesh and the faces that
  use only them (ICT's README lists vertex ranges per geometry; eyes, teeth, gums and the mouth socket come
  after and are dropped). The ``.npz`` already holds that region.
* units: cm -> mm (x10). Frame: ICT is +y up, +z out of the face, subject's right at -x, origin inside the
  head (the nose tip sits ~13 cm in front of it), so it is kept as it is.
* quads are split along their first diagonal, (a,b,c,d) -> (a,b,c), (a,c,d); winding is CCW from outside
  (checked and flipped if not).
* identity: ``identity_deltas`` are already sigma-scaled (ICT samples identities as N(0,1) weights), so
  ``bases_scaled=True`` and ``id_std`` holds each mode's L2 norm in mm (informative only). The modes are not
  orthogonal (|cos| up to ~0.47 between modes of the released model).
* expression: the 53 ARKit-style blendshapes (weights in [0,1] in ICT's use), ``exp_std = 1``; not orthogonal.
* masks: ``fitting`` (``idx_to_fitting_verts``, ICT's region used for fitting), ``rigid`` where given.
* no texture model and no per-vertex UVs (ICT's UVs are per face corner).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facezoo.morphable.formats import as_folders, find_file, orient_front
from facezoo.morphable.model import MorphableModel

__all__ = ["ICT_REGION_VERTICES", "read_obj", "triangulate", "load_ict"]

ICT_REGION_VERTICES = (
    11248  # face + head and neck (ICT-FaceKit README: vertex ranges [0:9408] and [9409:11247])
)
CM_TO_MM = 10.0
ICT_LICENCE = "ICT-FaceKit, Copyright (c) 2020 USC Institute for Creative Technologies, MIT licence"
WHERE_ICT = "ICT-FaceKit (github.com/ICT-VGL/ICT-FaceKit): its FaceXModel/ folder"


def read_obj(path: str | Path, faces: bool = True) -> tuple[np.ndarray, list[list[int]]]:
    """Vertices [N,3] and polygons (0-based vertex indices, 3 or 4 per face) of an OBJ file.

    Texture and normal indices (``f v/vt/vn``) are ignored; negative (relative) indices are resolved.
    """
    path = Path(path)
    verts: list[str] = []
    polys: list[list[int]] = []
    with open(path) as fh:
        for line in fh:
            if line.startswith("v "):
                verts.append(line[2:])
            elif faces and line.startswith("f "):
                idx = [int(tok.split("/", 1)[0]) for tok in line.split()[1:]]
                polys.append([i - 1 if i > 0 else len(verts) + i for i in idx])
    if not verts:
        raise ValueError(f"{path}: no vertices ('v x y z' lines); expected an OBJ mesh")
    v = np.array([s.split()[:3] for s in verts], dtype=np.float64)
    return v, polys


def triangulate(polygons: np.ndarray | list) -> np.ndarray:
    """Triangles [T,3] from triangles/quads: [F,4] with -1 in the 4th slot for a triangle, or a list of 3- or
    4-index polygons. A quad (a,b,c,d) becomes (a,b,c), (a,c,d), keeping its winding."""
    if isinstance(polygons, np.ndarray):
        q = polygons.astype(np.int64)
        if q.ndim != 2 or q.shape[1] != 4:
            raise ValueError(f"faces_quad: expected [F,4], got {q.shape}")
        both = np.stack([q[:, :3], q[:, [0, 2, 3]]], 1)  # [F,2,3]: each face's triangles stay adjacent
        keep = np.stack([np.ones(len(q), bool), q[:, 3] >= 0], 1)
        return both[keep]
    tris = []
    for p in polygons:
        if len(p) not in (3, 4):
            raise ValueError(f"polygon with {len(p)} vertices; only triangles and quads are supported")
        tris.append(p[:3])
        if len(p) == 4:
            tris.append([p[0], p[2], p[3]])
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def _indices(folders) -> dict:
    path = find_file(folders, "vertex_indices.json", "ICT's landmark/region vertex lists", WHERE_ICT)
    data = json.loads(path.read_text())
    lm = np.asarray(data.get("idx_to_landmark_verts", []), dtype=np.int64)
    if lm.shape != (68,):
        raise ValueError(f"{path}: idx_to_landmark_verts should list 68 vertices, got shape {lm.shape}")
    data["_path"] = path
    return data


def _from_npz(path: Path) -> dict:
    try:  # read every array now: an object array (a pickle) fails here, naming the file
        with np.load(path, allow_pickle=False) as npz:
            z = {k: npz[k] for k in npz.files}
    except Exception as err:
        raise ValueError(f"{path}: cannot read as an .npz of numeric arrays ({err})") from err
    need = ("neutral", "faces_quad", "identity_deltas", "expression_deltas")
    missing = [k for k in need if k not in z]
    if missing:
        raise ValueError(f"{path}: lacks arrays {missing}; expected the ICT-FaceKit npz ({', '.join(need)})")
    names = [str(n) for n in z["expression_names"]] if "expression_names" in z else []
    return dict(
        neutral=z["neutral"].astype(np.float64),
        triangles=triangulate(z["faces_quad"]),
        id_deltas=z["identity_deltas"],
        exp_deltas=z["expression_deltas"],
        exp_names=names,
    )


def _from_objs(folder: Path, indices: dict, region: int | None) -> dict:
    neutral, polys = read_obj(folder / "generic_neutral_mesh.obj")
    n = neutral.shape[0] if region is None else region
    if n > neutral.shape[0]:
        raise ValueError(f"{folder / 'generic_neutral_mesh.obj'}: {neutral.shape[0]} vertices < region {n}")
    tris = triangulate([p for p in polys if max(p) < n])
    id_files = sorted(folder.glob("identity[0-9][0-9][0-9].obj"))
    names = list(indices.get("expressions", []))

    def deltas(files: list[Path]) -> np.ndarray:
        out = np.empty((len(files), n, 3), np.float32)
        for i, f in enumerate(files):
            v, _ = read_obj(f, faces=False)
            if v.shape[0] != neutral.shape[0]:
                raise ValueError(f"{f}: {v.shape[0]} vertices, the neutral mesh has {neutral.shape[0]}")
            out[i] = v[:n] - neutral[:n]
        return out

    exp_files = []
    for name in names:
        f = folder / f"{name}.obj"
        if not f.is_file():
            raise FileNotFoundError(
                f"{f}: expression blendshape {name!r} listed in vertex_indices.json is missing"
            )
        exp_files.append(f)
    return dict(
        neutral=neutral[:n],
        triangles=tris,
        id_deltas=deltas(id_files),
        exp_deltas=deltas(exp_files),
        exp_names=names,
    )


def load_ict(folders, region: int | None = ICT_REGION_VERTICES) -> MorphableModel:
    """ICT-FaceKit as a :class:`MorphableModel` (see the module docstring for every choice).

    Args:
        folders: a folder (or several) holding either the upstream OBJs (``generic_neutral_mesh.obj``,
            ``identity###.obj``, expression OBJs) or an ICT ``.npz``, plus ``vertex_indices.json``;
            or the ``.npz`` file itself.
        region: number of leading vertices kept from the OBJs (default: face + head and neck; None = all).
    """
    dirs = as_folders(folders)
    src = None
    for d in dirs:
        if d.is_file() and d.suffix == ".npz":
            src = d
            break
        if (d / "generic_neutral_mesh.obj").is_file() and any(d.glob("identity[0-9][0-9][0-9].obj")):
            src = d
            break
        npz = sorted(d.glob("*.npz")) if d.is_dir() else []
        if npz:
            src = npz[0]
            break
    if src is None:
        raise FileNotFoundError(
            f"ICT-FaceKit: neither generic_neutral_mesh.obj with identity###.obj nor an .npz found in "
            f"{', '.join(map(str, dirs))}. Get the FaceXModel/ folder from {WHERE_ICT}."
        )
    search = [d.parent if d.is_file() else d for d in dirs]
    indices = _indices(search)
    data = _from_npz(src) if src.is_file() else _from_objs(src, indices, region)
    V = data["neutral"].shape[0]
    mean = data["neutral"] * CM_TO_MM
    for key, k in (("id_deltas", "identity"), ("exp_deltas", "expression")):
        if data[key].ndim != 3 or data[key].shape[1:] != (V, 3):
            raise ValueError(f"{src}: {k} deltas should be [K,{V},3], got {data[key].shape}")
    id_basis = np.ascontiguousarray(np.transpose(data["id_deltas"], (1, 2, 0))) * CM_TO_MM
    exp_basis = np.ascontiguousarray(np.transpose(data["exp_deltas"], (1, 2, 0))) * CM_TO_MM
    id_norm = np.linalg.norm(id_basis.reshape(-1, id_basis.shape[2]), axis=0).astype(np.float64)
    tri, _ = orient_front(mean, data["triangles"])

    masks = {}
    for key, name in (("idx_to_fitting_verts", "fitting"), ("idx_to_rigid_verts", "rigid")):
        idx = np.asarray(indices.get(key, []), dtype=np.int64)
        idx = idx[(idx >= 0) & (idx < V)]
        if idx.size:
            masks[name] = np.zeros(V, bool)
            masks[name][idx] = True
    lm = np.asarray(indices["idx_to_landmark_verts"], dtype=np.int64)
    if lm.max() >= V:
        raise ValueError(
            f"{indices['_path']}: landmark vertices up to {lm.max()} but the model has {V} vertices"
        )
    return MorphableModel(
        mean=mean,
        id_basis=id_basis,
        id_std=np.where(id_norm > 0, id_norm, 1.0),
        exp_basis=exp_basis,
        triangles=tri,
        landmarks68=lm,
        masks=masks,
        bases_scaled=True,
        name=f"ict-facekit-{V}",
        source=f"ICT-FaceKit light model ({src.name}); {len(data['exp_names'])} ARKit-style blendshapes",
        licence=ICT_LICENCE,
    )
