"""Image <-> mesh texture sampling (MVF-Net's cross-view photometric consistency)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from facezoo.render._checks import check_tensor


def sample_image(image: torch.Tensor, points: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Bilinearly sample an image at pixel positions.

    Args:
        image: ``[B,C,H,W]``.
        points: ``[B,N,2]`` pixel coordinates (x right, y down; pixel (c, r) has its centre at (c+0.5,
            r+0.5)).
        padding_mode: ``grid_sample``'s, for points outside the image.

    Returns:
        ``[B,N,C]``, differentiable w.r.t. ``image`` and ``points``.

    Example:
        >>> img = torch.arange(4.0).view(1, 1, 2, 2)
        >>> sample_image(img, torch.tensor([[[0.5, 0.5], [1.0, 1.0]]]))[0, :, 0]
        tensor([0.0000, 1.5000])
    """
    image = check_tensor("image", image, ndim=4)
    points = check_tensor("points", points, ndim=3, last=2, device=image.device)
    if points.shape[0] != image.shape[0]:
        raise ValueError(f"points batch {points.shape[0]} does not match image batch {image.shape[0]}")
    h, w = image.shape[-2:]
    grid = torch.stack((2 * points[..., 0] / w - 1, 2 * points[..., 1] / h - 1), -1)[:, None].to(image.dtype)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return out[:, :, 0].transpose(1, 2)


def transfer_texture(
    image_a: torch.Tensor,
    vertices: torch.Tensor,
    triangles: torch.Tensor,
    camera_a,
    camera_b,
    renderer,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Texture a mesh from view A and render it into view B (MVF-Net's view-consistency warp).

    Vertex colours are sampled from ``image_a`` at the vertices' projections in A; B's render is valid where
    B sees the mesh and all three vertices of the pixel's triangle are visible in A.

    Args:
        image_a: ``[B,3,H,W]`` the source view.
        vertices: ``[B,V,3]`` model-space vertices (mm); triangles ``[T,3]``.
        camera_a, camera_b: facezoo cameras (``project``, ``to_clip``, ``view``).
        renderer: a :class:`~facezoo.render.MeshRenderer` with the image size of both views.

    Returns:
        ``(image_b [B,3,H,W], mask [B,1,H,W])``: the warped image (differentiable w.r.t. ``image_a``,
        ``vertices``) and a 0/1 float mask of the pixels visible in both views.
    """
    image_a = check_tensor("image_a", image_a, ndim=4, last=None)
    out_a = renderer(vertices, triangles, camera_a, colors=torch.zeros_like(vertices))
    colors = sample_image(image_a, camera_a.project(vertices))  # [B,V,3]
    vis_a = out_a.visible.to(colors.dtype)[..., None]
    out_b = renderer(vertices, triangles, camera_b, colors=torch.cat((colors, vis_a), -1), antialias=False)
    seen = (out_b.image[:, 3:4] > 1 - 1e-4) & (out_b.mask > 0.5)
    return out_b.image[:, :3], seen.to(colors.dtype)


def sample_vertex_colours(
    image: torch.Tensor, vertices: torch.Tensor, triangles: torch.Tensor, camera, renderer
) -> tuple[torch.Tensor, torch.Tensor]:
    """MVF-Net §3.4's texture sampling: per-vertex colours fetched from ``image`` at the vertices'
    projections (bilinear, as a Spatial Transformer; differentiable in the image, the vertices and the
    camera), and which vertices the view actually sees (the sampling ignores occlusion, so colours of hidden
    vertices are wrong and must be masked).

    Args:
        image: ``[B,C,H,W]`` the view's image.
        vertices: ``[B,V,3]`` model-space mesh (mm); triangles ``[T,3]``.
        camera: the view's facezoo camera (``project``).
        renderer: a :class:`~facezoo.render.MeshRenderer` of the image's size (z-buffer visibility).

    Returns:
        ``(colours [B,V,C], visible [B,V] float 0/1)``; ``visible`` has no gradient.

    Example:
        >>> from facezoo.geometry.cameras import WeakPerspective
        >>> from facezoo.render import MeshRenderer
        >>> cam = WeakPerspective(torch.tensor([10.0]), torch.eye(3)[None], torch.tensor([[16.0, 16.0]]))
        >>> v = torch.tensor([[[-1.0, -1, 0], [1, -1, 0], [0, 1, 0]]])
        >>> img = torch.linspace(0, 1, 32).expand(1, 3, 32, 32)     # brighter to the right
        >>> col, vis = sample_vertex_colours(img, v, torch.tensor([[0, 1, 2]]), cam, MeshRenderer(32))
        >>> bool(col[0, 1, 0] > col[0, 0, 0]), tuple(vis.shape)
        (True, (1, 3))
    """
    image = check_tensor("image", image, ndim=4, last=None)
    colours = sample_image(image, camera.project(vertices))
    with torch.no_grad():
        out = renderer(vertices.detach(), triangles, camera.detach(), antialias=False)
    return colours, out.visible.to(colours.dtype)


class Projection(NamedTuple):
    """:func:`render_projection`'s result (all ``[B,*,H,W]``, top-row-first)."""

    image: torch.Tensor  #: the projection ``[B,C,H,W]``, antialiased over the background
    seen: torch.Tensor  #: 0/1 ``[B,1,H,W]``: covered in B and the triangle seen in A (no gradient)
    soft: torch.Tensor  #: ``seen``'s antialiased twin (differentiable in the vertices at silhouettes)
    coverage: torch.Tensor  #: 0/1 ``[B,1,H,W]``: the mesh's coverage of B (no gradient)


def render_projection(
    colours: torch.Tensor,
    visible: torch.Tensor,
    vertices: torch.Tensor,
    triangles: torch.Tensor,
    camera_b,
    renderer,
    background: float = 0.0,
) -> Projection:
    """MVF-Net §3.5's rendered projection ``I_{A->B}`` (Eq. 4): the mesh textured from view A (its sampled
    ``colours`` and ``visible`` flags) rasterised in view B, barycentric inside triangles.

    Args:
        colours: ``[B,V,C]`` vertex colours sampled in A; visible: ``[B,V]`` A's vertex visibility (0/1).
        vertices: ``[B,V,3]``; triangles ``[T,3]``; camera_b: view B's camera; renderer: B's image size.
        background: colour where the mesh does not cover B.

    Returns:
        :class:`Projection` ``(image, seen, soft, coverage)``: the projection (antialiased over the
        background, so silhouettes get gradients), the 0/1 mask of pixels covered in B whose triangle is
        seen in A, its antialiased twin (the interpolated visibility flag) and B's coverage.
    """
    vis = visible.to(colours.dtype)[..., None].detach()
    out = renderer(vertices, triangles, camera_b, colors=torch.cat((colours, vis), -1), background=background)
    cov = (out.triangle_id >= 0)[:, None]
    # all three vertices seen in A: the interpolated flag is 1 only then (the rast coverage, not antialias)
    seen = cov & (out.image[:, -1:].detach() > 1 - 1e-4)
    dtype = colours.dtype
    return Projection(out.image[:, :-1], seen.to(dtype), out.image[:, -1:], cov.to(dtype))
