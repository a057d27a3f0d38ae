"""MMFace NME3D (Eq. 11) and the Florence NME3D: by hand, least-squares z-shift, ICP-invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from facezoo.metrics import NME3D, FlorenceNME3D, box_diagonal, nme3d, nme3d_florence


def _box_points(b=2, v=50):
    p = torch.rand(b, v, 3, dtype=torch.float64) * torch.tensor([100.0, 120.0, 60.0], dtype=torch.float64)
    p[:, 0] = 0.0
    p[:, 1] = torch.tensor([100.0, 120.0, 60.0], dtype=torch.float64)
    return p  # box 100 x 120 x 60 mm


def test_nme3d_by_hand_and_z_alignment():
    gt = _box_points()
    diag = math.sqrt(100**2 + 120**2 + 60**2)
    assert torch.allclose(box_diagonal(gt), torch.full((2,), diag, dtype=torch.float64))
    pred = gt + torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64) + torch.tensor([0.0, 0.0, 25.0])
    # the z offset is aligned away, the xy offset stays: sqrt(5) mm at every vertex
    assert torch.allclose(nme3d(pred, gt), torch.full((2,), math.sqrt(5) / diag, dtype=torch.float64))
    assert torch.allclose(
        nme3d(pred, gt, align_z=False), torch.full((2,), math.sqrt(5 + 625) / diag, dtype=torch.float64)
    )


def test_z_shift_is_the_least_squares_one():
    gt = _box_points(1, 200)
    pred = gt + torch.randn(1, 200, 3, dtype=torch.float64) * 3 + torch.tensor([0.0, 0.0, 40.0])
    dz = (gt[..., 2].mean() - pred[..., 2].mean()).item()
    aligned = pred + torch.tensor([0.0, 0.0, dz], dtype=torch.float64)

    def sse(shift):
        return float(((aligned + torch.tensor([0.0, 0.0, shift], dtype=torch.float64) - gt) ** 2).sum())

    assert sse(0.0) < sse(1e-2) and sse(0.0) < sse(-1e-2)
    ref = torch.linalg.vector_norm(aligned - gt, dim=-1).mean() / box_diagonal(gt)
    assert torch.allclose(nme3d(pred, gt), ref)


def test_nme3d_mask_selects_the_box_the_alignment_and_the_mean():
    """Only the masked vertices count: their box (not the whole target's) normalises, their mean z aligns."""
    gt = torch.zeros(1, 8, 3, dtype=torch.float64)
    # masked: the 4 corners of a 30 x 40 mm rectangle at z = 0 (box diagonal 50 mm); the others span 300 mm
    gt[0, :4] = torch.tensor([[0.0, 0, 0], [30, 0, 0], [30, 40, 0], [0, 40, 0]], dtype=torch.float64)
    gt[0, 4:] = torch.tensor(
        [[-100.0, -100, 50], [200, 0, 0], [0, 200, -50], [50, 50, 100]], dtype=torch.float64
    )
    mask = torch.tensor([True] * 4 + [False] * 4)
    pred = gt.clone()
    pred[0, :4] += torch.tensor([3.0, 4.0, 7.0], dtype=torch.float64)  # 5 mm in xy, 7 mm in z (aligned away)
    pred[0, 4:] += torch.tensor([0.0, 0.0, 90.0], dtype=torch.float64)  # would move the mean z if counted
    # by hand: every masked vertex is sqrt(3² + 4²) = 5 mm off after the z shift, over the 50 mm diagonal
    assert nme3d(pred, gt, mask=mask).item() == pytest.approx(5.0 / 50.0, rel=1e-12)
    assert nme3d(pred, gt, mask=mask, align_z=False).item() == pytest.approx(
        math.sqrt(25 + 49) / 50.0, rel=1e-12
    )
    m = NME3D(mask=mask)
    m.update(pred, gt)
    assert m.compute()["nme3d"].item() == pytest.approx(0.1, rel=1e-12)


def test_nme3d_gradcheck():
    gt = _box_points(1, 30)
    p = (gt + torch.rand_like(gt)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: nme3d(x, gt), (p,))


def test_nme3d_metric_accumulates_mean_and_std():
    gt = _box_points(4)
    pred = gt + torch.randn_like(gt)
    per = nme3d(pred, gt)
    m = NME3D()
    m.update(pred[:1], gt[:1])
    m.update(pred[1:], gt[1:])
    out = m.compute()
    assert out["nme3d"].item() == pytest.approx(per.mean().item())
    assert out["nme3d_std"].item() == pytest.approx(per.std(unbiased=False).item())


def test_nme3d_input_errors():
    with pytest.raises(ValueError, match="preds"):
        nme3d(torch.zeros(2, 5, 3), torch.zeros(2, 6, 3))
    with pytest.raises(ValueError, match="target"):
        nme3d(torch.zeros(2, 5, 3), torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match="mask"):
        nme3d(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), mask=torch.ones(4, dtype=torch.bool))


