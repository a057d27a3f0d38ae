"""Basel Face Model 2009 + the FaceWarehouse expression basis, in the two crops the field uses.

Sources (none can be shipped: BFM's licence is research-only; users fetch them themselves):

* ``01_MorphableModel.mat`` (BFM 2009): ``shapeMU`` [3N,1], ``shapePC`` [3N,199] (orthonormal columns),
  ``shapeEV`` [199,1] (standard deviations), ``texMU/texPC/texEV`` (RGB 0-255), ``tl`` [T,3] 1-based;
  N = 53490 vertices in micrometres, xyz interleaved per vertex. Its frame already matches facezoo's:
  +y up, +z out of the face, origin near the centre of the head.
* Deep3DFace's crop (:func:`load_bfm_deep3d`, 35,709 vertices): reproduces ``util/load_mats.py
  transferBFM09`` of Deep3DFaceRecon_pytorch: the first 80 identity, 64 expression and 80 texture components;
  the expression basis is Guo et al.'s ``Exp_Pca.bin`` (79 FaceWarehouse components over the 53,215-vertex
  crop) multiplied by ``std_exp.txt`` exactly as the shape basis is multiplied by ``shapeEV``; the expression
  mean stored in ``Exp_Pca.bin`` is read and discarded (Deep3DFace does not add it). Vertices are picked by
  ``BFM_exp_idx.mat`` (``trimIndex``, 53,215 into 53,490) then ``BFM_front_idx.mat`` (``idx``, 35,709 into
  53,215); triangles, 68 landmarks and masks come from ``facemodel_info.mat``.
* 3DDFA's crop (:func:`load_bfm_3ddfa`, 53,215 vertices, 199 id / 29 exp / 199 tex): the crop in which
  300W-LP and AFLW2000-3D give ``Shape_Para``/``Exp_Para``. As 3DDFA and face3d build it, the mean is
  ``shapeMU[trim] + mu_exp`` and the vertices are ``mean + shapePC[trim] @ Shape_Para + w_exp @ Exp_Para``
  (all in µm), so ``Shape_Para`` multiplies the raw orthonormal basis (the 4096-vertex ``w_filter`` that
  3DDFA ships has column norms ≈ sqrt(4096/53215), i.e. unscaled, and 3DDFA_V2's parameter stds, ~5.8e5 for
  the first shape component, have the size of BFM's ``shapeEV``). See :func:`params_from_300wlp`.

Units and scaling (both crops): ``bases_scaled=False``; the bases carry the µm -> mm factor and the stds stay
in the source's raw coefficient units: ``id_basis = shapePC * 1e-3`` (mm per µm of coefficient),
``id_std = shapeEV`` (µm), ``exp_basis = expPC * 1e-3`` with ``exp_std = std_exp`` (Deep3DFace) or
``w_exp * 1e-3`` with ``exp_std = sigma_exp`` if ``Model_Expression.mat`` has it, else 1 (3DDFA);
``tex_mean = texMU / 255``, ``tex_basis = texPC / 255``, ``tex_std = texEV``. Hence a coefficient in units of
std is exactly Deep3DFace's coefficient (its ``idBase = shapePC * shapeEV / 1e5`` is the same product in
decimetres), and a raw 300W-LP coefficient is ``coefficient * std``.

Deep3DFace's ``models/bfm.py`` (``ParametricFaceModel(recenter=True)``) re-centres the mean shape on its
vertex centroid, and its camera, 5-point crop and checkpoints refer to that origin. :func:`load_bfm_deep3d`
does the same by default (``recenter=True``; ``facezoo model convert --format bfm-deep3d``), so a Deep3DFace
translation means what it means in the official code and a face at ``t = 0`` sits where the official crop
puts it; ``recenter=False`` (``--no-recenter``) keeps BFM's own frame (origin near the head centre), as
facezoo did before. The 3DDFA crop keeps BFM's frame (its datasets' poses refer to it).

Triangles are wound counter-clockwise seen from outside: Deep3DFace's ``tri`` already is; 3DDFA's
``tri.mat`` / ``tri.pkl`` are clockwise, and the loaders flip them (checked by the sign of the summed
normal's z).

Landmarks: Deep3DFace's ``keypoints`` and 3DDFA's ``keypoints_sim.npy`` name the same 68 BFM vertices (checked
on the real files), iBUG order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from facezoo.morphable.formats import find_file, load_npy, loadmat, mat_index, mat_names, orient_front
from facezoo.morphable.model import MorphableModel

__all__ = [
    "read_bfm09",
    "read_exp_pca_bin",
    "load_bfm_deep3d",
    "load_bfm_3ddfa",
    "load_3ddfa_mean",
    "params_from_300wlp",
]

UM_TO_MM = 1e-3
BFM_LICENCE = (
    "Basel Face Model 2009: free for non-commercial scientific research only (University of Basel licence); "
    "FaceWarehouse expression basis: research use only. Do not redistribute."
)
WHERE_BFM = (
    "the Basel Face Model 2009 download of the University of Basel (register on its BFM page, "
    "faces.dmi.unibas.ch/bfm; the archive holds PublicMM1/01_MorphableModel.mat)"
)
WHERE_EXP_PCA = (
    "Guo et al.'s CoarseData (github.com/Juyong/3DFace), as Deep3DFaceRecon_pytorch's README instructs "
    "(Exp_Pca.bin goes into its BFM/ folder)"
)
WHERE_DEEP3D = "the BFM/ folder of Deep3DFaceRecon_pytorch (github.com/sicxu/Deep3DFaceRecon_pytorch)"
WHERE_3DDFA = (
    "3DDFA's release by Zhu et al. (Model_Expression.mat and model_info.mat in its Matlab code; "
    "u_shp.npy, u_exp.npy, keypoints_sim.npy and tri.mat in github.com/cleardusk/3DDFA's train.configs "
    "and visualize folders; BFM_UV.mat and indices.npy in 3DDFA_V2's configs)"
)


# ----------------------------------------------------------------------------------------------- raw readers
def read_bfm09(folders) -> dict[str, np.ndarray]:
    """Read ``01_MorphableModel.mat``: ``shapeMU`` [N,3] µm, ``shapePC`` [N,3,K] (orthonormal),
    ``shapeEV`` [K] (stds, µm), ``texMU`` [N,3], ``texPC`` [N,3,Kt], ``texEV`` [Kt] (0-255) and ``tl``
    [T,3] 0-based.

    N and K come from the file (53490 and 199 for the real BFM), so small files in the same format work too.
    """
    path = find_file(
        folders, "01_MorphableModel.mat", "the Basel Face Model 2009 (shapeMU, shapePC, ...)", WHERE_BFM
    )
    keys = ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV", "tl")
    m = loadmat(path, keys, "BFM 2009's 01_MorphableModel.mat")
    out: dict[str, np.ndarray] = {}
    for kind in ("shape", "tex"):
        mu, pc, ev = m[f"{kind}MU"], m[f"{kind}PC"], m[f"{kind}EV"].reshape(-1)
        if mu.ndim != 2 or mu.shape[1] != 1 or mu.shape[0] % 3:
            raise ValueError(f"{path}: {kind}MU should be [3N,1], got {mu.shape}")
        if pc.ndim != 2 or pc.shape[0] != mu.shape[0] or pc.shape[1] != ev.size:
            raise ValueError(
                f"{path}: {kind}PC should be [{mu.shape[0]},{ev.size}] (rows of {kind}MU, size of {kind}EV), "
                f"got {pc.shape}"
            )
        n = mu.shape[0] // 3
        out[f"{kind}MU"] = mu.reshape(n, 3)
        out[f"{kind}PC"] = pc.reshape(n, 3, ev.size)
        out[f"{kind}EV"] = ev
    if out["texMU"].shape != out["shapeMU"].shape:
        raise ValueError(
            f"{path}: texMU {out['texMU'].shape} and shapeMU {out['shapeMU'].shape} differ in size"
        )
    tl = m["tl"]
    if tl.ndim != 2 or tl.shape[1] != 3:
        raise ValueError(f"{path}: tl should be [T,3] 1-based triangles, got {tl.shape}")
    out["tl"] = mat_index(path, "tl", tl.reshape(-1), None, out["shapeMU"].shape[0], "BFM triangles").reshape(
        -1, 3
    )
    return out


def read_exp_pca_bin(path: str | os.PathLike, n_vertices: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read Guo et al.'s ``Exp_Pca.bin``: int32 n, float32 mean [3M], then n blocks of [3M] float32.

    Returns (mean [M,3], basis [M,3,n]) in the file's units (µm, like BFM). M is inferred from the file size
    (53215 for the real file) and checked against ``n_vertices`` when given. As Deep3DFace's ``LoadExpBasis``:
    ``expPC = reshape(blocks, [n, 3M]).T``, i.e. xyz interleaved per vertex inside each block.
    """
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for Exp_Pca.bin (int32 count, then float32 data)")
    n = int(np.frombuffer(raw[:4], dtype="<i4")[0])
    floats = (len(raw) - 4) // 4
    if n <= 0 or (len(raw) - 4) % 4 or floats % (3 * (n + 1)):
        raise ValueError(
            f"{path}: not an Exp_Pca.bin: {len(raw)} bytes are not int32 n={n} then (n+1)*3M float32 values"
        )
    m = floats // (3 * (n + 1))
    if n_vertices is not None and m != n_vertices:
        raise ValueError(
            f"{path}: holds {m} vertices per component, but the expression crop (trimIndex) has {n_vertices}"
        )
    data = np.frombuffer(raw, dtype="<f4", offset=4)
    mean = data[: 3 * m].reshape(m, 3)
    basis = data[3 * m :].reshape(n, m, 3).transpose(1, 2, 0)
    return mean.copy(), np.ascontiguousarray(basis)


