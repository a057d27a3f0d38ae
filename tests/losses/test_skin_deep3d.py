"""The official Deep3DFace skin posterior against its published formula, written out here in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facezoo.losses.skin_deep3d import (
    DEEP3D_NONSKIN_GMM,
    DEEP3D_SKIN_GMM,
    Deep3DSkinGMM,
    rgb_to_ycbcr_studio,
)


def official_posterior(rgb01: np.ndarray) -> np.ndarray:
    """util/skin_mask.py: MATLAB-style YCbCr of 0-255 RGB, then per component w * exp(-0.5 d^T S^-1 d) /
    ((2 pi)^(3/2) sqrt(det)), summed, prior 0.8."""
    m = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
    ycc = (rgb01 * 255.0) @ (m.T / 255.0) + np.array([16.0, 128.0, 128.0])

    def likelihood(gmm):
        out = np.zeros(len(ycc))
        for w, mu, s_inv, det in zip(gmm["weights"], gmm["means"], gmm["cov_inv"], gmm["cov_det"]):
            d = ycc - np.array(mu)
            power = -0.5 * np.sum((d @ np.array(s_inv)) * d, axis=1)
            out += w * np.exp(power) / ((2 * math.pi) ** 1.5 * det**0.5)
        return out

    skin, other = 0.8 * likelihood(DEEP3D_SKIN_GMM), 0.2 * likelihood(DEEP3D_NONSKIN_GMM)
    return skin / (skin + other)


def test_posterior_matches_the_official_formula():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0.05, 0.95, (400, 3))
    rgb[:100] = np.clip(np.array([0.8, 0.55, 0.45]) + 0.08 * rng.standard_normal((100, 3)), 0, 1)  # skin-ish
    expect = official_posterior(rgb)
    assert expect.min() < 0.05 and expect.max() > 0.95  # the sample spans both classes
    image = torch.from_numpy(rgb.T.reshape(1, 3, 20, 20).copy())
    got = Deep3DSkinGMM()(image).reshape(-1).numpy()
    np.testing.assert_allclose(got, expect, atol=1e-6)  # rgb[k] is pixel k of the 20x20 image (row-major)
    got32 = Deep3DSkinGMM()(image.float()).reshape(-1).numpy()
    np.testing.assert_allclose(got32, expect, atol=2e-4)


def test_ycbcr_studio_reference_values():
    # MATLAB rgb2ycbcr of pure colours (8-bit): black (16,128,128), white (235,128,128), red (81,90,240)
    rgb = torch.tensor([[0.0, 0, 0], [1, 1, 1], [1, 0, 0]], dtype=torch.float64)
    expect = torch.tensor([[16.0, 128, 128], [235, 128, 128], [81.481, 90.203, 240.0]], dtype=torch.float64)
    torch.testing.assert_close(rgb_to_ycbcr_studio(rgb), expect)


def test_far_colours_stay_finite_and_bad_input_is_named():
    # pure saturated colours are far from every component: the official exp() gives 0/0 there
    image = torch.eye(3)[:, :, None, None].permute(1, 0, 2, 3).reshape(3, 3, 1, 1)
    p = Deep3DSkinGMM()(image)
    assert torch.isfinite(p).all()
    with pytest.raises(ValueError, match=r"image \[B,3,H,W\]"):
        Deep3DSkinGMM()(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        Deep3DSkinGMM()(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="prior"):
        Deep3DSkinGMM(prior=1.0)
