"""BFM 2009 loaders: fixtures in the exact file formats, checked against literal re-implementations of
Deep3DFace's transferBFM09 and face3d's 300W-LP reconstruction; the real index files when present."""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import torch

from facezoo.morphable.bfm import (
    load_3ddfa_mean,
    load_bfm_3ddfa,
    load_bfm_deep3d,
    params_from_300wlp,
    read_exp_pca_bin,
)


def grid_mesh(n: int):
    """A bumpy n x n grid facing +z, its CCW triangles (0-based) and n*n vertices (µm)."""
    ys, xs = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    v = np.stack([xs, ys, 0.3 * np.exp(-(xs**2 + ys**2))], -1).reshape(-1, 3) * 8e4
    tris = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            tris += [[a, b, e], [a, e, d]]
    return v, np.array(tris)


def write_bfm(folder: Path, mu: np.ndarray, K: int, Kt: int, rng) -> dict:
    N = mu.shape[0]
    m = {
        "shapeMU": mu.reshape(-1, 1).astype(np.float32),
        "shapePC": np.linalg.qr(rng.standard_normal((3 * N, K)))[0].astype(np.float32),
        "shapeEV": (np.sort(rng.uniform(1e4, 5e5, K))[::-1]).reshape(K, 1).astype(np.float32),
        "texMU": rng.uniform(50, 200, (3 * N, 1)).astype(np.float32),
        "texPC": np.linalg.qr(rng.standard_normal((3 * N, Kt)))[0].astype(np.float32),
        "texEV": rng.uniform(100, 3000, (Kt, 1)).astype(np.float32),
        "tl": rng.integers(1, N + 1, (7, 3)).astype(np.float64),
    }
    sio.savemat(folder / "01_MorphableModel.mat", m)
    return m


