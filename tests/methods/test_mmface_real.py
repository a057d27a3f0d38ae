"""MMFace's 300W-LP / AFLW2000-3D ground truth on the real samples (skipped without ../shared/data): the real
BFM mean shape (3DDFA's crop, 53,215 vertices, 105,840 triangles) posed by ``Pose_Para`` and voxelised at the
paper's resolution covers the annotated landmarks."""

import numpy as np
import pytest
import scipy.io as sio
import torch

from facezoo.geometry import camera_from_300wlp, voxelize
from facezoo.methods.mmface_targets import ground_truth_camera


def test_real_bfm_mean_voxelised_under_aflw2000_poses_covers_the_landmarks(shared_data):
    d = shared_data / "bfm_parts" / "3ddfa_v1"
    files = sorted((shared_data / "aflw2000_3d").glob("*.mat"))[:3]
    if not files or not (d / "u_shp.npy").exists():
        pytest.skip("no AFLW2000-3D samples or 3DDFA BFM mean")
    mean = torch.from_numpy((np.load(d / "u_shp.npy") + np.load(d / "u_exp.npy")).reshape(-1, 3) * 1e-3)
    tri = torch.from_numpy(sio.loadmat(d / "tri.mat")["tri"].T.astype(np.int64) - 1)
    poses = torch.tensor(np.stack([sio.loadmat(f)["Pose_Para"][0] for f in files]), dtype=torch.float64)
    lm = torch.tensor(np.stack([sio.loadmat(f)["pt3d_68"][:2].T for f in files]))
    cam = ground_truth_camera({"params": {"pose": poses}}, None, 450)
    torch.testing.assert_close(cam.scale, camera_from_300wlp(poses, 450).scale)
    verts = mean.float()[None].expand(len(files), -1, -1)
    cam = cam.to(dtype=torch.float32)
    w = verts @ cam.rotation.transpose(1, 2)
    pts = torch.cat((cam.project(verts), cam.scale[:, None, None] * w[..., 2:]), -1)
    z = pts[..., 2]
    vol = voxelize(pts, tri, (128, 128, 128), 450, (float(z.min()) - 1, float(z.max()) + 1))
    sil = vol.amax(1) > 0  # [B,128,128]
    cols = (lm * 128 / 450).long().clamp(0, 127)
    inside = sil[torch.arange(len(files))[:, None], cols[..., 1], cols[..., 0]]
    assert float(inside.float().mean()) > 0.9  # the mean face, not the subject's: nearly all 68 inside
    assert 0.05 < float(sil.float().mean()) < 0.6