def _trim_index(folders, n_bfm: int | None) -> tuple[np.ndarray, Path]:
    path = find_file(
        folders,
        ("BFM_exp_idx.mat", "model_info.mat"),
        "trimIndex [53215,1]: 1-based BFM vertices of the expression crop",
        WHERE_DEEP3D,
    )
    t = loadmat(path, ("trimIndex",), "trimIndex")["trimIndex"]
    return mat_index(path, "trimIndex", t, None, n_bfm or int(np.max(t)), "BFM vertices of the crop"), path


def _check_counts(**counts: tuple[int, int]) -> None:
    """``n_id=(asked, available), ...``: a ValueError naming the argument when a source has too few."""
    for arg, (asked, available) in counts.items():
        if not 0 <= asked <= available:
            raise ValueError(f"{arg}: asked for {asked} components, the source has {available}")


# ----------------------------------------------------------------------------------------- Deep3DFace crop
def load_bfm_deep3d(
    folders,
    n_id: int = 80,
    n_exp: int = 64,
    n_tex: int = 80,
    recenter: bool = True,
) -> MorphableModel:
    """BFM 2009 + FaceWarehouse expressions in Deep3DFace's 35,709-vertex front-face crop (see module docs).

    Args:
        folders: a folder (or several, searched in order) holding ``01_MorphableModel.mat``, ``Exp_Pca.bin``,
            ``std_exp.txt``, ``BFM_front_idx.mat``, ``BFM_exp_idx.mat``, ``facemodel_info.mat``, optionally
            3DDFA_V2's ``BFM_UV.mat`` (UVs over the 53,215-vertex crop) — i.e. Deep3DFace's ``BFM/`` folder.
        n_id, n_exp, n_tex: components kept (Deep3DFace: 80, 64, 80).
        recenter: subtract the mean shape's centroid, as Deep3DFace's ``models/bfm.py`` does (default; False:
            BFM's frame, the behaviour before).

    Returns:
        MorphableModel (mm, bases_scaled=False), masks ``skin`` (``skinmask``, the albedo-regulariser region)
        and ``front`` (``frontmask2``: the official photometric region; its triangles are ``tri_mask2``).
    """
    bfm = read_bfm09(folders)
    n_bfm = bfm["shapeMU"].shape[0]
    trim, _ = _trim_index(folders, n_bfm)
    front_path = find_file(
        folders, "BFM_front_idx.mat", "idx [35709,1]: 1-based vertices of the expression crop", WHERE_DEEP3D
    )
    idx_exp = mat_index(
        front_path, "idx", loadmat(front_path, ("idx",), "idx")["idx"], None, trim.size, "front-face vertices"
    )
    index_shape = trim[idx_exp]
    V = idx_exp.size

    exp_path = find_file(
        folders, "Exp_Pca.bin", "the FaceWarehouse expression PCA (int32 n, float32 data)", WHERE_EXP_PCA
    )
    _, exp_pc = read_exp_pca_bin(exp_path, trim.size)
    std_path = find_file(
        folders, "std_exp.txt", "the expression stds (one float per component)", WHERE_DEEP3D
    )
    std_exp = np.loadtxt(std_path, dtype=np.float64).reshape(-1)
    if std_exp.size != exp_pc.shape[2]:
        raise ValueError(f"{std_path}: {std_exp.size} stds, but {exp_path} has {exp_pc.shape[2]} components")

    info_path = find_file(
        folders, "facemodel_info.mat", "tri, keypoints, skinmask, frontmask2 of the front crop", WHERE_DEEP3D
    )
    info = loadmat(
        info_path, ("tri", "keypoints", "skinmask", "frontmask2"), "Deep3DFace's facemodel_info.mat"
    )
    tri = mat_index(info_path, "tri", info["tri"].reshape(-1), None, V, "triangles of the front crop")
    if info["tri"].ndim != 2 or info["tri"].shape[1] != 3:
        raise ValueError(f"{info_path}: tri should be [T,3], got {info['tri'].shape}")
    lm = mat_index(info_path, "keypoints", info["keypoints"], 68, V, "68 landmark vertices")
    masks = {}
    for key, name in (("skinmask", "skin"), ("frontmask2", "front")):
        mk = np.asarray(info[key]).reshape(-1)
        if mk.size != V:
            raise ValueError(f"{info_path}: {key} has {mk.size} entries, expected one per vertex ({V})")
        masks[name] = mk > 0

    _check_counts(
        n_id=(n_id, bfm["shapePC"].shape[2]),
        n_exp=(n_exp, exp_pc.shape[2]),
        n_tex=(n_tex, bfm["texPC"].shape[2]),
    )

    mean = bfm["shapeMU"][index_shape].astype(np.float64) * UM_TO_MM
    if recenter:
        mean = mean - mean.mean(0, keepdims=True)
    tri, _ = orient_front(mean, tri.reshape(-1, 3))
    uv = _optional_uv(folders, trim.size, idx_exp)
    return _bfm_model(
        "bfm09-deep3d",
        "BFM 2009 + FaceWarehouse expressions, Deep3DFace front crop (transferBFM09)",
        mean=mean,
        **_identity_texture(bfm, index_shape, n_id, n_tex),
        exp_basis=exp_pc[idx_exp, :, :n_exp] * UM_TO_MM,
        exp_std=std_exp[:n_exp],
        triangles=tri,
        landmarks68=lm,
        uv=uv,
        masks=masks,
    )


