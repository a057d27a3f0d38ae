"""LandmarkNME on bad input (AFLW2000-3D protocol, facezoo's choices stated in the module docstring): a
non-finite prediction is refused naming the sample; a degenerate ground-truth box is skipped and counted;
a NaN yaw lands in no bucket."""

from __future__ import annotations

import math

import pytest
import torch

from facezoo.metrics import LandmarkNME


def _batch(n=4):
    """Images whose NME is known by hand: a 10x10 box (normaliser 10), every point shifted by 1 px in x."""
    gt = torch.rand(n, 68, 2, dtype=torch.float64) * 10
    gt[:, 0], gt[:, 1] = 0.0, 10.0
    return gt + torch.tensor([1.0, 0.0], dtype=torch.float64), gt  # NME 0.1 each


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_prediction_is_refused_naming_the_sample(bad):
    pred, gt = _batch()
    pred[2, 30, 0] = bad
    m = LandmarkNME()
    with pytest.raises(ValueError, match=r"non-finite .* dataset index \[17\]"):
        m.update(pred, gt, yaw=torch.zeros(4), index=torch.tensor([5, 9, 17, 21]))
    with pytest.raises(ValueError, match=r"batch row \[2\]"):
        m.update(pred, gt)
    assert int(m.count) == 0  # nothing half-added


def test_nan_yaw_counts_in_nme_but_in_no_bucket():
    pred, gt = _batch()
    m = LandmarkNME()
    with pytest.warns(UserWarning, match=r"non-finite yaw for batch row \[1\]"):
        m.update(pred, gt, yaw=torch.tensor([10.0, float("nan"), 45.0, 70.0]))
    out = m.compute()
    assert m.bucket_count.tolist() == [1.0, 1.0, 1.0]  # the NaN-yaw image is not in 0-30
    assert float(out["nme"]) == pytest.approx(0.1) and int(out["no_yaw"]) == 1
    assert float(out["nme_balanced"]) == pytest.approx(0.1)


@pytest.mark.parametrize("how", ["flat box", "inf target", "nan target"])
def test_degenerate_target_is_skipped_and_counted(how):
    pred, gt = _batch()
    pred[1, :, 0] += 40.0  # this image alone would have NME 4.1: it must not reach any figure
    if how == "flat box":
        gt[1, :, 1] = 3.0  # zero height: sqrt(w*h) = 0
        pred[1] = gt[1] + 1.0
    else:
        gt[1, 5, 0] = float("inf") if how == "inf target" else float("nan")
    m = LandmarkNME()
    with pytest.warns(
        UserWarning, match=r"skipped 1 sample\(s\) with degenerate ground truth.*batch row \[1\]"
    ):
        m.update(pred, gt, yaw=torch.tensor([10.0, 10.0, 45.0, 70.0]))
    out = m.compute()
    assert int(out["skipped"]) == 1 and float(m.count) == 3
    for key in ("nme", "nme_0_30", "nme_30_60", "nme_60_90", "nme_balanced"):
        assert math.isfinite(float(out[key])) and float(out[key]) == pytest.approx(0.1), key