# ----------------------------------------------------------------------------------------------- Florence


def _surface(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    X, Y = rng.uniform(-1, 1, (2, n))
    Z = 50 * np.sqrt(np.clip(1 - 0.7 * X**2 - 0.5 * Y**2, 0, None)) + 20 * np.exp(-(X**2 / 0.02 + Y**2 / 0.1))
    Z += 4 * X * Y - 6 * np.exp(-((X - 0.4) ** 2 + (Y - 0.3) ** 2) / 0.02)
    return np.stack([70 * X, 90 * Y, Z], 1)


def test_florence_by_hand_without_alignment():
    P = _surface(1500)
    d = 1.5
    got = nme3d_florence(torch.from_numpy(P + [0.0, 0.0, d]), torch.from_numpy(P), align=False)
    diag = np.linalg.norm(P.max(0) - P.min(0))
    # nearest predicted vertex by brute force (not necessarily the point's own shifted copy)
    Q = P + [0.0, 0.0, d]
    brute = np.sqrt(((P[:, None] - Q[None]) ** 2).sum(-1)).min(1)
    assert brute.max() <= d + 1e-12
    assert got.item() == pytest.approx(brute.mean() / diag, rel=1e-9)


def test_florence_is_invariant_to_a_similarity_of_the_prediction():
    P = _surface()
    rng = np.random.default_rng(1)
    R = Rotation.from_rotvec(rng.normal(size=3) * 0.08).as_matrix()
    pred = 1.07 * P @ R.T + [4.0, -6.0, 3.0]
    assert nme3d_florence(pred, P).item() < 1e-9
    # large rotation: recovered from four corresponding landmarks (as MICC annotates), not from centroids
    R = Rotation.from_rotvec([0.0, 2.5, 0.4]).as_matrix()
    pred = 0.8 * P @ R.T + [40.0, 10.0, -30.0]
    idx = [0, 100, 2000, 5000]
    assert nme3d_florence(pred, P, pred_landmarks=pred[idx], target_landmarks=P[idx]).item() < 1e-9
    assert nme3d_florence(pred, P).item() > 1e-3


def test_florence_crop_and_metric_over_lists():
    P = _surface(5000)
    nose = P[np.argmax(P[:, 2])]
    far = P[np.linalg.norm(P - nose, axis=1) > 60]
    noisy = (
        P
        + np.random.default_rng(2).normal(scale=0.5, size=P.shape)
        * (np.linalg.norm(P - nose, axis=1) > 60)[:, None]
    )
    assert len(far) > 100
    # noise only outside the 60 mm crop: cropped error is zero without alignment
    assert nme3d_florence(noisy, P, nose, crop_radius=60.0, align=False).item() == 0.0
    with pytest.raises(ValueError, match="nose_tip"):
        nme3d_florence(noisy, P, crop_radius=60.0)
    m = FlorenceNME3D(crop_radius=60.0)
    m.update([torch.from_numpy(P), torch.from_numpy(noisy)], [P, P], torch.from_numpy(np.stack([nose, nose])))
    out = m.compute()
    assert out["nme3d_florence"].item() < 1e-6 and set(out) == {"nme3d_florence", "nme3d_florence_std"}


def test_florence_metric_over_lists_averages_two_different_errors():
    """Two predictions with clearly different errors: the metric is their mean and population std.

    Each prediction is the scan with independent isotropic noise (sigma 0.5 and 2 mm), so it is already
    aligned: the expected value is the brute-force nearest-vertex distance without alignment, which ICP can
    only
    shrink a little (it minimises the same distances); 3 % tolerance."""
    P = _surface(1200, seed=3)
    rng = np.random.default_rng(4)
    preds = [P + rng.normal(scale=s, size=P.shape) for s in (0.5, 2.0)]
    diag = np.linalg.norm(P.max(0) - P.min(0))
    expected = [np.sqrt(((P[:, None] - q[None]) ** 2).sum(-1)).min(1).mean() / diag for q in preds]
    assert expected[1] > 2.5 * expected[0]
    m = FlorenceNME3D()
    m.update([torch.from_numpy(q) for q in preds], [P, P])
    out = m.compute()
    assert out["nme3d_florence"].item() == pytest.approx(np.mean(expected), rel=0.03)
    assert out["nme3d_florence_std"].item() == pytest.approx(np.std(expected), rel=0.06)