def _bfm_model(name: str, source: str, **parts) -> MorphableModel:
    """A :class:`MorphableModel` of BFM 2009 data: ``parts`` are its arrays, the licence is the BFM's."""
    return MorphableModel(**parts, name=name, source=source, licence=BFM_LICENCE)


def _identity_texture(bfm: dict, rows: np.ndarray, n_id: int, n_tex: int) -> dict:
    """The BFM 2009 identity and albedo parts of a :class:`MorphableModel` for the vertex ``rows`` of a crop:
    bases in mm (shape, from µm) and [0, 1] (albedo, from 0-255), standard deviations as stored."""
    return dict(
        id_basis=bfm["shapePC"][rows, :, :n_id] * UM_TO_MM,
        id_std=bfm["shapeEV"][:n_id],
        tex_mean=bfm["texMU"][rows] / 255.0,
        tex_basis=bfm["texPC"][rows, :, :n_tex] / 255.0,
        tex_std=bfm["texEV"][:n_tex],
    )


def _optional_uv(folders, n_crop: int, pick: np.ndarray | None) -> np.ndarray | None:
    path = find_file(folders, "BFM_UV.mat", "", WHERE_3DDFA, required=False)
    if path is None:
        return None
    uv = loadmat(path, ("UV",), "UV [53215,2] in [0,1] (3DDFA_V2)")["UV"]
    if uv.shape != (n_crop, 2):
        raise ValueError(
            f"{path}: UV should be [{n_crop},2] (one per vertex of the 53215 crop), got {uv.shape}"
        )
    return uv if pick is None else uv[pick]


