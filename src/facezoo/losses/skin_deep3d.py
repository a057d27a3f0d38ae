"""The skin-colour model of the official Deep3DFace code: a 4 + 4 component Gaussian mixture in YCbCr.

Deep3DFaceRecon_pytorch (``util/skin_mask.py``) precomputes each training image's skin attention as the raw
Bayes posterior ``P(skin | c) = 0.8 p(c | skin) / (0.8 p(c | skin) + 0.2 p(c | non-skin))`` of two 4-component
full-covariance Gaussian mixtures over 8-bit *studio-swing* BT.601 YCbCr (MATLAB's ``rgb2ycbcr``: ``Y = 16 +
65.481 R + 128.553 G + 24.966 B``, ``Cb = 128 - 37.797 R - 74.203 G + 112 B``, ``Cr = 128 + 112 R - 93.786 G
- 18.214 B`` for R, G, B in [0, 1]), with skin prior 0.8. The mixtures are published as weights, means,
inverse covariances and covariance determinants; the numbers below are those (facts, not code).

What differs from the official pipeline, deliberately: the posterior is computed from log-densities (the
official ``exp`` of each component underflows to 0/0 = NaN far from both mixtures; here such a colour gets
the ratio of the tails, well defined), it is evaluated on the aligned crop rather than on the original image
before cropping, and it is not rounded to 8 bits (the official mask is stored as a ``uint8`` image).

The *paper* (deep3d.txt §3.2) instead thresholds a naive-Bayes posterior (``A = 1 if P > 0.5 else P``,
:func:`facezoo.losses.skin.skin_attention`); :class:`Deep3DSkinGMM` is what the official code trains with
(``A = P``, no threshold).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "DEEP3D_SKIN_PRIOR",
    "DEEP3D_SKIN_GMM",
    "DEEP3D_NONSKIN_GMM",
    "rgb_to_ycbcr_studio",
    "Deep3DSkinGMM",
]

#: P(skin) of the official skin model.
DEEP3D_SKIN_PRIOR = 0.8

#: The official skin mixture over (Y, Cb, Cr) in 8-bit studio-swing units: weights, means, inverse
#: covariances, covariance determinants.
DEEP3D_SKIN_GMM = {
    "weights": (0.24063933, 0.16365987, 0.26034665, 0.33535415),
    "means": (
        (113.71862, 103.39613, 164.08226),
        (150.19858, 105.18467, 155.51428),
        (183.92976, 107.62468, 152.71820),
        (114.90524, 113.59782, 151.38217),
    ),
    "cov_inv": (
        ((0.0019472069, 0.0020450759, -0.00060243998), (0.0020450759, 0.017700525, 0.0051420014),
         (-0.00060243998, 0.0051420014, 0.0081308950)),
        ((0.0027110141, 0.0011036990, 0.0023122299), (0.0011036990, 0.010707724, 0.010742856),
         (0.0023122299, 0.010742856, 0.017481629)),
        ((0.0048026871, 0.00022935172, 0.0077668377), (0.00022935172, 0.011729696, 0.0081661865),
         (0.0077668377, 0.0081661865, 0.025374353)),
        ((0.0011989699, 0.0022453172, -0.0010748957), (0.0022453172, 0.047758564, 0.020332102),
         (-0.0010748957, 0.020332102, 0.024502251)),
    ),
    "cov_det": (5692842.5, 5851930.5, 2329131.0, 1585971.0),
}  # fmt: skip

#: The official non-skin mixture (same layout as :data:`DEEP3D_SKIN_GMM`).
DEEP3D_NONSKIN_GMM = {
    "weights": (0.12791070, 0.31130761, 0.34245777, 0.21832393),
    "means": (
        (99.200851, 112.07533, 140.20602),
        (110.91392, 125.52969, 130.19237),
        (129.75864, 129.96107, 126.96808),
        (112.29587, 128.85121, 129.05431),
    ),
    "cov_inv": (
        ((0.00085371657, 0.00071197288, 0.00023958916), (0.00071197288, 0.0025935620, 0.00076557708),
         (0.00023958916, 0.00076557708, 0.0015042332)),
        ((0.00024650150, 0.00045542428, 0.00015019422), (0.00045542428, 0.026412144, 0.018419769),
         (0.00015019422, 0.018419769, 0.037497383)),
        ((0.00037054974, 0.00038146760, 0.00040408765), (0.00038146760, 0.0085505722, 0.0079136286),
         (0.00040408765, 0.0079136286, 0.010982352)),
        ((0.00013709733, 0.00051228428, 0.00012777430), (0.00051228428, 0.28237113, 0.10528370),
         (0.00012777430, 0.10528370, 0.23468947)),
    ),
    "cov_det": (458703648.0, 6466488.0, 90611376.0, 133097.63),
}  # fmt: skip

_STUDIO = (
    (65.481, 128.553, 24.966),
    (-37.797, -74.203, 112.0),
    (112.0, -93.786, -18.214),
)
_STUDIO_OFFSET = (16.0, 128.0, 128.0)


def rgb_to_ycbcr_studio(rgb: Tensor, dim: int = -1) -> Tensor:
    """Studio-swing BT.601 YCbCr in 8-bit units (Y in [16, 235], Cb/Cr in [16, 240]) of RGB in [0, 1] along
    ``dim`` (size 3): MATLAB's ``rgb2ycbcr``, the official ``_rgb2ycbcr``.

    Example:
        >>> rgb_to_ycbcr_studio(torch.tensor([1.0, 1.0, 1.0]))
        tensor([235., 128., 128.])
    """
    if rgb.shape[dim] != 3:
        raise ValueError(f"rgb_to_ycbcr_studio: dimension {dim} must have size 3, got {tuple(rgb.shape)}")
    m = torch.tensor(_STUDIO, dtype=rgb.dtype, device=rgb.device)
    off = torch.tensor(_STUDIO_OFFSET, dtype=rgb.dtype, device=rgb.device)
    x = rgb.movedim(dim, -1)
    return (x @ m.T + off).movedim(-1, dim)


def _quadratic_features(x: Tensor) -> Tensor:
    """``[N,3] -> [N,10]``: the monomials ``x_i x_j`` (i <= j), ``x_i`` and 1, so that every component's
    ``(x - mu)^T S (x - mu)`` is one linear form of them (:func:`_quadratic_weights`): a single small matmul
    for all components instead of ``N x K`` tiny products."""
    i, j = torch.triu_indices(3, 3)
    return torch.cat([x[:, i] * x[:, j], x, torch.ones_like(x[:, :1])], dim=1)


def _quadratic_weights(means: Tensor, cov_inv: Tensor) -> Tensor:
    """``[10,K]`` weights with ``features(x) @ W = (x - mu_k)^T S_k (x - mu_k)`` (``S`` symmetric)."""
    i, j = torch.triu_indices(3, 3)
    quad = cov_inv[:, i, j] * torch.where(i == j, 1.0, 2.0).to(cov_inv)  # off-diagonal terms appear twice
    lin = -2.0 * torch.einsum("kij,kj->ki", cov_inv, means)
    const = torch.einsum("ki,kij,kj->k", means, cov_inv, means)
    return torch.cat([quad, lin, const[:, None]], dim=1).T


def _log_joint_weights(gmm: dict[str, tuple]) -> tuple[Tensor, Tensor]:
    """``(W [10,K], c [K])`` with ``log w_k N(x; mu_k, S_k^-1) = -0.5 features(x) @ W + c`` (float64)."""
    w, mu, s_inv, det = (
        torch.tensor(gmm[k], dtype=torch.float64) for k in ("weights", "means", "cov_inv", "cov_det")
    )
    c = torch.log(w) - 1.5 * math.log(2.0 * math.pi) - 0.5 * torch.log(det)
    return _quadratic_weights(mu - _CENTRE, s_inv), c


#: colours are centred on the middle of the 8-bit range before the quadratic features (smaller terms)
_CENTRE = 128.0


class Deep3DSkinGMM(nn.Module):
    """The official Deep3DFace skin posterior: images ``[B,3,H,W]`` RGB in [0, 1] -> ``P(skin) [B,1,H,W]``.

    Args:
        prior: P(skin) (official 0.8).

    Example:
        >>> clf = Deep3DSkinGMM()
        >>> skin = torch.tensor([0.8, 0.55, 0.45])[None, :, None, None]    # a skin tone
        >>> blue = torch.tensor([0.1, 0.2, 0.9])[None, :, None, None]
        >>> bool(clf(skin) > 0.9), bool(clf(blue) < 0.01)
        (True, True)
    """

    is_fallback = False  # the method's "which skin model" messages read this, as for SkinClassifier

    def __init__(self, prior: float = DEEP3D_SKIN_PRIOR) -> None:
        super().__init__()
        if not 0.0 < prior < 1.0:
            raise ValueError(f"Deep3DSkinGMM: prior must be in (0, 1), got {prior}")
        self.prior = float(prior)
        (ws, cs), (wn, cn) = _log_joint_weights(DEEP3D_SKIN_GMM), _log_joint_weights(DEEP3D_NONSKIN_GMM)
        self.register_buffer("weights", torch.cat([ws, wn], dim=1), persistent=False)  # [10, 4 + 4]
        self.register_buffer("offsets", torch.cat([cs, cn]), persistent=False)

    def forward(self, image: Tensor) -> Tensor:
        if not isinstance(image, Tensor) or image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(
                f"Deep3DSkinGMM expects image [B,3,H,W] RGB in [0,1], got {getattr(image, 'shape', image)}"
            )
        if not image.is_floating_point():
            raise TypeError(f"Deep3DSkinGMM expects a floating-point image in [0,1], got {image.dtype}")
        b, _, h, w = image.shape
        dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
        x = rgb_to_ycbcr_studio(image.to(dtype), dim=1).permute(0, 2, 3, 1).reshape(-1, 3) - _CENTRE
        log_joint = -0.5 * (_quadratic_features(x) @ self.weights.to(x)) + self.offsets.to(x)  # [N, 8]
        skin, other = log_joint.split(4, dim=1)
        logit = (
            torch.logsumexp(skin, 1) - torch.logsumexp(other, 1) + math.log(self.prior / (1.0 - self.prior))
        )
        return torch.sigmoid(logit).view(b, 1, h, w).to(image.dtype)

    def extra_repr(self) -> str:
        return f"official Deep3DFace YCbCr GMM, 4+4 components, prior={self.prior}"
