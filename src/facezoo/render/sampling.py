"""Image <-> mesh texture sampling (MVF-Net's cross-view photometric consistency)."""

from __future__ import annotations

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
