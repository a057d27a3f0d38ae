"""Mixed batches: a zero-filled placeholder row marked invalid contributes nothing to any loss."""

from __future__ import annotations

import pytest
import torch

import facezoo.nn as fnn
from facezoo.losses import (
    FaceEmbedder,
    landmark_loss,
    landmark_weights,
    masked_mean,
    photometric_loss,
    texture_variance,
)

VALID = torch.tensor([True, False, True])


def _with_placeholder(x: torch.Tensor) -> torch.Tensor:
    """Insert a zero-filled row at index 1 (what collate does for a sample lacking the key)."""
    return torch.cat([x[:1], torch.zeros_like(x[:1]), x[1:]])


def test_each_loss_ignores_an_invalid_row():
    torch.manual_seed(0)
    image, rendered = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mask, attention = (torch.rand(2, 1, 8, 8) > 0.3).float(), torch.rand(2, 1, 8, 8)
    full = [_with_placeholder(t) for t in (image, rendered, mask, attention)]
    full[1][1] = 1.0  # the placeholder's rendering is far from its (zero) image and fully covered
    full[2][1] = 1.0
    full[3][1] = 1.0
    assert torch.allclose(
        photometric_loss(*full, valid=VALID), photometric_loss(image, rendered, mask, attention)
    )
    assert not torch.allclose(photometric_loss(*full), photometric_loss(image, rendered, mask, attention))

    pred, target = torch.rand(2, 68, 2) * 50, torch.rand(2, 68, 2) * 50
    w = landmark_weights()
    p_full, t_full = _with_placeholder(pred), _with_placeholder(target)
    p_full[1] = 30.0
    assert torch.allclose(landmark_loss(p_full, t_full, w, valid=VALID), landmark_loss(pred, target, w))

    colours = torch.rand(2, 50, 3)
    c_full = _with_placeholder(colours)
    c_full[1, ::2] = 1.0  # high variance in the placeholder
    assert torch.allclose(texture_variance(c_full, valid=VALID), texture_variance(colours))
    assert not torch.allclose(texture_variance(c_full), texture_variance(colours))

    values = torch.tensor([2.0, 7.0])
    assert torch.allclose(
        masked_mean(_with_placeholder(values) + torch.tensor([0, 5.0, 0]), VALID), values.mean()
    )


def test_perceptual_loss_ignores_an_invalid_row():
    torch.manual_seed(0)
    emb = FaceEmbedder(fnn.build("iresnet50", layers=(1, 1, 1, 1), width=8, input_size=32), input_size=32)
    image, rendered = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    i_full, r_full = _with_placeholder(image), _with_placeholder(rendered)
    r_full[1] = torch.rand(3, 32, 32)
    assert torch.allclose(emb.distance(i_full, r_full, valid=VALID), emb.distance(image, rendered), atol=1e-6)


def test_no_valid_row_gives_zero_with_a_graph_and_bad_masks_are_named():
    x = torch.rand(2, 68, 2, requires_grad=True)
    loss = landmark_loss(x, torch.zeros(2, 68, 2), valid=torch.tensor([False, False]))
    loss.backward()
    assert float(loss) == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
    image = torch.rand(2, 3, 4, 4)
    none = torch.tensor([False, False])
    assert float(photometric_loss(image, image + 1, torch.ones(2, 1, 4, 4), valid=none)) == 0.0
    assert float(texture_variance(torch.rand(2, 5, 3), valid=none)) == 0.0
    with pytest.raises(ValueError, match=r"valid: expected a bool mask \[2\]"):
        photometric_loss(image, image, torch.ones(2, 1, 4, 4), valid=torch.tensor([True]))
