"""Pieces of the nonlinear 3DMM method (:mod:`facezoo.methods.nonlinear3dmm`) that are small, pure and tested
on their own: the projection ``M`` and its camera, the pose label ``M_bar`` of a labelled face, the UV
geometry of a morphable model and the pairing table of Eq. 15.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from facezoo.geometry import WeakPerspective
from facezoo.morphable import MorphableModel

#: Eq. 15's pairings (shape, albedo) whose renders enter the reconstruction loss when the model has proxies
#: ("proxy" = S~ / A~, "true" = S / A); Î(S, A) is deliberately left out (§3.3) and is only the output.
PROXY_PAIRINGS: tuple[tuple[str, str], ...] = (("proxy", "proxy"), ("proxy", "true"), ("true", "proxy"))
#: without proxies (Tran & Liu 2018, Eq. 11) the one rendering Î(S, A) is the loss.
PLAIN_PAIRINGS: tuple[tuple[str, str], ...] = (("true", "true"),)
OUTPUT_PAIRING = ("true", "true")


def loss_pairings(proxies: bool) -> tuple[tuple[str, str], ...]:
    """The (shape, albedo) pairings of the reconstruction loss: Eq. 15 with proxies, Eq. 11 without.

    Example:
        >>> loss_pairings(True)
        (('proxy', 'proxy'), ('proxy', 'true'), ('true', 'proxy'))
        >>> loss_pairings(False)
        (('true', 'true'),)
    """
    return PROXY_PAIRINGS if proxies else PLAIN_PAIRINGS


def regularised_elements(proxies: bool) -> dict[str, str]:
    """Which element each regulariser acts on (Eq. 13 with proxies, Eq. 12 without), and the residual terms
    (Eq. 14, 16), which exist only with proxies.

    Example:
        >>> regularised_elements(True)["sym"], regularised_elements(False)["smo"]
        ('proxy', 'true')
        >>> "res" in regularised_elements(False)
        False
    """
    which = "proxy" if proxies else "true"
    out = {"sym": which, "con": which, "smo": which}
    if proxies:
        out.update(res="residual", res_sym="residual")
    return out


def base_projection(batch: int, image_size: int, scale: float, like: Tensor) -> Tensor:
    """``[B,2,4]`` the frontal projection the encoder's ``M`` is an offset from: ``x = s X + c``,
    ``y = c - s Y`` (image y down, model y up), ``c`` the crop centre.

    Example:
        >>> base_projection(1, 64, 0.5, torch.zeros(1))[0]
        tensor([[ 0.5000,  0.0000,  0.0000, 32.0000],
                [ 0.0000, -0.5000,  0.0000, 32.0000]])
    """
    c = image_size / 2.0
    m = torch.tensor([[scale, 0.0, 0.0, c], [0.0, -scale, 0.0, c]], dtype=like.dtype, device=like.device)
    return m.expand(batch, 2, 4).clone()


def projection_units(image_size: int, scale: float, like: Tensor) -> Tensor:
    """``[2,4]`` the units of ``M``'s entries: ``scale`` for the linear part, ``image_size / 2`` px for the
    translation (the encoder regresses ``M = M_0 + units * p``; the pose label is compared in these units)."""
    c = image_size / 2.0
    return torch.tensor([[scale] * 3 + [c], [scale] * 3 + [c]], dtype=like.dtype, device=like.device)


def camera_from_projection(m: Tensor) -> WeakPerspective:
    """The scaled-orthographic camera nearest to an affine projection ``M [B,2,4]`` (pixels, image y down).

    Rows ``m1 = s r1`` and ``m2 = -s r2`` of an exact weak-perspective ``M``; for a general one the rotation
    comes from Gram-Schmidt on ``(m1, -m2)`` (``r3 = r1 x r2``), the scale is the mean row norm and the
    translation is ``M[:, :, 3]``. Differentiable; exact for an ``M`` that is already scaled-orthographic.

    Example:
        >>> m = torch.tensor([[[2.0, 0.0, 0.0, 10.0], [0.0, -2.0, 0.0, 20.0]]])
        >>> cam = camera_from_projection(m)
        >>> cam.project(torch.tensor([[[1.0, 1.0, 5.0]]]))  # = M [v; 1]
        tensor([[[12., 18.]]])
    """
    if not isinstance(m, Tensor) or m.ndim != 3 or tuple(m.shape[1:]) != (2, 4):
        raise ValueError(f"projection M must be [B,2,4], got {getattr(m, 'shape', type(m))}")
    a, b = m[:, 0, :3], -m[:, 1, :3]
    na, nb = a.norm(dim=-1).clamp_min(1e-8), b.norm(dim=-1).clamp_min(1e-8)
    r1 = a / na[:, None]
    r2 = b - (r1 * b).sum(-1, keepdim=True) * r1
    r2 = r2 / r2.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    r3 = torch.cross(r1, r2, dim=-1)
    return WeakPerspective((na + nb) / 2, torch.stack((r1, r2, r3), dim=1), m[:, :, 3])


def fit_projection(points3d: Tensor, points2d: Tensor, weights: Tensor | None = None) -> Tensor:
    """Least-squares affine projection ``M [B,2,4]`` with ``M [X; 1] ~ x`` (the pose label of a face whose 3D
    landmarks ``[B,N,3]`` and 2D landmarks ``[B,N,2]`` are known; ``weights [N]`` 0/1 drops points).

    Example:
        >>> x3 = torch.randn(1, 10, 3); m = torch.randn(1, 2, 4)
        >>> x2 = x3 @ m[:, :, :3].transpose(1, 2) + m[:, None, :, 3]
        >>> torch.allclose(fit_projection(x3, x2), m, atol=1e-4)
        True
    """
    if points3d.ndim != 3 or points3d.shape[-1] != 3 or points2d.shape != (*points3d.shape[:2], 2):
        raise ValueError(
            f"fit_projection: expected points3d [B,N,3] and points2d [B,N,2], got {tuple(points3d.shape)}, "
            f"{tuple(points2d.shape)}"
        )
    x = torch.cat((points3d, torch.ones_like(points3d[..., :1])), -1).double()  # [B,N,4]
    y = points2d.double()
    if weights is not None:
        w = weights.to(x)[None, :, None]
        x, y = x * w, y * w
    sol = torch.linalg.lstsq(x, y).solution  # [B,4,2]
    return sol.transpose(1, 2).to(points3d.dtype)


@dataclass
class UVLayout:
    """A morphable model's UV geometry at one UV size: ``uv [V,2]``, the face texels ``mask [1,1,H,W]``, the
    mean shape as a UV position map ``mean [1,3,H,W]`` (mm) and the four part boxes of the local pathway."""

    uv: Tensor
    mask: Tensor
    mean: Tensor
    boxes: tuple[tuple[int, int, int, int], ...]


def uv_layout(model: MorphableModel, uv_size: tuple[int, int], margin: float = 0.25) -> UVLayout:
    """:class:`UVLayout` of ``model`` (its ``uv``; a model without UVs gets the cylindrical unwrap of its
    mean, :func:`facezoo.morphable.uv.cylindrical_uv`).

    Example:
        >>> from facezoo.methods import build_morphable
        >>> lay = uv_layout(build_morphable("procedural:600"), (32, 40))
        >>> lay.mask.shape, lay.mean.shape, len(lay.boxes)
        (torch.Size([1, 1, 32, 40]), torch.Size([1, 3, 32, 40]), 4)
    """
    from facezoo.morphable.uv import cylindrical_uv, uv_part_boxes
    from facezoo.render.uv import render_uv, uv_coverage

    uv = model.uv if model.uv is not None else cylindrical_uv(model.mean)
    uv = uv.detach().float()
    tri = model.triangles
    mask = uv_coverage(uv, tri, uv_size)
    mean = render_uv(model.mean[None].float(), uv, tri, uv_size) * mask
    boxes = uv_part_boxes(uv, model.landmarks68, uv_size, margin=margin)
    return UVLayout(uv=uv, mask=mask, mean=mean, boxes=boxes)


class DetachedCall(nn.Module):
    """Calls ``module`` with its parameters detached: gradients reach the input but not the module's weights
    (the landmark loss of [44, 45] "is only applied on E"). The call runs in the module's mode, so in training
    it sees the same batch statistics as the main forward (and BatchNorm's running averages take the batch a
    second time)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "inner", module)  # not a submodule: no state_dict keys

    def forward(self, *args):
        from torch.func import functional_call

        params = {k: v.detach() for k, v in self.inner.named_parameters()}
        return functional_call(self.inner, params, args)
