"""MVF-Net's union photometric loss (Eq. 7) and flow alignment loss (Eq. 8)."""

from __future__ import annotations

import pytest
import torch

from facezoo.losses.multiview import alignment_loss, fill_outside, trackable_texture, union_photometric_loss
from facezoo.nn.flow_hs import HornSchunckFlow, backward_warp


def test_union_photometric_loss_counts_pixels_of_either_mask_once():
    torch.manual_seed(0)
    obs, ren = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    m_obs = (torch.rand(2, 1, 4, 5) > 0.5).float()
    m_ren = (torch.rand(2, 1, 4, 5) > 0.5).float()
    brute, count = 0.0, 0
    for b in range(2):
        for y in range(4):
            for x in range(5):
                if m_obs[b, 0, y, x] or m_ren[b, 0, y, x]:
                    brute += float(((obs[b, :, y, x] - ren[b, :, y, x]) ** 2).sum())
                    count += 1
    torch.testing.assert_close(union_photometric_loss(obs, ren, m_obs, m_ren), torch.tensor(brute / count))
    # a pair marked invalid counts nowhere
    only0 = union_photometric_loss(obs[:1], ren[:1], m_obs[:1], m_ren[:1])
    torch.testing.assert_close(
        union_photometric_loss(obs, ren, m_obs, m_ren, valid=torch.tensor([True, False])), only0
    )
    with pytest.raises(ValueError, match="masks"):
        union_photometric_loss(obs, ren, m_obs, m_ren[:, :, :3])


def test_alignment_loss_measures_a_shift_and_its_gradient_undoes_it():
    """Rendered = observed shifted by t px (full masks): |F|^2 ~ t^2 in each direction, so the loss ~ 2 t^2,
    and its gradient w.r.t. t is positive (alignment pulls the render back)."""
    obs = trackable_texture(32, 32, torch.zeros(()), seed=4)
    ones = torch.ones(1, 1, 32, 32)
    t = torch.tensor(1.5, requires_grad=True)
    shift = torch.stack((t, torch.zeros(()))).view(1, 2, 1, 1).expand(1, 2, 32, 32)
    ren = backward_warp(obs, shift)
    loss = alignment_loss(HornSchunckFlow(), obs, ren, ones, ones)
    assert abs(float(loss.detach()) - 2 * 1.5**2) < 0.6, float(
        loss.detach()
    )  # borders replicate, so slightly under 4.5
    (g,) = torch.autograd.grad(loss, t)
    assert float(g) > 0
    aligned = alignment_loss(HornSchunckFlow(), obs, obs.clone(), ones, ones)
    assert float(aligned) < 1e-8


def test_fill_outside_uses_the_same_trackable_texture():
    tex = trackable_texture(16, 16, torch.zeros(()))
    assert float(tex.min()) >= 0.1 and float(tex.max()) <= 0.9
    img = torch.zeros(1, 3, 16, 16)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8] = 1.0
    out = fill_outside(img, mask, tex)
    assert torch.equal(out[..., :8], img[..., :8]) and torch.equal(out[..., 8:], tex[..., 8:])
    # both images outside their masks: identical texture, so no flow there
    flow = HornSchunckFlow()(
        fill_outside(torch.rand(1, 3, 16, 16), torch.zeros_like(mask), tex), out * 0 + tex
    )
    assert float(flow.abs().max()) < 1e-6
