"""Photometric l2,1: by hand, soft masks, per-image then mean, empty masks, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from facezoo.metrics import PhotometricError, photometric_error


def test_by_hand_per_pixel_l2_then_mean_over_mask():
    pred = torch.zeros(1, 3, 2, 3)
    target = torch.zeros(1, 3, 2, 3)
    target[0, :, 0, 0] = torch.tensor([0.3, 0.4, 0.0])  # norm 0.5
    target[0, :, 1, 2] = torch.tensor([0.1, 0.2, 0.2])  # norm 0.3
    target[0, :, 1, 1] = 1.0  # outside the mask
    mask = torch.tensor([[[True, True, False], [False, False, True]]])
    assert photometric_error(pred, target, mask).item() == pytest.approx((0.5 + 0.0 + 0.3) / 3)
    # a [B,1,H,W] float mask works the same, and soft weights weight both sums
    assert photometric_error(pred, target, mask[:, None].float()).item() == pytest.approx(0.8 / 3)
    soft = mask.float() * torch.tensor([[[1.0, 0.5, 0.0], [0.0, 0.0, 0.25]]])
    assert photometric_error(pred, target, soft).item() == pytest.approx((0.5 + 0.3 * 0.25) / 1.75)


def test_metric_is_mean_of_per_image_values_and_skips_empty_masks():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(3, 3, 8, 8, generator=g), torch.rand(3, 3, 8, 8, generator=g)
    mask = torch.zeros(3, 8, 8, dtype=torch.bool)
    mask[0, :2] = True  # 16 pixels
    mask[1] = True  # 64 pixels
    per = photometric_error(pred, target, mask)
    assert math.isnan(per[2].item())
    m = PhotometricError()
    m.update(pred[:2], target[:2], mask[:2])
    m.update(pred[2:], target[2:], mask[2:])
    assert m.compute()["l21"].item() == pytest.approx(per[:2].mean().item())
    pooled = torch.linalg.vector_norm(pred - target, dim=1)[mask].mean()
    assert abs(m.compute()["l21"].item() - pooled.item()) > 1e-4  # not pixel-pooled


def test_gradcheck_and_zero_gradient_where_equal():
    target = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    pred = (target + 0.1 * torch.rand_like(target) + 0.01).requires_grad_()
    mask = torch.rand(2, 4, 4) > 0.3
    mask[:, 0, 0] = True
    assert torch.autograd.gradcheck(lambda p: photometric_error(p, target, mask), (pred,))
    same = target.clone().requires_grad_()
    photometric_error(same, target, mask).sum().backward()
    assert torch.isfinite(same.grad).all() and same.grad.abs().max() == 0


def test_input_errors():
    x = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="pred"):
        photometric_error(torch.zeros(2, 4, 4, 4), x, torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="target"):
        photometric_error(x, torch.zeros(2, 3, 4, 5), torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        photometric_error(x, x, torch.ones(2, 4, 5))