def write_exp_pca(path: Path, M: int, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    mean = rng.standard_normal(3 * M).astype(np.float32)
    blocks = (rng.standard_normal((n, 3 * M)) * 0.01).astype(np.float32)
    with open(path, "wb") as f:
        np.array([n], dtype="<i4").tofile(f)
        mean.tofile(f)
        blocks.tofile(f)
    return mean, blocks


@pytest.fixture
def deep3d_folder(tmp_path):
    """A complete Deep3DFace BFM/ folder with 60 BFM vertices -> 48 in the 53215-like crop -> 36 front."""
    rng = np.random.default_rng(0)
    g, tri = grid_mesh(6)  # the 36 front vertices
    nb, ne, nf = 60, 48, 36
    trim = np.sort(rng.choice(nb, ne, replace=False)) + 1
    idx = np.sort(rng.choice(ne, nf, replace=False)) + 1
    mu = rng.standard_normal((nb, 3)) * 1e4
    mu[trim[idx - 1] - 1] = g
    write_bfm(tmp_path, mu, K=90, Kt=85, rng=rng)
    write_exp_pca(tmp_path / "Exp_Pca.bin", ne, 79, rng)
    np.savetxt(tmp_path / "std_exp.txt", rng.uniform(1e4, 5e5, 79))
    sio.savemat(tmp_path / "BFM_exp_idx.mat", {"trimIndex": trim.reshape(-1, 1).astype(np.uint16)})
    sio.savemat(tmp_path / "BFM_front_idx.mat", {"idx": idx.reshape(-1, 1).astype(np.float32)})
    sio.savemat(
        tmp_path / "facemodel_info.mat",
        {
            "tri": (tri + 1).astype(np.float32),
            "keypoints": rng.integers(1, nf + 1, (1, 68)).astype(np.float32),
            "skinmask": (rng.random((1, nf)) > 0.5).astype(np.float32),
            "frontmask2": (rng.random((1, nf)) > 0.3).astype(np.float32),
            "point_buf": np.ones((nf, 8), np.float32),
        },
    )
    return tmp_path


def transfer_bfm09_reference(bfm_folder: Path) -> dict:
    """Deep3DFaceRecon_pytorch util/load_mats.py (LoadExpBasis + transferBFM09); n_vertex from trimIndex."""
    from os import path as osp

    original_BFM = sio.loadmat(osp.join(bfm_folder, "01_MorphableModel.mat"))
    shapePC, shapeEV, shapeMU = original_BFM["shapePC"], original_BFM["shapeEV"], original_BFM["shapeMU"]
    texPC, texEV, texMU = original_BFM["texPC"], original_BFM["texEV"], original_BFM["texMU"]
    n_vertex = sio.loadmat(osp.join(bfm_folder, "BFM_exp_idx.mat"))["trimIndex"].shape[0]
    Expbin = open(osp.join(bfm_folder, "Exp_Pca.bin"), "rb")
    exp_dim = array("i")
    exp_dim.fromfile(Expbin, 1)
    expMU, expPC = array("f"), array("f")
    expMU.fromfile(Expbin, 3 * n_vertex)
    expPC.fromfile(Expbin, 3 * exp_dim[0] * n_vertex)
    Expbin.close()
    expPC = np.transpose(np.reshape(np.array(expPC), [exp_dim[0], -1]))
    expEV = np.loadtxt(osp.join(bfm_folder, "std_exp.txt"))

    idBase = (shapePC * np.reshape(shapeEV, [-1, shapePC.shape[1]]) / 1e5)[:, :80]
    exBase = (expPC * np.reshape(expEV, [-1, 79]) / 1e5)[:, :64]
    texBase = (texPC * np.reshape(texEV, [-1, texPC.shape[1]]))[:, :80]
    index_exp = sio.loadmat(osp.join(bfm_folder, "BFM_front_idx.mat"))["idx"].astype(np.int32) - 1
    index_shape = sio.loadmat(osp.join(bfm_folder, "BFM_exp_idx.mat"))["trimIndex"].astype(np.int32) - 1
    index_shape = index_shape[index_exp]
    idBase = np.reshape(np.reshape(idBase, [-1, 3, 80])[index_shape, :, :], [-1, 80])
    texBase = np.reshape(np.reshape(texBase, [-1, 3, 80])[index_shape, :, :], [-1, 80])
    exBase = np.reshape(np.reshape(exBase, [-1, 3, 64])[index_exp, :, :], [-1, 64])
    meanshape = np.reshape(np.reshape(shapeMU, [-1, 3])[index_shape, :] / 1e5, [1, -1])
    meantex = np.reshape(np.reshape(texMU, [-1, 3])[index_shape, :], [1, -1])
    info = sio.loadmat(osp.join(bfm_folder, "facemodel_info.mat"))
    return dict(
        meanshape=meanshape,
        meantex=meantex,
        idBase=idBase,
        exBase=exBase,
        texBase=texBase,
        tri=info["tri"],
        keypoints=info["keypoints"],
        skinmask=info["skinmask"],
    )


def test_deep3d_matches_transfer_bfm09(deep3d_folder):
    ref = transfer_bfm09_reference(deep3d_folder)
    model = load_bfm_deep3d(deep3d_folder, recenter=False)  # transferBFM09's file is not re-centred
    assert (model.n_vertices, model.n_id, model.n_exp, model.n_tex) == (36, 80, 64, 80)
    a, b, t = torch.randn(3, 80), torch.randn(3, 64), torch.randn(3, 80)
    # Deep3DFace: vertices (dm) = meanshape + idBase @ id + exBase @ exp; albedo = (meantex + texBase @ t)/255
    dm = ref["meanshape"] + a.double().numpy() @ ref["idBase"].T + b.double().numpy() @ ref["exBase"].T
    np.testing.assert_allclose(
        model(a, b).double().numpy(), dm.reshape(3, -1, 3) * 100.0, rtol=1e-4, atol=1e-3
    )
    tex = (ref["meantex"] + t.double().numpy() @ ref["texBase"].T) / 255.0
    np.testing.assert_allclose(model.texture(t).double().numpy(), tex.reshape(3, -1, 3), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(model.landmarks68.numpy(), ref["keypoints"].reshape(-1) - 1)
    np.testing.assert_array_equal(model.triangles.numpy(), ref["tri"].astype(np.int64) - 1)  # already CCW
    np.testing.assert_array_equal(model.mask("skin").numpy(), ref["skinmask"].reshape(-1) > 0)
    assert model.uv is None and model.name == "bfm09-deep3d"


def test_deep3d_recenter_and_counts(deep3d_folder):
    model = load_bfm_deep3d(deep3d_folder, n_id=10, n_exp=5, n_tex=3)  # re-centred by default
    assert (model.n_id, model.n_exp, model.n_tex) == (10, 5, 3)
    torch.testing.assert_close(model.mean.mean(0), torch.zeros(3), atol=1e-3, rtol=0)
    # ParametricFaceModel(recenter=True): meanshape (dm) minus its vertex centroid, the bases untouched
    ref = transfer_bfm09_reference(deep3d_folder)
    mean_dm = ref["meanshape"].reshape(-1, 3)
    np.testing.assert_allclose(model.mean.double().numpy(), (mean_dm - mean_dm.mean(0)) * 100.0, atol=1e-3)
    kept = load_bfm_deep3d(deep3d_folder, recenter=False, n_id=10, n_exp=5, n_tex=3)
    np.testing.assert_allclose(kept.mean.double().numpy(), mean_dm * 100.0, atol=1e-3)
    torch.testing.assert_close(kept.id_basis, model.id_basis)
    with pytest.raises(ValueError, match="n_exp: asked for 80 components, the source has 79"):
        load_bfm_deep3d(deep3d_folder, n_exp=80)


def test_deep3d_flips_clockwise_triangles(deep3d_folder):
    info = sio.loadmat(deep3d_folder / "facemodel_info.mat")
    info["tri"] = info["tri"][:, [0, 2, 1]]
    sio.savemat(
        deep3d_folder / "facemodel_info.mat", {k: v for k, v in info.items() if not k.startswith("__")}
    )
    model = load_bfm_deep3d(deep3d_folder)
    np.testing.assert_array_equal(model.triangles.numpy(), info["tri"][:, [0, 2, 1]].astype(np.int64) - 1)


def test_deep3d_errors(deep3d_folder):
    (deep3d_folder / "Exp_Pca.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"Exp_Pca.bin: not found in .*Guo et al"):
        load_bfm_deep3d(deep3d_folder)
    write_exp_pca(deep3d_folder / "Exp_Pca.bin", 47, 79, np.random.default_rng(1))
    with pytest.raises(ValueError, match="holds 47 vertices per component, but the expression crop"):
        load_bfm_deep3d(deep3d_folder)
    (deep3d_folder / "Exp_Pca.bin").write_bytes(b"\x05\x00\x00\x00" + b"\x00" * 10)
    with pytest.raises(ValueError, match="not an Exp_Pca.bin"):
        load_bfm_deep3d(deep3d_folder)
    (deep3d_folder / "01_MorphableModel.mat").unlink()
    with pytest.raises(FileNotFoundError, match="01_MorphableModel.mat: not found .*University of Basel"):
        load_bfm_deep3d(deep3d_folder)


def test_exp_pca_layout(tmp_path):
    mean, blocks = write_exp_pca(tmp_path / "e.bin", 5, 3, np.random.default_rng(2))
    m, basis = read_exp_pca_bin(tmp_path / "e.bin")
    assert m.shape == (5, 3) and basis.shape == (5, 3, 3)
    np.testing.assert_array_equal(basis[4, 1, 2], blocks[2, 3 * 4 + 1])  # component 2, vertex 4, y
    np.testing.assert_array_equal(m.reshape(-1), mean)


@pytest.fixture
def tddfa_folder(tmp_path):
    rng = np.random.default_rng(5)
    nb, ne = 70, 49
    g, tri = grid_mesh(7)
    trim = np.sort(rng.choice(nb, ne, replace=False)) + 1
    mu = rng.standard_normal((nb, 3)) * 1e4
    mu[trim - 1] = g
    write_bfm(tmp_path, mu, K=199, Kt=199, rng=rng)
    sio.savemat(
        tmp_path / "Model_Expression.mat",
        {
            "mu_exp": rng.standard_normal((3 * ne, 1)) * 100,
            "w_exp": rng.standard_normal((3 * ne, 29)) * 1e3,
            "sigma_exp": rng.uniform(0.5, 2.0, (29, 1)),
        },
    )
    sio.savemat(
        tmp_path / "model_info.mat",
        {
            "trimIndex": trim.reshape(-1, 1).astype(np.float64),
            "tri": (tri[:, [0, 2, 1]] + 1).T.astype(np.float64),
            "keypoints": rng.integers(1, ne + 1, (1, 68)).astype(np.float64),
        },
    )
    return tmp_path


def test_3ddfa_matches_face3d_reconstruction(tddfa_folder):
    bfm = sio.loadmat(tddfa_folder / "01_MorphableModel.mat")
    e = sio.loadmat(tddfa_folder / "Model_Expression.mat")
    info = sio.loadmat(tddfa_folder / "model_info.mat")
    trim = info["trimIndex"].reshape(-1).astype(int) - 1
    f = np.stack([3 * trim, 3 * trim + 1, 3 * trim + 2], 1).reshape(-1)
    # face3d: shapeMU + expMU + shapePC @ Shape_Para + expPC @ Exp_Para (µm), with the 300W-LP parameters
    rng = np.random.default_rng(9)
    alpha, beta = rng.standard_normal((199, 1)) * 2e5, rng.standard_normal((29, 1))
    ref = bfm["shapeMU"][f] + e["mu_exp"] + bfm["shapePC"][f] @ alpha + e["w_exp"] @ beta
    model = load_bfm_3ddfa(tddfa_folder)
    idc, exc = params_from_300wlp(alpha, beta, model)
    assert idc.shape == (1, 199) and exc.shape == (1, 29)
    np.testing.assert_allclose(
        model(idc, exc)[0].double().numpy() * 1e3, ref.reshape(-1, 3), rtol=1e-4, atol=1.0
    )
    # 3DDFA's tri is clockwise: flipped; stored (3,T)
    np.testing.assert_array_equal(model.triangles.numpy(), info["tri"].T.astype(np.int64)[:, [0, 2, 1]] - 1)
    np.testing.assert_array_equal(model.landmarks68.numpy(), info["keypoints"].reshape(-1) - 1)
    batched = params_from_300wlp(np.repeat(alpha.T, 2, 0), np.repeat(beta.T, 2, 0), model)[0]
    assert batched.shape == (2, 199)
    with pytest.raises(ValueError, match="shape_para: expected"):
        params_from_300wlp(alpha[:198], beta, model)


def test_3ddfa_topology_from_v1_files(tddfa_folder):
    info = sio.loadmat(tddfa_folder / "model_info.mat")
    sio.savemat(tddfa_folder / "model_info.mat", {"trimIndex": info["trimIndex"]})
    sio.savemat(tddfa_folder / "tri.mat", {"tri": info["tri"].astype(np.uint16)})
    kv = info["keypoints"].reshape(-1).astype(np.int64) - 1
    np.save(tddfa_folder / "keypoints_sim.npy", np.stack([3 * kv, 3 * kv + 1, 3 * kv + 2], 1).reshape(-1))
    model = load_bfm_3ddfa(tddfa_folder)
    np.testing.assert_array_equal(model.landmarks68.numpy(), kv)
    assert model.triangles.shape == (72, 3)


# ------------------------------------------------------------------------------------------- real files
def test_real_3ddfa_mean_topology_and_landmarks(shared_data):
    d = shared_data / "bfm_parts"
    model = load_3ddfa_mean([d / "3ddfa_v1", d / "3ddfa_v2", d / "deep3d"])
    assert (model.n_vertices, model.n_triangles) == (53215, 105840)
    v, t = model.mean.double(), model.triangles
    n = torch.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]], dim=1)
    centroid = v.mean(0)
    outward = ((n * (v[t].mean(1) - centroid)).sum(1) > 0).double().mean()
    assert outward > 0.95  # CCW seen from outside after the flip
    lm = model.landmarks(model.mean)
    assert lm[30, 2] > v[:, 2].max() - 5.0  # nose tip (iBUG 30) is within 5 mm of the frontmost point
    assert lm[36, 0] < lm[45, 0] and lm[48, 0] < lm[54, 0]  # subject's right (iBUG 36/48) at -x
    assert lm[8, 1] < lm[33, 1] < lm[27, 1]  # chin below nose base below nose bridge (+y up)
    width = (lm[16] - lm[0]).norm()
    assert 120 < width < 160  # jaw width in mm
    assert (
        model.uv is not None and model.mask("no_neck").sum() == 38365 and model.mask("front").sum() == 35709
    )


