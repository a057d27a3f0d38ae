"""MVF-Net's cross-view losses between an observed image and a rendered projection (mvfnet.txt §3.6.2).

* :func:`union_photometric_loss` (Eq. 7): ``sum_{u in M_obs u M_ren} ||I_B[u] - I_{A->B}[u]||_2^2`` over the
  *union* of the two visibility masks ("such that misalignment errors can be taken into consideration").
  Normalisation (the paper writes a plain sum; ours): divided by the number of union pixels of the batch, so
  that ``lambda_6 = 10`` keeps its meaning at any resolution.
* :func:`alignment_loss` (Eq. 8): ``|F(I_B, I_{A->B})| + |F(I_{A->B}, I_B)|``, the squared magnitudes of the
  bidirectional dense flows of a frozen, differentiable flow estimator ``F`` ("the sum of squared flow
  magnitudes at all pixels"), with both images filled outside their own visibility masks by a texture "whose
  flow can be easily estimated" (:func:`trackable_texture`, the same in both images, so its flow is zero and
  the flow measures the misalignment of the faces and their outlines). Normalisation (ours): the mean over
  pixels (pixels^2), for ``lambda_7 = 0.1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facezoo.losses.masks import check_valid


def _check(name: str, x: Tensor, channels: int | None = None) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor [B,C,H,W], got {getattr(x, 'shape', type(x))}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channel(s), got shape {tuple(x.shape)}")


def union_photometric_loss(
    observed: Tensor,
    rendered: Tensor,
    mask_observed: Tensor,
    mask_rendered: Tensor,
    valid: Tensor | None = None,
) -> Tensor:
    """Eq. 7 over a batch of pairs: squared colour distance summed over ``M_obs u M_ren``, divided by the
    number of union pixels (module docstring).

    Args:
        observed, rendered: ``[B,3,H,W]`` in [0, 1].
        mask_observed, mask_rendered: ``[B,1,H,W]`` 0/1 visibility masks.
        valid: optional bool ``[B]`` (pairs that are False count nowhere).

    Example:
        >>> obs, ren = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
        >>> ren[0, :, 0, 0] = 1.0                                   # error 3 at pixel (0, 0)
        >>> m1 = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]); m2 = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])
        >>> float(union_photometric_loss(obs, ren, m1, m2))         # (3 + 0) / 2 union pixels
        1.5
    """
    _check("observed", observed, 3)
    _check("rendered", rendered)
    _check("mask_observed", mask_observed, 1)
    _check("mask_rendered", mask_rendered, 1)
    if rendered.shape != observed.shape or mask_observed.shape != mask_rendered.shape:
        raise ValueError(
            f"observed {tuple(observed.shape)} / rendered {tuple(rendered.shape)} and the masks "
            f"{tuple(mask_observed.shape)} / {tuple(mask_rendered.shape)} must agree"
        )
    union = torch.maximum(mask_observed, mask_rendered).detach()
    valid = check_valid(valid, observed.shape[0])
    if valid is not None:
        union = union * valid.to(union)[:, None, None, None]
    sq = ((observed - rendered) ** 2).sum(1, keepdim=True)
    return (sq * union).sum() / union.sum().clamp_min(1.0)


def trackable_texture(height: int, width: int, like: Tensor, seed: int = 0) -> Tensor:
    """``[1,3,H,W]`` a fixed multi-scale random texture in [0.1, 0.9] (deterministic for ``seed``), easy to
    track for a flow estimator: rich gradients at 4-32 px scales in every direction.

    Example:
        >>> t = trackable_texture(32, 32, torch.zeros(()))
        >>> tuple(t.shape), bool(t.std() > 0.05), torch.equal(t, trackable_texture(32, 32, torch.zeros(())))
        ((1, 3, 32, 32), True, True)
    """
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(1, 3, height, width)
    for cells in (4, 8, 16):
        coarse = torch.rand(1, 3, max(2, height // cells), max(2, width // cells), generator=g)
        out = out + F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    out = out / 3.0
    out = (out - out.mean()) / out.std().clamp_min(1e-6) * 0.2 + 0.5
    return out.clamp(0.1, 0.9).to(device=like.device, dtype=like.dtype)


def fill_outside(image: Tensor, mask: Tensor, texture: Tensor) -> Tensor:
    """``image`` where ``mask`` (``[B,1,H,W]`` in [0, 1], may be soft) and ``texture`` elsewhere."""
    return image * mask + texture.to(image) * (1.0 - mask)


def alignment_loss(
    flow: nn.Module,
    observed: Tensor,
    rendered: Tensor,
    mask_observed: Tensor,
    mask_rendered: Tensor,
    texture: Tensor | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """Eq. 8 over a batch of pairs: mean squared magnitude of ``flow(obs', ren')`` plus that of
    ``flow(ren', obs')``, ``x'`` the image filled outside its own mask with ``texture`` (module docstring).

    Args:
        flow: a frozen flow estimator ``(image1, image2) -> [B,2,H,W]`` pixels (PWC-Net, Horn–Schunck).
        observed, rendered: ``[B,3,H,W]``; mask_observed, mask_rendered: ``[B,1,H,W]`` (the rendered one may
            be the antialiased coverage, which carries silhouette gradients).
        texture: ``[1|B,3,H,W]`` fill (default :func:`trackable_texture`).
        valid: optional bool ``[B]``.

    Example:
        >>> from facezoo.nn.flow_hs import HornSchunckFlow
        >>> img = trackable_texture(32, 32, torch.zeros(()), seed=1); ones = torch.ones(1, 1, 32, 32)
        >>> float(alignment_loss(HornSchunckFlow(), img, img, ones, ones)) < 1e-8
        True
    """
    _check("observed", observed, 3)
    _check("rendered", rendered, 3)
    if texture is None:
        texture = trackable_texture(observed.shape[-2], observed.shape[-1], observed)
    obs = fill_outside(observed, mask_observed, texture)
    ren = fill_outside(rendered, mask_rendered, texture)
    per = flow(obs, ren).square().sum(1).mean((1, 2)) + flow(ren, obs).square().sum(1).mean((1, 2))
    valid = check_valid(valid, observed.shape[0])
    if valid is None:
        return per.mean()
    if not bool(valid.any()):
        return per.sum() * 0.0
    return per[valid.to(per.device)].mean()


__all__ = ["alignment_loss", "fill_outside", "trackable_texture", "union_photometric_loss"]
