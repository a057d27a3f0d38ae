"""Voxelisation of meshes in image space (VRN / MMFace volumes) and the inverse: a volume's surface points.

MMFace (mmface.txt §3.2.1, after VRN, Jackson et al. 2017) supervises its volumetric network with the ground-
truth mesh voxelised in *image space*: ``x, y`` follow the image (a volume column per pixel block), ``z`` is
the posed depth quantised over ``D`` slices, and each column inside the face silhouette is filled from the
visible surface to the back of the volume. A volume here is ``[B,D,H,W]`` (the channel axis of a 2D network's
output is the depth axis, as VRN's), slice ``d = 0`` the farthest from the viewer.

Frame (docs/architecture.md): points are ``(x, y, z)`` with ``x, y`` image pixels (origin top-left, +y down,
pixel centres at +0.5) and ``z`` in pixel units, larger = nearer the viewer (a weak-perspective camera's
``s * (R v)_z``; :func:`image_space_points`). The volume covers ``[0, W_img] x [0, H_img] x [z_min, z_max]``;
voxel ``(d, h, w)`` has its centre at ``((w + 0.5) W_img / W, (h + 0.5) H_img / H, z_min + (d + 0.5) dz)``
with ``dz = (z_max - z_min) / D``. A voxel's occupancy is decided at its centre.

Algorithm (batched, any device, no Python loop over triangles): every triangle's bounding box of column
centres is enumerated in one flat tensor of (triangle, column) pairs, an edge-function test keeps the columns
whose centre is inside the projected triangle, and the depth of the triangle there is interpolated
barycentrically. ``fill="behind"`` (VRN, open face meshes) keeps the nearest depth per column (a z-buffer) and
fills every voxel at or behind it; ``fill="inside"`` (closed meshes) counts, for each voxel, the surface
crossings in front of it and keeps the odd counts (the even-odd point-in-mesh rule along the viewing ray).
Columns exactly on an edge follow a top-left rule evaluated on each edge in one canonical direction, so a
column on an edge shared by two triangles is counted once (the parity stays right).

Example:
    >>> import torch
    >>> tri = torch.tensor([[0, 1, 2], [0, 2, 3]])
    >>> quad = torch.tensor([[[1.0, 1.0, 0.0], [7.0, 1.0, 0.0], [7.0, 7.0, 0.0], [1.0, 7.0, 0.0]]])
    >>> vol = voxelize(quad, tri, (4, 8, 8), image_size=(8, 8), z_range=(-2.0, 2.0))
    >>> vol.shape, int(vol[0, :, 4, 4].sum()), int(vol[0, :, 0, 0].sum())   # 2 of 4 slices behind z = 0
    (torch.Size([1, 4, 8, 8]), 2, 0)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["image_space_points", "voxelize", "volume_surface", "voxel_centres"]


def _pair(name: str, value: Sequence[float] | float, cast=float) -> tuple:
    if isinstance(value, (int, float)):
        return cast(value), cast(value)
    if len(value) != 2:
        raise ValueError(f"{name}: expected 2 values, got {value!r}")
    return cast(value[0]), cast(value[1])


def image_space_points(camera, vertices: Tensor, z_origin: Tensor | None = None) -> Tensor:
    """Posed vertices ``[B,V,3]`` in the voxel frame of a :class:`~facezoo.geometry.WeakPerspective` camera:
    ``(px, py)`` = ``camera.project(vertices)``, ``z = s (R v)_z - z_origin`` (pixel units, +z toward the
    viewer).

    Args:
        camera: a ``WeakPerspective`` (batch 1 or B).
        vertices: ``[B,V,3]`` model-space mm.
        z_origin: ``[B]`` pixel depth subtracted from z (``None``: 0, the model origin's depth).

    Example:
        >>> from facezoo.geometry import WeakPerspective
        >>> cam = WeakPerspective(torch.tensor([2.0]), torch.eye(3)[None], torch.tensor([[32.0, 32.0]]))
        >>> image_space_points(cam, torch.tensor([[[10.0, 5.0, 3.0]]]))
        tensor([[[52., 22.,  6.]]])
    """
    w = camera.view(vertices)
    xy = camera._pixels(w)
    z = camera.scale[:, None] * w[..., 2]
    if z_origin is not None:
        z = z - z_origin.to(z)[:, None]
    return torch.cat((xy, z[..., None]), dim=-1)


def voxel_centres(
    volume_shape: Sequence[int], image_size: Sequence[int], z_range: Sequence[float], device=None, dtype=None
) -> tuple[Tensor, Tensor, Tensor]:
    """Voxel-centre coordinates along each axis: ``z [D]``, ``y [H]``, ``x [W]`` (frame: module docstring).

    Example:
        >>> z, y, x = voxel_centres((2, 2, 4), (4, 8), (-1.0, 1.0))
        >>> z.tolist(), y.tolist(), x.tolist()
        ([-0.5, 0.5], [1.0, 3.0], [1.0, 3.0, 5.0, 7.0])
    """
    d, h, w = (int(n) for n in volume_shape)
    hi, wi = _pair("image_size", image_size)
    z0, z1 = _pair("z_range", z_range)
    kw = {"device": device, "dtype": dtype or torch.get_default_dtype()}
    dz = (z1 - z0) / d
    return (
        z0 + (torch.arange(d, **kw) + 0.5) * dz,
        (torch.arange(h, **kw) + 0.5) * (hi / h),
        (torch.arange(w, **kw) + 0.5) * (wi / w),
    )


def _check(points: Tensor, triangles: Tensor, volume_shape, z_range) -> None:
    if not isinstance(points, Tensor) or not points.is_floating_point():
        raise TypeError(f"points: expected a floating-point torch.Tensor, got {type(points).__name__}")
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points: expected [B,V,3], got {tuple(points.shape)}")
    if not isinstance(triangles, Tensor) or triangles.ndim != 2 or triangles.shape[-1] != 3:
        raise ValueError(
            f"triangles: expected an integer tensor [T,3], got {getattr(triangles, 'shape', None)}"
        )
    if triangles.is_floating_point():
        raise TypeError(f"triangles: expected an integer dtype, got {triangles.dtype}")
    if triangles.numel() and (int(triangles.min()) < 0 or int(triangles.max()) >= points.shape[1]):
        raise ValueError(f"triangles: indices must lie in [0, {points.shape[1]}), got "
                         f"[{int(triangles.min())}, {int(triangles.max())}]")  # fmt: skip
    if len(volume_shape) != 3 or min(int(n) for n in volume_shape) < 1:
        raise ValueError(f"volume_shape: expected (D, H, W) >= 1, got {tuple(volume_shape)}")
    z0, z1 = _pair("z_range", z_range)
    if not z1 > z0:
        raise ValueError(f"z_range: expected (z_min, z_max) with z_max > z_min, got {tuple(z_range)}")


def _top_left(d: Tensor) -> Tensor:
    """The tie rule of a directed edge ``d [...,2]``: complementary for ``d`` and ``-d`` (d != 0)."""
    return (d[..., 1] > 0) | ((d[..., 1] == 0) & (d[..., 0] < 0))


def _crossings(points: Tensor, triangles: Tensor, grid: tuple[int, int], image_size) -> tuple[Tensor, ...]:
    """Every (triangle, column) pair whose column centre lies in the projected triangle: flat tensors of the
    batch index, the column index ``h * W + w`` and the triangle's depth there."""
    h_cols, w_cols = grid
    hi, wi = image_size
    b, _, _ = points.shape
    p = points.double()
    # grid coordinates: column (h, w) centre at integer (w, h)
    g = torch.stack((p[..., 0] * (w_cols / wi) - 0.5, p[..., 1] * (h_cols / hi) - 0.5), dim=-1)
    tri = triangles.long()
    corners = g[:, tri]  # [B,T,3,2]
    depth = p[..., 2][:, tri]  # [B,T,3]
    lo = corners.amin(dim=2).ceil()
    hi_ = corners.amax(dim=2).floor()
    w0 = lo[..., 0].clamp(0, w_cols - 1)
    w1 = hi_[..., 0].clamp(max=w_cols - 1)
    h0 = lo[..., 1].clamp(0, h_cols - 1)
    h1 = hi_[..., 1].clamp(max=h_cols - 1)
    nw = (w1 - w0 + 1).clamp_min(0)
    nh = (h1 - h0 + 1).clamp_min(0)
    finite = torch.isfinite(corners).all(-1).all(-1) & torch.isfinite(depth).all(-1)
    count = torch.where(finite, nw * nh, torch.zeros_like(nw)).long().flatten()  # [B*T]
    pair_tri = torch.repeat_interleave(torch.arange(count.numel(), device=p.device), count)
    start = torch.cumsum(count, 0) - count
    k = torch.arange(pair_tri.numel(), device=p.device) - start[pair_tri]
    nw_f = nw.long().flatten()[pair_tri]
    col_w = w0.long().flatten()[pair_tri] + k % nw_f.clamp_min(1)
    col_h = h0.long().flatten()[pair_tri] + k // nw_f.clamp_min(1)
    q = torch.stack((col_w, col_h), -1).double()  # [P,2]
    c = corners.reshape(-1, 3, 2)[pair_tri]  # [P,3,2]
    ids = tri.repeat(b, 1)[pair_tri]  # [P,3] vertex ids, for the canonical edge direction

    # edge function of the edge opposite vertex i, evaluated with the edge in canonical direction (lower
    # vertex id first) so that two triangles sharing it compute bit-identical values of opposite sign
    def edge(i: int, j: int) -> tuple[Tensor, Tensor]:
        swap = ids[:, i] > ids[:, j]
        a = torch.where(swap[:, None], c[:, j], c[:, i])
        e = torch.where(swap[:, None], c[:, i], c[:, j])
        d = e - a
        val = d[:, 0] * (q[:, 1] - a[:, 1]) - d[:, 1] * (q[:, 0] - a[:, 0])
        sign = torch.where(swap, -1.0, 1.0).to(val)
        return val * sign, torch.where(swap, ~_top_left(d), _top_left(d))

    e0, t0 = edge(1, 2)  # opposite vertex 0
    e1, t1 = edge(2, 0)
    e2, t2 = edge(0, 1)
    area = e0 + e1 + e2
    orient = torch.where(area < 0, -1.0, 1.0).to(area)
    e0, e1, e2 = e0 * orient, e1 * orient, e2 * orient
    flip = area < 0  # a reversed triangle reverses its edges: the tie rule flips with them
    t0, t1, t2 = (t ^ flip for t in (t0, t1, t2))
    inside = (area != 0) & ((e0 > 0) | ((e0 == 0) & t0)) & ((e1 > 0) | ((e1 == 0) & t1))
    inside &= (e2 > 0) | ((e2 == 0) & t2)
    bary = torch.stack((e0, e1, e2), -1)[inside] / (area * orient)[inside, None]
    z = (bary * depth.reshape(-1, 3)[pair_tri[inside]]).sum(-1)
    batch = pair_tri[inside] // tri.shape[0]
    column = col_h[inside] * w_cols + col_w[inside]
    return batch, column, z


def voxelize(
    points: Tensor,
    triangles: Tensor,
    volume_shape: Sequence[int],
    image_size: Sequence[int] | int,
    z_range: Sequence[float],
    fill: str = "behind",
) -> Tensor:
    """Occupancy volumes ``[B,D,H,W]`` (float 0/1, on the points' device) of image-space meshes.

    Args:
        points: ``[B,V,3]`` vertices in the voxel frame (``x, y`` pixels, ``z`` pixel units toward the viewer;
            :func:`image_space_points`). Triangles with a non-finite vertex are skipped.
        triangles: ``[T,3]`` integer vertex indices.
        volume_shape: ``(D, H, W)``: depth slices and columns (the resolution; MMFace uses 64, 128, 192).
        image_size: ``(H_img, W_img)`` (or one int) pixels covered by the columns.
        z_range: ``(z_min, z_max)`` depth covered by the slices; surfaces beyond it are clamped to it
            (``"behind"``: a surface nearer than ``z_max`` fills the whole column).
        fill: ``"behind"``: every voxel at or behind the nearest surface of its column (VRN's filling of an
            open face mesh); ``"inside"``: voxels with an odd number of surface crossings in front of them
            (point-in-mesh for closed meshes).

    Returns:
        ``[B,D,H,W]`` float occupancy, slice ``d = 0`` the farthest from the viewer.
    """
    _check(points, triangles, volume_shape, z_range)
    if fill not in ("behind", "inside"):
        raise ValueError(f"fill: expected 'behind' or 'inside', got {fill!r}")
    d_n, h_n, w_n = (int(n) for n in volume_shape)
    image_size = _pair("image_size", image_size)
    z0, z1 = _pair("z_range", z_range)
    b = points.shape[0]
    batch, column, z = _crossings(points, triangles, (h_n, w_n), image_size)
    dz = (z1 - z0) / d_n
    # k = number of voxel centres strictly behind the crossing (z_d < z), in [0, D]
    k = torch.ceil((z - z0) / dz - 0.5).clamp(0, d_n).long()
    if fill == "behind":
        top = torch.full((b * h_n * w_n,), -1, dtype=torch.long, device=points.device)
        # the nearest surface fills voxels with z_d <= z: index k' of the last such voxel + 1
        k_le = torch.floor((z - z0) / dz - 0.5).clamp(-1, d_n - 1).long() + 1
        top.scatter_reduce_(0, batch * h_n * w_n + column, k_le, reduce="amax")
        depth_idx = torch.arange(d_n, device=points.device)
        occ = depth_idx[None, :, None] < top.view(b, 1, h_n * w_n)
        return occ.view(b, d_n, h_n, w_n).to(points.dtype)
    counts = torch.zeros(b, d_n + 1, h_n * w_n, dtype=torch.int32, device=points.device)
    counts.view(-1).index_add_(
        0, (batch * (d_n + 1) + k) * (h_n * w_n) + column, torch.ones_like(k, dtype=torch.int32)
    )
    # crossings in front of voxel d: those with k > d (suffix sums over k)
    front = counts.flip(1).cumsum(1).flip(1)[:, 1:]
    return (front % 2 == 1).view(b, d_n, h_n, w_n).to(points.dtype)


def volume_surface(
    volume: Tensor,
    image_size: Sequence[int] | int,
    z_range: Sequence[float],
    threshold: float = 0.5,
) -> list[Tensor]:
    """The visible surface of each occupancy volume as points ``[N_b,3]`` in the voxel frame.

    For every column with a voxel above ``threshold``, the surface is where the occupancy of the nearest such
    voxel and of the voxel in front of it crosses ``threshold`` (linear interpolation between the two centres;
    a binary volume gives the boundary between them; a column full to the front gives ``z_max``). This is
    what MMFace's ICP aligns the mesh to (§3.2.3).

    Args:
        volume: ``[B,D,H,W]`` occupancy probabilities (e.g. ``sigmoid`` of the VMN logits).
        image_size, z_range: the frame of :func:`voxelize`.
        threshold: iso-level.

    Returns:
        A list of ``B`` tensors ``[N_b,3]`` (``x, y`` pixels, ``z`` pixel units), on the volume's device.

    Example:
        >>> vol = torch.zeros(1, 4, 2, 2); vol[0, :3, 0, 1] = 1.0
        >>> volume_surface(vol, (2, 2), (0.0, 4.0))[0]
        tensor([[1.5000, 0.5000, 3.0000]])
    """
    if not isinstance(volume, Tensor) or volume.ndim != 4 or not volume.is_floating_point():
        raise ValueError(f"volume: expected a float tensor [B,D,H,W], got {getattr(volume, 'shape', volume)}")
    b, d_n, h_n, w_n = volume.shape
    zc, yc, xc = voxel_centres((d_n, h_n, w_n), _pair("image_size", image_size), z_range, volume.device,
                               volume.dtype)  # fmt: skip
    dz = (
        float(zc[1] - zc[0])
        if d_n > 1
        else float(_pair("z_range", z_range)[1] - _pair("z_range", z_range)[0])
    )
    above = volume > threshold  # [B,D,H,W]
    has = above.any(dim=1)  # [B,H,W]
    idx = torch.arange(d_n, device=volume.device)[None, :, None, None]
    top = torch.where(above, idx, -1).amax(dim=1)  # nearest occupied slice
    p_top = volume.gather(1, top.clamp_min(0)[:, None]).squeeze(1)
    nxt = (top + 1).clamp(max=d_n - 1)
    p_next = torch.where(top + 1 < d_n, volume.gather(1, nxt[:, None]).squeeze(1), torch.zeros_like(p_top))
    frac = ((p_top - threshold) / (p_top - p_next).clamp_min(1e-12)).clamp(0.0, 1.0)
    z = zc[top.clamp_min(0)] + frac * dz
    z = torch.where(top == d_n - 1, torch.full_like(z, zc[-1] + 0.5 * dz), z)
    yy, xx = torch.meshgrid(yc, xc, indexing="ij")
    out = []
    for i in range(b):
        m = has[i]
        out.append(torch.stack((xx[m], yy[m], z[i][m]), dim=-1))
    return out