def test_real_deep3d_index_files_with_real_size_bfm(shared_data, tmp_path):
    """Real BFM_exp_idx / BFM_front_idx / facemodel_info with a full-size (53,490-vertex) BFM whose mean has
    3DDFA's real mean shape at the crop vertices and 2 random components."""
    d = shared_data / "bfm_parts"
    rng = np.random.default_rng(0)
    trim = sio.loadmat(d / "deep3d" / "BFM_exp_idx.mat")["trimIndex"].reshape(-1).astype(np.int64) - 1
    u = np.load(d / "3ddfa_v1" / "u_shp.npy").reshape(-1, 3)
    mu = np.zeros((53490, 3))
    mu[trim] = u
    write_bfm(tmp_path, mu, K=2, Kt=2, rng=rng)
    write_exp_pca(tmp_path / "Exp_Pca.bin", 53215, 2, rng)
    np.savetxt(tmp_path / "std_exp.txt", [1.0, 2.0])
    model = load_bfm_deep3d(
        [tmp_path, d / "deep3d", d / "3ddfa_v2"], n_id=2, n_exp=2, n_tex=2, recenter=False
    )  # fmt: skip
    fidx = sio.loadmat(d / "deep3d" / "BFM_front_idx.mat")["idx"].reshape(-1).astype(np.int64) - 1
    assert (model.n_vertices, model.n_triangles) == (35709, 70789)
    np.testing.assert_allclose(model.mean.numpy(), u[fidx] * 1e-3, rtol=1e-6, atol=1e-6)
    centred = load_bfm_deep3d([tmp_path, d / "deep3d", d / "3ddfa_v2"], n_id=2, n_exp=2, n_tex=2)
    expect = u[fidx].astype(np.float64) * 1e-3
    np.testing.assert_allclose(centred.mean.numpy(), expect - expect.mean(0), atol=1e-4)
    kv = np.load(d / "3ddfa_v1" / "keypoints_sim.npy")[0::3] // 3
    np.testing.assert_array_equal(fidx[model.landmarks68.numpy()], kv)  # same 68 BFM vertices as 3DDFA
    info = sio.loadmat(d / "deep3d" / "facemodel_info.mat")
    np.testing.assert_array_equal(model.triangles.numpy(), info["tri"].astype(np.int64) - 1)  # not flipped
    assert model.mask("skin").sum() == 9642 and model.mask("front").sum() == 27660
    assert model.uv is not None and model.uv.shape == (35709, 2)


def test_convert_bfm_deep3d_recentres_by_default_and_keeps_the_old_frame_on_request(deep3d_folder, tmp_path):
    from facezoo.commands import discover
    from facezoo.morphable.hdf5 import load_model

    cmd = discover()["model"]
    out, old = tmp_path / "bfm.h5", tmp_path / "bfm_old.h5"
    assert cmd.run(["convert", str(deep3d_folder), "--format", "bfm-deep3d", "-o", str(out)], "m") == 0
    assert cmd.run(
        ["convert", str(deep3d_folder), "--format", "bfm-deep3d", "--no-recenter", "-o", str(old)], "m"
    ) == 0  # fmt: skip
    mean_dm = transfer_bfm09_reference(deep3d_folder)["meanshape"].reshape(-1, 3)
    np.testing.assert_allclose(
        load_model(out).mean.double().numpy(), (mean_dm - mean_dm.mean(0)) * 100, atol=1e-3
    )
    np.testing.assert_allclose(load_model(old).mean.double().numpy(), mean_dm * 100, atol=1e-3)
