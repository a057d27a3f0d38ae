"""The moving jaw contour: which model vertices the jaw landmarks (iBUG 1-8, 10-17) see in a given pose.

An annotator marks the jaw where the face's outline is *in the image*: on a turned face the far side's
points lie on the occluding contour (the cheek), not on a fixed jaw vertex, and a model without jaw vertices
(the SFM has none: ``landmark_valid`` is False there) has nothing fixed to offer anyway. As eos
(``fitting/contour_correspondence.hpp``, Huber et al. VISAPP 2016) and 3DDFA's landmark marching (Zhu et
al. CVPR 2015) do, each contour landmark is matched, at every iteration, to a model vertex chosen in the
current pose:

1. :func:`contour_lines` (once per model, from the mean shape): horizontal "parallels" of candidate vertices
   on each side of the face (subject's right = model -x for iBUG 1-8, left for 10-17), ``n_lines`` heights
   evenly from a little above the outer eye corners (iBUG 37 / 46) down to the chin (iBUG 9), each a band
   of vertices within one line spacing of its height, in front of the jaw's rearmost landmark (so that ears
   and the back of a head model never count).
2. :func:`silhouette` (per pose): on each parallel, the vertex that projects farthest outwards along the
   projected model x axis: the face's outline at that height, on the visible side and on the occluded
   (self-occluding cheek) side alike.
3. :func:`assign_contour`: each 2D contour landmark takes the silhouette vertex of its side whose projection
   is nearest to it (eos's nearest-neighbour correspondence), so the points may slide along the outline.

Where the paper-of-record is silent (our choices): the parallels' number (32) and band (one spacing), the
top height (10 % of the eye-to-chin height above the eye corners), and the depth cut (10 % of the face
width behind the rearmost jaw landmark of the mean shape).

Example:
    >>> from facezoo.methods.base import build_morphable
    >>> lines = contour_lines(build_morphable("procedural:1000"), n_lines=8)
    >>> lines.index.shape[:2], bool(lines.mask.any(-1).all())
    (torch.Size([2, 8]), True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from facezoo.fitting.targets import CHIN, JAW
from facezoo.morphable import MorphableModel

__all__ = ["ContourLines", "contour_lines", "silhouette", "assign_contour"]


@dataclass
class ContourLines:
    """Candidate vertices per side and height: ``index [2,N,M]`` (0-padded), ``mask [2,N,M]``; side 0 is the
    subject's right (model -x, iBUG 1-8), side 1 the left (iBUG 10-17)."""

    index: Tensor
    mask: Tensor


def contour_lines(
    model: MorphableModel, n_lines: int = 32, depth_margin: float = 0.1, top: float = 0.1
) -> ContourLines:
    """The parallels of candidate contour vertices of ``model``'s mean shape (module docstring)."""
    mean = model.mean.detach().double().cpu()
    lm = model.landmarks68.cpu()
    eye_y = mean[lm[[36, 45]], 1].mean()
    chin = mean[lm[CHIN]]
    span = float(eye_y - chin[1])
    if span <= 0:
        raise ValueError(
            f"contour_lines: model {model.name!r} has its eye corners below the chin (+y must be up)"
        )
    jaw = mean[lm[list(JAW)]]
    width = float(jaw[:, 0].max() - jaw[:, 0].min())
    z_cut = float(jaw[:, 2].min()) - depth_margin * max(width, 1e-6)
    heights = torch.linspace(float(eye_y) + top * span, float(chin[1]), n_lines, dtype=torch.float64)
    band = span * (1 + top) / max(n_lines - 1, 1)
    x, y, z = mean.unbind(-1)
    side_eps = 0.02 * max(width, 1e-6)
    lines: list[list[Tensor]] = []
    for sign in (-1.0, 1.0):
        side = (sign * x > side_eps) & (z >= z_cut)
        lines.append([torch.nonzero(side & ((y - h).abs() <= band)).flatten() for h in heights])
    m = max(1, max(len(c) for side in lines for c in side))
    index = torch.zeros(2, n_lines, m, dtype=torch.long)
    mask = torch.zeros(2, n_lines, m, dtype=torch.bool)
    for s, side in enumerate(lines):
        for j, cand in enumerate(side):
            index[s, j, : len(cand)] = cand
            mask[s, j, : len(cand)] = True
    if not bool(mask.any(-1).any(-1).all()):
        raise ValueError(f"contour_lines: model {model.name!r} has no vertices on one side of the jaw")
    return ContourLines(index=index.to(model.mean.device), mask=mask.to(model.mean.device))


def silhouette(
    lines: ContourLines, vertices: Tensor, project: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """The outline vertices ``[B,2,N]`` (``-1`` where a parallel is empty) and their projections
    ``[B,2,N,2]`` for ``vertices [B,V,3]`` seen through ``project([B,P,3]) -> [B,P,2]``.

    Outwards is the projected model x axis (towards -x on side 0, +x on side 1), measured from the
    projection of the vertices' centroid, so roll and yaw of the camera are both accounted for.
    """
    b = vertices.shape[0]
    s, n, m = lines.index.shape
    cand = vertices[:, lines.index.reshape(-1)]  # [B,S*N*M,3]
    centre = vertices.mean(1, keepdim=True)
    axis_pts = torch.cat((centre, centre + centre.new_tensor([1.0, 0.0, 0.0])), 1)
    both = project(torch.cat((cand, axis_pts), 1))
    proj, (c0, c1) = both[:, :-2].reshape(b, s, n, m, 2), both[:, -2:].unbind(1)
    axis = torch.nn.functional.normalize(c1 - c0, dim=-1)  # [B,2]
    sign = proj.new_tensor([-1.0, 1.0]).view(1, s, 1, 1)
    score = ((proj - c0[:, None, None, None]) * axis[:, None, None, None]).sum(-1) * sign
    score = score.masked_fill(~lines.mask, float("-inf"))
    best = score.argmax(-1)  # [B,S,N]
    idx = torch.gather(lines.index.expand(b, s, n, m), 3, best[..., None])[..., 0]
    pts = torch.gather(proj, 3, best[..., None, None].expand(b, s, n, 1, 2))[..., 0, :]
    empty = ~lines.mask.any(-1).expand(b, s, n)
    return idx.masked_fill(empty, -1), pts


def assign_contour(sil_index: Tensor, sil_points: Tensor, targets: Tensor, sides: Tensor) -> Tensor:
    """For each target ``[B,L,2]`` on side ``sides [L]`` (0 or 1), the silhouette vertex ``[B,L]`` of that
    side whose projection is nearest (eos's nearest-neighbour contour correspondence).

    Example:
        >>> idx = torch.tensor([[[10, 11], [20, 21]]])                     # [B=1, 2 sides, N=2]
        >>> pts = torch.tensor([[[[0.0, 0.0], [0.0, 5.0]], [[9.0, 0.0], [9.0, 5.0]]]])
        >>> assign_contour(idx, pts, torch.tensor([[[0.5, 4.0], [8.0, 1.0]]]), torch.tensor([0, 1]))
        tensor([[11, 20]])
    """
    b = targets.shape[0]
    pts = sil_points[:, sides]  # [B,L,N,2]
    d = (pts - targets[:, :, None]).square().sum(-1)
    d = d.masked_fill(sil_index[:, sides] < 0, float("inf"))
    nearest = d.argmin(-1)  # [B,L]
    return torch.gather(sil_index[:, sides], 2, nearest[..., None])[..., 0].reshape(b, -1)