# ---------------------------------------------------------------------------------------------- 3DDFA crop
def _tddfa_topology(folders, V: int, mean: np.ndarray) -> dict:
    """Triangles (CCW), landmarks, masks and UVs of the 53,215-vertex crop from the files that are present."""
    info_path = find_file(folders, "model_info.mat", "", WHERE_3DDFA, required=False)
    tri_src = lm_src = None
    if info_path is not None:
        names = mat_names(info_path)
        if "tri" in names:
            tri_src = (info_path, loadmat(info_path, ("tri",), "tri")["tri"])
        if "keypoints" in names:
            lm_src = (info_path, loadmat(info_path, ("keypoints",), "keypoints")["keypoints"])
    if tri_src is None:
        p = find_file(
            folders, "tri.mat", "tri [3,105840] 1-based triangles of the 53215-vertex crop", WHERE_3DDFA
        )
        tri_src = (p, loadmat(p, ("tri",), "tri")["tri"])
    path, t = tri_src
    if t.ndim != 2 or 3 not in t.shape:
        raise ValueError(f"{path}: tri should be [3,T] or [T,3], got {t.shape}")
    t = t.T if t.shape[0] == 3 and t.shape[1] != 3 else t
    tri = mat_index(path, "tri", t.reshape(-1), None, V, "triangles of the crop").reshape(-1, 3)
    tri, _ = orient_front(mean, tri)

    if lm_src is not None:
        lm = mat_index(lm_src[0], "keypoints", lm_src[1], 68, V, "68 landmark vertices")
    else:
        p = find_file(folders, "keypoints_sim.npy", "204 0-based coordinate indices (68 x xyz)", WHERE_3DDFA)
        k = load_npy(p).reshape(-1).astype(np.int64)
        if (
            k.size != 204
            or np.any(k[0::3] % 3 != 0)
            or np.any(k[1::3] != k[0::3] + 1)
            or np.any(k[2::3] != k[0::3] + 2)
        ):
            raise ValueError(f"{p}: expected 204 coordinate indices 3v, 3v+1, 3v+2 for 68 vertices v")
        lm = k[0::3] // 3
        if lm.max() >= V:
            raise ValueError(f"{p}: landmark vertices up to {lm.max()}, but the crop has {V} vertices")

    masks = {}
    p = find_file(folders, "BFM_front_idx.mat", "", WHERE_DEEP3D, required=False)
    if p is not None:
        front = mat_index(p, "idx", loadmat(p, ("idx",), "idx")["idx"], None, V, "front-face vertices")
        masks["front"] = np.zeros(V, bool)
        masks["front"][front] = True
    p = find_file(folders, "indices.npy", "", WHERE_3DDFA, required=False)
    if p is not None:
        keep = load_npy(p).reshape(-1).astype(np.int64)
        if keep.size and (keep.min() < 0 or keep.max() >= V):
            raise ValueError(f"{p}: 3DDFA_V2 indices should be 0-based into {V} vertices")
        masks["no_neck"] = np.zeros(V, bool)
        masks["no_neck"][keep] = True
    return dict(triangles=tri, landmarks68=lm, masks=masks, uv=_optional_uv(folders, V, None))


