"""Landmark NME: by hand, yaw buckets, crop mapping, real AFLW2000-3D samples (3DDFA's protocol in numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io as sio
import torch

from facezoo.metrics import LandmarkNME, crop_to_original, landmark_nme, landmark_normalizer, yaw_bucket


def test_nme_by_hand_on_three_points():
    gt = torch.tensor([[[0.0, 0.0], [4.0, 0.0], [0.0, 2.0]]])
    pred = gt.clone()
    pred[0, 0] += torch.tensor([3.0, 4.0])  # one point 5 px off
    assert landmark_nme(pred, gt).item() == pytest.approx(5.0 / 3.0 / math.sqrt(8.0))
    assert landmark_nme(pred, gt, normalizer="diagonal").item() == pytest.approx(5.0 / 3.0 / math.sqrt(20.0))
    # x, y of [B,K,3] ground truth (pt3d_68 layout after transpose) are what count.
    gt3 = torch.cat([gt, torch.randn(1, 3, 1) * 50], dim=-1)
    assert landmark_nme(pred, gt3).item() == pytest.approx(5.0 / 3.0 / math.sqrt(8.0))


def test_interocular_uses_outer_eye_corners_36_45():
    gt = torch.rand(2, 68, 2) * 100
    gt[:, 36] = torch.tensor([10.0, 50.0])
    gt[:, 45] = torch.tensor([70.0, 50.0])
    assert torch.allclose(landmark_normalizer(gt, "interocular"), torch.tensor([60.0, 60.0]))
    nme = landmark_nme(gt + torch.tensor([0.6, 0.8]), gt, normalizer="interocular")
    assert torch.allclose(nme, torch.full((2,), 1.0 / 60.0))
    with pytest.raises(ValueError, match="68"):
        landmark_normalizer(gt[:, :10], "interocular")


def test_yaw_bucket_boundaries_follow_3ddfa():
    yaw = torch.tensor([0.0, 30.0, -30.0, 30.0001, 60.0, 60.5, 90.0, 120.0, -45.0])
    assert yaw_bucket(yaw).tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 1]


def _shifted(nme_values, yaws):
    """Images whose NME is exactly the given values: a 10x10 box (norm 10) shifted by 10*nme in x."""
    n = len(nme_values)
    gt = torch.rand(n, 68, 2, dtype=torch.float64) * 10
    gt[:, 0] = 0.0
    gt[:, 1] = 10.0
    shift = torch.tensor(nme_values, dtype=torch.float64) * 10
    pred = gt + torch.stack([shift, torch.zeros(n, dtype=torch.float64)], -1)[:, None]
    return pred, gt, torch.tensor(yaws, dtype=torch.float64)


def test_bucket_means_and_mean_of_means_on_constructed_set():
    values = [0.1, 0.3, 0.4, 0.6, 0.6, 0.9]
    yaws = [5.0, -30.0, 45.0, 61.0, -89.0, 95.0]
    pred, gt, yaw = _shifted(values, yaws)
    m = LandmarkNME()
    m.update(pred[:4], gt[:4], yaw[:4])  # several batches accumulate
    m.update(pred[4:], gt[4:], yaw[4:])
    out = m.compute()
    assert out["nme_0_30"].item() == pytest.approx(0.2)
    assert out["nme_30_60"].item() == pytest.approx(0.4)
    assert out["nme_60_90"].item() == pytest.approx(0.7)
    assert out["nme_balanced"].item() == pytest.approx((0.2 + 0.4 + 0.7) / 3)
    assert out["nme_balanced_std"].item() == pytest.approx(np.std([0.2, 0.4, 0.7]))
    assert out["nme"].item() == pytest.approx(np.mean(values))
    assert out["nme_std"].item() == pytest.approx(np.std(values))


def test_empty_bucket_is_nan_and_balanced_mean_uses_the_others():
    pred, gt, yaw = _shifted([0.1, 0.3], [10.0, 40.0])
    m = LandmarkNME()
    m.update(pred, gt, yaw)
    out = m.compute()
    assert math.isnan(out["nme_60_90"].item())
    assert out["nme_balanced"].item() == pytest.approx(0.2)
    m2 = LandmarkNME()
    m2.update(pred, gt)  # no yaw: per-image statistics only
    assert out["nme"].item() == pytest.approx(m2.compute()["nme"].item())
    assert math.isnan(m2.compute()["nme_balanced"].item())


def test_crop_to_original_matches_3ddfa_roi_mapping():
    # 3DDFA maps its 120x120 crop back with x * (ex - sx) / 120 + sx; our affine is the inverse map.
    sx, sy, ex, ey = 30.0, 50.0, 270.0, 330.0
    crop_pts = torch.rand(2, 68, 2, dtype=torch.float64) * 120
    T = torch.tensor(
        [[120 / (ex - sx), 0.0, -sx * 120 / (ex - sx)], [0.0, 120 / (ey - sy), -sy * 120 / (ey - sy)]],
        dtype=torch.float64,
    ).expand(2, 2, 3)
    ref = crop_pts * torch.tensor([(ex - sx) / 120, (ey - sy) / 120], dtype=torch.float64) + torch.tensor(
        [sx, sy], dtype=torch.float64
    )
    assert torch.allclose(crop_to_original(crop_pts, T), ref)
    gt = ref + 1.0
    assert torch.allclose(landmark_nme(crop_pts, gt, crop_transform=T), landmark_nme(ref, gt))


def test_crop_to_original_rotated_affine_round_trip():
    ang = 0.3
    A = (
        torch.tensor([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]], dtype=torch.float64)
        * 1.7
    )
    T = torch.cat([A, torch.tensor([[5.0], [-3.0]], dtype=torch.float64)], 1)[None]
    orig = torch.rand(1, 68, 3, dtype=torch.float64) * 200
    crop = torch.cat([orig[..., :2] @ A.T + T[0, :, 2], orig[..., 2:]], -1)
    assert torch.allclose(crop_to_original(crop, T), orig)


def test_nme_gradcheck_float64():
    gt = torch.rand(2, 5, 2, dtype=torch.float64) * 10
    pred = (gt + torch.rand(2, 5, 2, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: landmark_nme(p, gt), (pred,))


def test_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="preds"):
        landmark_nme(torch.zeros(2, 68), torch.zeros(2, 68, 2))
    with pytest.raises(ValueError, match="preds"):
        landmark_nme(torch.zeros(2, 5, 2), torch.zeros(2, 68, 2))
    with pytest.raises(ValueError, match="normalizer"):
        LandmarkNME(normalizer="bbox")
    with pytest.raises(ValueError, match="crop_transform"):
        landmark_nme(torch.zeros(2, 68, 2), torch.rand(2, 68, 2), crop_transform=torch.zeros(2, 3, 3))
    m = LandmarkNME()
    with pytest.raises(ValueError, match="yaw"):
        m.update(torch.rand(2, 68, 2), torch.rand(2, 68, 2), yaw=torch.zeros(3))


# ---------------------------------------------------------------------------- AFLW2000-3D .mat samples


def _load_aflw(files):
    gts, yaws = [], []
    for f in files:
        m = sio.loadmat(f)
        gts.append(m["pt3d_68"][:2].T.astype(np.float64))  # (x, y) of the 68 3D landmarks
        yaws.append(np.degrees(float(m["Pose_Para"][0, 1])))
    return np.stack(gts), np.array(yaws)


def _ddfa_reference(pred, gt, yaws):
    """3DDFA's calc_nme + ana, written out in numpy."""
    nme = []
    for p, g in zip(pred, gt):
        w, h = g[:, 0].max() - g[:, 0].min(), g[:, 1].max() - g[:, 1].min()
        nme.append(np.mean(np.sqrt(((p - g) ** 2).sum(1))) / math.sqrt(w * h))
    nme, a = np.array(nme), np.abs(yaws)
    means = [nme[a <= 30].mean(), nme[(a > 30) & (a <= 60)].mean(), nme[a > 60].mean()]
    return nme, means, float(np.mean(means))


