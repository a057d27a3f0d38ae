"""300W-LP / AFLW2000-3D Pose_Para: literal 3DDFA projection on a written fixture and the real samples."""

import math
import pickle

import numpy as np
import pytest
import scipy.io as sio
import torch

from facezoo.geometry import camera_from_300wlp, pose_300wlp_from_camera, yaw_degrees


def _r_3ddfa(p, y, r):
    """3DDFA's MATLAB RotationMatrix, written out."""
    c, s = np.cos, np.sin
    rx = np.array([[1, 0, 0], [0, c(p), s(p)], [0, -s(p), c(p)]])
    ry = np.array([[c(y), 0, -s(y)], [0, 1, 0], [s(y), 0, c(y)]])
    rz = np.array([[c(r), s(r), 0], [-s(r), c(r), 0], [0, 0, 1]])
    return rx @ ry @ rz


def _project_3ddfa(pose, v_raw, height):
    """3DDFA: s R v + t (raw BFM units), then image y = height + 1 - y."""
    p = pose[6] * v_raw @ _r_3ddfa(*pose[:3]).T + pose[3:6]
    return np.stack((p[:, 0], height + 1 - p[:, 1]), 1)


def test_fixture_mat_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    v_raw = rng.normal(size=(68, 3)) * 5e4
    pose = np.array([0.1, -0.7, 0.05, 220.0, 210.0, -90.0, 1.3e-3])
    sio.savemat(
        tmp_path / "x.mat",
        {"Pose_Para": pose[None].astype(np.float32), "pt2d": _project_3ddfa(pose, v_raw, 450).T},
    )
    mat = sio.loadmat(tmp_path / "x.mat")
    cam = camera_from_300wlp(torch.from_numpy(mat["Pose_Para"]).double(), 450)
    got = cam.project(torch.from_numpy(v_raw * 1e-3)[None])[0].numpy()
    np.testing.assert_allclose(got, mat["pt2d"].T, atol=2e-3)  # float32 Pose_Para
    back = pose_300wlp_from_camera(cam, 450, tz=-90.0)
    np.testing.assert_allclose(back[0].numpy(), mat["Pose_Para"][0], rtol=1e-6, atol=1e-5)
    assert yaw_degrees(pose).item() == pytest.approx(math.degrees(-0.7))
    assert yaw_degrees(np.stack([pose, pose])).shape == (2,)
    with pytest.raises(ValueError, match="pose_para"):
        camera_from_300wlp(torch.zeros(6), 450)


def _real_samples(root):
    files = sorted((root / "aflw2000_3d").glob("*.mat")) + sorted((root / "300w_lp" / "IBUG").glob("*.mat"))
    if not files:
        pytest.skip("no 300W-LP / AFLW2000-3D samples")
    return files


def _bfm_landmarks(root):
    """68 landmark positions (raw units) of the 3DDFA crop mean (u_shp + u_exp) and their 40 shape basis
    vectors, interpolated from Model_PAF's grid (4-NN inverse distance): Model_PAF is a 64x64 cylindrical
    resampling of the BFM (mu_filter is on a grid whose rows share one y), not a vertex subset, so no landmark
    is in it."""
    from scipy.spatial import cKDTree

    d = root / "bfm_parts" / "3ddfa_v1"
    mean = (np.load(d / "u_shp.npy") + np.load(d / "u_exp.npy")).reshape(-1, 3)
    lm = np.load(d / "keypoints_sim.npy").reshape(68, 3)[:, 0] // 3
    with open(d / "Model_PAF.pkl", "rb") as f:
        paf = pickle.load(f, encoding="latin1")
    grid = paf["mu_filter"].reshape(-1, 3)
    dist, idx = cKDTree(grid).query(mean[lm], k=4)
    w = 1 / np.maximum(dist, 1.0)
    w /= w.sum(1, keepdims=True)
    basis = (paf["w_filter"].reshape(-1, 3, 40)[idx] * w[..., None, None]).sum(1)
    return mean[lm].astype(np.float64), basis.astype(np.float64), paf