def load_bfm_3ddfa(folders, n_id: int = 199, n_exp: int = 29, n_tex: int = 199) -> MorphableModel:
    """BFM 2009 + 3DDFA's expression basis in the 53,215-vertex crop of 300W-LP / AFLW2000-3D (module docs).

    Args:
        folders: folder(s) holding ``01_MorphableModel.mat``, ``Model_Expression.mat`` (``mu_exp`` [3M,1],
            ``w_exp`` [3M,29], optional ``sigma_exp``), the crop ``trimIndex`` (``model_info.mat`` or
            ``BFM_exp_idx.mat``), triangles (``model_info.mat`` ``tri`` or 3DDFA's ``tri.mat``), landmarks
            (``model_info.mat`` ``keypoints`` 1-based, or ``keypoints_sim.npy``); optional ``BFM_UV.mat``
            (uv), ``BFM_front_idx.mat`` (mask ``front``), 3DDFA_V2 ``indices.npy`` (mask ``no_neck``).
    """
    bfm = read_bfm09(folders)
    trim, _ = _trim_index(folders, bfm["shapeMU"].shape[0])
    V = trim.size
    path = find_file(folders, "Model_Expression.mat", "mu_exp [3M,1] and w_exp [3M,29]", WHERE_3DDFA)
    has_sigma = "sigma_exp" in mat_names(path)
    keys = ("mu_exp", "w_exp", "sigma_exp") if has_sigma else ("mu_exp", "w_exp")
    e = loadmat(path, keys, "3DDFA's Model_Expression.mat")
    if e["mu_exp"].size != 3 * V or e["w_exp"].ndim != 2 or e["w_exp"].shape[0] != 3 * V:
        raise ValueError(
            f"{path}: mu_exp {e['mu_exp'].shape} / w_exp {e['w_exp'].shape} should have {3 * V} rows "
            f"(3 x the {V} vertices of trimIndex)"
        )
    K = e["w_exp"].shape[1]
    sigma = e["sigma_exp"].reshape(-1)[:n_exp] if has_sigma else None
    _check_counts(
        n_id=(n_id, bfm["shapePC"].shape[2]), n_exp=(n_exp, K), n_tex=(n_tex, bfm["texPC"].shape[2])
    )
    mean = (bfm["shapeMU"][trim].astype(np.float64) + e["mu_exp"].reshape(V, 3)) * UM_TO_MM
    return _bfm_model(
        "bfm09-3ddfa",
        "BFM 2009 + 3DDFA expression basis, 53215-vertex crop (300W-LP / AFLW2000-3D)",
        mean=mean,
        **_identity_texture(bfm, trim, n_id, n_tex),
        exp_basis=e["w_exp"].reshape(V, 3, K)[:, :, :n_exp] * UM_TO_MM,
        exp_std=sigma,
        **_tddfa_topology(folders, V, mean),
    )