def _check_protocol(files):
    gt_np, yaw_np = _load_aflw(files)
    gt, yaw = torch.from_numpy(gt_np), torch.from_numpy(yaw_np)
    m = LandmarkNME()
    m.update(gt.clone(), gt, yaw)
    assert all(v.item() == 0.0 for k, v in m.compute().items())

    shift = np.array([3.0, 4.0])  # every point 5 px off
    nme_ref, means_ref, balanced_ref = _ddfa_reference(gt_np + shift, gt_np, yaw_np)
    box = np.sqrt(np.ptp(gt_np[..., 0], 1) * np.ptp(gt_np[..., 1], 1))
    np.testing.assert_allclose(nme_ref, 5.0 / box)  # the hand value
    m = LandmarkNME()
    m.update(gt + torch.from_numpy(shift), gt, yaw)
    out = m.compute()
    np.testing.assert_allclose(out["nme"].item(), nme_ref.mean(), rtol=1e-12)
    for key, ref in zip(["nme_0_30", "nme_30_60", "nme_60_90"], means_ref):
        np.testing.assert_allclose(out[key].item(), ref, rtol=1e-12)
    np.testing.assert_allclose(out["nme_balanced"].item(), balanced_ref, rtol=1e-12)

    # The same ground truth predicted in a 120x120 crop (3DDFA's setting) and mapped back: zero error.
    lo, hi = gt.amin(1) - 20, gt.amax(1) + 20
    scale = 120.0 / (hi - lo)
    T = torch.zeros(len(gt), 2, 3, dtype=torch.float64)
    T[:, 0, 0], T[:, 1, 1] = scale[:, 0], scale[:, 1]
    T[:, :, 2] = -lo * scale
    crop = (gt - lo[:, None]) * scale[:, None]
    assert landmark_nme(crop, gt, crop_transform=T).abs().max().item() < 1e-12


def test_real_aflw2000_3d_samples(shared_data):
    files = sorted((shared_data / "aflw2000_3d").glob("*.mat"))
    if not files:
        pytest.skip("no AFLW2000-3D .mat files")
    assert len(files) == 10
    _, yaws = _load_aflw(files)
    assert np.bincount(yaw_bucket(torch.from_numpy(yaws)).numpy(), minlength=3).tolist() == [7, 2, 1]
    _check_protocol(files)


def test_own_aflw2000_3d_style_fixture(tmp_path):
    rng = np.random.default_rng(0)
    files = []
    for i, yaw in enumerate([0.1, -0.4, 0.7, 1.3, -1.2]):  # radians, all buckets
        pts = np.vstack([rng.uniform(100, 350, (2, 68)), rng.normal(size=(1, 68))]).astype(np.float32)
        pose = np.array([[0.05, yaw, -0.02, 200.0, 220.0, 0.0, 0.0015]], dtype=np.float32)
        f = tmp_path / f"image{i:05d}.mat"
        sio.savemat(f, {"pt3d_68": pts, "Pose_Para": pose, "pt2d": pts[:2, :21].astype(np.float64)})
        files.append(f)
    _check_protocol(files)
