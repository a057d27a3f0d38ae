import math

import pytest
import torch

from facezoo.losses import photometric_loss


def test_hand_computed_value():
    image = torch.zeros(1, 3, 2, 2)
    rendered = torch.zeros(1, 3, 2, 2)
    rendered[0, :, 0, 0] = torch.tensor([0.3, 0.4, 0.0])  # distance 0.5
    rendered[0, :, 1, 1] = torch.tensor([1.0, 0.0, 0.0])  # distance 1.0
    mask = torch.ones(1, 1, 2, 2)
    attention = torch.tensor([[[[1.0, 1.0], [1.0, 0.5]]]])
    # (0.5 * 1 + 1.0 * 0.5) / (1 + 1 + 1 + 0.5)
    expected = (0.5 + 0.5) / 3.5
    assert float(photometric_loss(image, rendered, mask, attention)) == pytest.approx(expected, abs=1e-4)


def test_ignores_masked_and_occluded_pixels():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 8, 8)
    rendered = torch.rand(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1.0  # the z-buffered face region
    base = photometric_loss(image, rendered, mask)
    changed = rendered.clone()
    changed[:, :, :2] = torch.rand(2, 3, 2, 8)  # outside M (background / occluded surface): no effect
    assert torch.allclose(photometric_loss(image, changed, mask), base)
    occluder = image.clone()
    occluder[:, :, 3, 3] = 5.0  # a pixel with zero attention: no effect either
    attention = torch.ones(2, 1, 8, 8)
    attention[:, :, 3, 3] = 0.0
    a = photometric_loss(image, rendered, mask, attention)
    b = photometric_loss(occluder, rendered, mask, attention)
    assert torch.allclose(a, b)
    inside = rendered.clone()
    inside[:, :, 4, 4] += 0.5
    assert not torch.allclose(photometric_loss(image, inside, mask), base)


def test_empty_mask_is_zero_and_gradient_finite():
    image = torch.rand(1, 3, 4, 4)
    rendered = image.clone().requires_grad_()
    loss = photometric_loss(image, rendered, torch.ones(1, 1, 4, 4))
    loss.backward()
    assert torch.isfinite(rendered.grad).all()
    assert float(photometric_loss(image, rendered, torch.zeros(1, 1, 4, 4))) == 0.0
    assert float(loss) == pytest.approx(math.sqrt(1e-8), abs=1e-6)


def test_validation():
    with pytest.raises(ValueError, match="mask"):
        photometric_loss(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), torch.ones(1, 3, 4, 4))
    with pytest.raises(ValueError, match="rendered"):
        photometric_loss(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 5, 4), torch.ones(1, 1, 4, 4))


def test_weight_below_one_pixel_is_divided_by_one():
    """The denominator is clamped at one pixel of weight: a face region of total weight 0.25 (a sliver at an
    antialiased silhouette) gives 0.25 * d / 1, not d (what dividing by its own weight would give)."""
    image = torch.zeros(2, 3, 3, 3)
    rendered = torch.zeros(2, 3, 3, 3)
    rendered[1, :, 2, 1] = torch.tensor([0.0, 0.6, 0.8])  # distance 1.0 (+1e-8 inside the root)
    mask = torch.zeros(2, 1, 3, 3)
    mask[1, 0, 2, 1] = 0.25
    d = math.sqrt(1.0 + 1e-8)
    assert float(photometric_loss(image, rendered, mask)) == pytest.approx(0.25 * d / 1.0, rel=1e-6)
    mask[0, 0, 0, 0] = 1.5  # 1.75 pixels of weight in the batch (a zero-error pixel): the plain ratio
    assert float(photometric_loss(image, rendered, mask)) == pytest.approx(
        (0.25 * d + 1.5 * math.sqrt(1e-8)) / 1.75, rel=1e-6
    )