def _residuals(root, y_offset=1.0, with_shape=True, transpose=False):
    out = {}
    mean, basis, _ = _bfm_landmarks(root)
    for f in _real_samples(root):
        mat = sio.loadmat(f)
        ref = mat["pt3d_68"][:2] if "pt3d_68" in mat else mat["pt2d"]
        v = mean + (basis @ mat["Shape_Para"][:40, 0] if with_shape else 0)
        cam = camera_from_300wlp(torch.from_numpy(mat["Pose_Para"]).double(), 450, y_offset=y_offset)
        if transpose:
            cam = type(cam)(cam.scale, cam.rotation.transpose(1, 2), cam.t2d)
        got = cam.project(torch.from_numpy(v * 1e-3)[None])[0].numpy()
        out[f.stem] = got - ref.T
    return out


def test_real_samples_reprojection(shared_data):
    assert np.load(shared_data / "bfm_parts/3ddfa_v1/u_shp.npy").reshape(-1, 3)[:, 0].max() == pytest.approx(
        9e4, rel=0.05
    )
    shape = _residuals(shared_data)
    mean_only = _residuals(shared_data, with_shape=False)
    wrong_r = _residuals(shared_data, transpose=True)
    no_plus1 = _residuals(shared_data, y_offset=0.0)
    rms = {k: float(np.sqrt((r**2).sum(1).mean())) for k, r in shape.items()}
    aflw = [v for k, v in rms.items() if k.startswith("image")]
    # measured: 1.0-7.6 px (median 3.5) on 450x450 AFLW2000-3D, 40 of 199 shape PCs, no expression basis
    assert np.median(aflw) < 5.0 and max(aflw) < 10.0
    assert (
        rms.get("IBUG_image_008_1_0", 0.0) < 20.0
    )  # pt2d there = original 300-W annotations, 15 px measured
    pooled = lambda d: float(np.sqrt(np.mean([(r**2).sum(1).mean() for r in d.values()])))  # noqa: E731
    assert pooled(shape) < pooled(mean_only)  # Shape_Para multiplies w_filter as it is (raw PCA coefficients)
    assert min(np.sqrt((r**2).sum(1).mean()) for r in wrong_r.values()) > 25.0  # R^T: far off
    ybias = lambda d: abs(np.mean([r[:, 1].mean() for k, r in d.items() if k.startswith("image")]))  # noqa: E731
    assert ybias(shape) < ybias(no_plus1)  # 3DDFA's height + 1 - y


def test_real_yaw_sign(shared_data):
    """Positive Pose_Para yaw turns the nose to the image left: the nose tip (landmark 30) lies left of the
    midpoint of the outer eye corners (36, 45) in the ground-truth landmarks, and in our projection."""
    mean, basis, _ = _bfm_landmarks(shared_data)
    checked = 0
    for f in _real_samples(shared_data):
        mat = sio.loadmat(f)
        yaw = float(yaw_degrees(mat["Pose_Para"])[0])
        if abs(yaw) < 30:
            continue
        ref = (mat["pt3d_68"][:2] if "pt3d_68" in mat else mat["pt2d"]).T
        cam = camera_from_300wlp(torch.from_numpy(mat["Pose_Para"]).double(), 450)
        ours = cam.project(torch.from_numpy(mean * 1e-3)[None])[0].numpy()
        for pts in (ref, ours):
            assert np.sign(pts[30, 0] - 0.5 * (pts[36, 0] + pts[45, 0])) == -np.sign(yaw), f.stem
        checked += 1
    assert checked >= 3


def test_model_paf_facts(shared_data):
    """Facts the morphable-model helper relies on: w_exp_filter is a copy of w_filter[:, :10] (not an
    expression basis), and w_filter's columns are close to orthogonal with squared norms ~ 4096/53215 (the
    restriction of BFM's orthonormal shapePC), so Shape_Para are raw coefficients (shapePC units, µm)."""
    _, _, paf = _bfm_landmarks(shared_data)
    np.testing.assert_array_equal(paf["w_exp_filter"], paf["w_filter"][:, :10])
    gram = paf["w_filter"].astype(np.float64).T @ paf["w_filter"]
    assert 0.02 < np.diag(gram).mean() < 0.12
    mat = sio.loadmat(_real_samples(shared_data)[0])
    assert 1e4 < np.abs(mat["Shape_Para"][:10]).mean() < 1e7