def load_3ddfa_mean(folders) -> MorphableModel:
    """A mean-only model (no bases) of the 53,215-vertex crop from 3DDFA's ``u_shp.npy + u_exp.npy`` (µm),
    with the real triangles and landmarks (and UVs / masks where their files are present; see
    :func:`load_bfm_3ddfa`). Useful for checking topology, landmarks and rendering without the BFM."""
    p_shp = find_file(
        folders, "u_shp.npy", "the BFM mean shape [159645,1] in the 53215 crop (µm)", WHERE_3DDFA
    )
    p_exp = find_file(folders, "u_exp.npy", "the expression mean [159645,1] (µm)", WHERE_3DDFA)
    u_shp, u_exp = load_npy(p_shp).reshape(-1), load_npy(p_exp).reshape(-1)
    if u_shp.size % 3 or u_shp.size != u_exp.size:
        raise ValueError(
            f"{p_shp} ({u_shp.size}) and {p_exp} ({u_exp.size}): expected equal sizes, 3 per vertex"
        )
    mean = (u_shp.astype(np.float64) + u_exp).reshape(-1, 3) * UM_TO_MM
    topology = _tddfa_topology(folders, mean.shape[0], mean)
    source = "3DDFA mean shape u_shp + u_exp (53215-vertex BFM crop), no bases"
    return _bfm_model("bfm09-3ddfa-mean", source, mean=mean, id_basis=None, exp_basis=None, **topology)


# ------------------------------------------------------------------------------------- 300W-LP parameters
def params_from_300wlp(shape_para, exp_para, model: MorphableModel) -> tuple[torch.Tensor, torch.Tensor]:
    """300W-LP / AFLW2000-3D ``Shape_Para`` [199,1] and ``Exp_Para`` [29,1] -> (id, exp) in units of std.

    The datasets' vertices are ``mean + shapePC @ Shape_Para + w_exp @ Exp_Para`` in µm with the raw
    (orthonormal, unscaled) ``shapePC``; :func:`load_bfm_3ddfa` stores ``id_std = shapeEV`` and
    ``exp_std = sigma_exp`` (or 1) in those raw units with the µm -> mm factor in the bases, so
    ``id = Shape_Para / id_std`` and ``exp = Exp_Para / exp_std``; ``model(id, exp)`` then equals the
    dataset's mesh in mm. Also accepts batches [B,199] / [B,29]. Returns float32 tensors [B,K] (B=1 for one
    sample) on the model's device.
    """
    if model.bases_scaled:
        raise ValueError(
            "model: expected a model from load_bfm_3ddfa (bases_scaled=False, stds in raw units)"
        )
    out = []
    for name, x, std in (("shape_para", shape_para, model.id_std), ("exp_para", exp_para, model.exp_std)):
        t = torch.as_tensor(
            np.asarray(x, dtype=np.float64) if not torch.is_tensor(x) else x, dtype=torch.float64
        )
        if t.dim() == 2 and t.shape[1] == 1 and t.shape[0] == std.numel():
            t = t.T
        elif t.dim() == 1:
            t = t[None]
        if t.dim() != 2 or t.shape[1] != std.numel():
            raise ValueError(
                f"{name}: expected [K,1], [K] or [B,K] with K={std.numel()}, got {list(t.shape)}"
            )
        out.append((t.to(std.device) / std.double()).to(torch.float32))
    return out[0], out[1]
