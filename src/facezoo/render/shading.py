"""Spherical-harmonics (3 bands, 9 coefficients) Lambertian shading, exactly as Deep3DFace computes it.

Deep3DFace (Deng et al. 2019, Sec. 3: ``C(n, t | gamma) = t * sum_b gamma_b Phi_b(n)``, B = 3 bands) and its
code (``ParametricFaceModel.compute_color``) use the real SH basis in the order
``Y00, Y1-1, Y10, Y11, Y2-2, Y2-1, Y20, Y21, Y22`` with Condon-Shortley signs; precisely

    Phi = ( a0 c0,  -a1 c1 y,  a1 c1 z,  -a1 c1 x,  a2 c2 xy,  -a2 c2 yz,  a2 c2 (3z^2-1) / (2 sqrt 3),
            -a2 c2 xz,  a2 c2 (x^2 - y^2) / 2 )

with ``c0 = 1/sqrt(4 pi)``, ``c1 = sqrt(3)/sqrt(4 pi)``, ``c2 = 3 sqrt(5)/sqrt(12 pi)`` (so ``c_l * (...)`` is
the orthonormal real SH) and per-band factors ``a0 = pi``, ``a1 = 2 pi / sqrt(3)``, ``a2 = 2 pi / sqrt(8)``.
Note that these ``a_l`` are Deep3DFace's, not Ramamoorthi & Hanrahan's Lambertian kernel ``(pi, 2 pi/3,
pi/4)``; the difference only rescales the (learned) coefficients per band, and we keep Deep3DFace's so that
its coefficients transfer unchanged. Normals are in view space (Deep3DFace rotates them by the pose; +z toward
the camera in both its frame and facezoo's).

Coefficients: ``[B,9]`` (monochrome; the paper's gamma in R^9), ``[B,27]`` (RGB, channel-major = Deep3DFace's
``gamma.reshape(B, 3, 9)``) or ``[B,3,9]``. Deep3DFace adds an "initial ambient" 0.8 to the first coefficient
of every channel (``init_lit``) so that a zero network output is a plain, lit face: ``ambient`` does the same
(default 0; pass :data:`DEEP3D_AMBIENT` to reproduce their model).
"""

from __future__ import annotations

import math

import torch

__all__ = ["SH_A", "SH_C", "DEEP3D_AMBIENT", "sh_basis", "sh_coefficients", "sh_shade", "shade_vertices"]

#: Deep3DFace's per-band factors a_l.
SH_A = (math.pi, 2.0 * math.pi / math.sqrt(3.0), 2.0 * math.pi / math.sqrt(8.0))
#: Normalisation constants of the real SH per band.
SH_C = (
    1.0 / math.sqrt(4.0 * math.pi),
    math.sqrt(3.0) / math.sqrt(4.0 * math.pi),
    3.0 * math.sqrt(5.0) / math.sqrt(12.0 * math.pi),
)
#: Deep3DFace's initial ambient light added to the first coefficient of each colour channel.
DEEP3D_AMBIENT = 0.8


def sh_basis(normals: torch.Tensor, irradiance: bool = True) -> torch.Tensor:
    """The 9 SH basis values ``[..., 9]`` of unit ``normals [..., 3]`` (not renormalised here).

    ``irradiance=True`` gives Deep3DFace's ``Phi`` (with the ``a_l`` factors); ``False`` gives the plain
    orthonormal real SH ``Y_lm`` in the same order and signs (``integral Y_i Y_j dw = delta_ij``).

    Example:
        >>> sh_basis(torch.tensor([0.0, 0.0, 1.0]), irradiance=False)[2]  # Y10 at the pole = sqrt(3/(4 pi))
        tensor(0.4886)
    """
    if not isinstance(normals, torch.Tensor) or not normals.is_floating_point() or normals.shape[-1:] != (3,):
        raise ValueError(
            f"normals must be a floating-point tensor [..., 3], got {getattr(normals, 'shape', normals)}"
        )
    a = SH_A if irradiance else (1.0, 1.0, 1.0)
    k0, k1, k2 = a[0] * SH_C[0], a[1] * SH_C[1], a[2] * SH_C[2]
    x, y, z = normals.unbind(-1)
    return torch.stack(
        (
            torch.full_like(x, k0),
            -k1 * y,
            k1 * z,
            -k1 * x,
            k2 * x * y,
            -k2 * y * z,
            0.5 * k2 / math.sqrt(3.0) * (3.0 * z * z - 1.0),
            -k2 * x * z,
            0.5 * k2 * (x * x - y * y),
        ),
        dim=-1,
    )


def sh_coefficients(coeffs: torch.Tensor, batch: int, name: str = "coeffs") -> torch.Tensor:
    """``[B,9] | [B,27] | [B,3,9]`` SH coefficients -> ``[B,3,9]`` (channel-major); errors name the argument
    as ``name`` (the caller's name for it, e.g. ``"lighting"`` in :class:`~facezoo.render.MeshRenderer`).

    Example:
        >>> sh_coefficients(torch.zeros(2, 27), 2).shape
        torch.Size([2, 3, 9])
    """
    if not isinstance(coeffs, torch.Tensor) or not coeffs.is_floating_point():
        got = f"{coeffs.dtype} tensor" if isinstance(coeffs, torch.Tensor) else type(coeffs).__name__
        raise TypeError(f"{name} must be a floating-point torch.Tensor [B,9], [B,27] or [B,3,9], got {got}")
    if coeffs.ndim == 2 and coeffs.shape[1] == 9:
        g = coeffs[:, None, :].expand(-1, 3, -1)
    elif coeffs.ndim == 2 and coeffs.shape[1] == 27:
        g = coeffs.reshape(-1, 3, 9)
    elif coeffs.ndim == 3 and tuple(coeffs.shape[1:]) == (3, 9):
        g = coeffs
    else:
        raise ValueError(f"{name} must be [B,9], [B,27] or [B,3,9], got shape {tuple(coeffs.shape)}")
    if g.shape[0] != batch:
        raise ValueError(f"{name} has batch size {g.shape[0]} but the normals/vertices have {batch}")
    return g


def sh_shade(
    albedo: torch.Tensor, normals: torch.Tensor, coeffs: torch.Tensor, ambient: float = 0.0
) -> torch.Tensor:
    """Lambertian SH shading ``albedo * (Phi(n) . gamma_c)`` per colour channel: ``[B,...,3]``.

    Args:
        albedo: ``[B,...,3]`` linear RGB reflectance (anything broadcastable against the result).
        normals: ``[B,...,3]`` unit view-space normals (per vertex or per pixel).
        coeffs: ``[B,9]``, ``[B,27]`` or ``[B,3,9]`` SH coefficients (see the module docstring).
        ambient: added to the first coefficient of every channel (Deep3DFace: :data:`DEEP3D_AMBIENT`).

    Example:
        >>> n = torch.tensor([[[0.0, 0.0, 1.0]]]); rho = torch.full((1, 1, 3), 0.5)
        >>> sh_shade(rho, n, torch.zeros(1, 27), ambient=0.8)  # 0.5 * 0.8 * pi / sqrt(4 pi)
        tensor([[[0.3545, 0.3545, 0.3545]]])
    """
    if normals.ndim < 2:
        raise ValueError(f"normals must be [B,...,3], got {tuple(normals.shape)}")
    g = sh_coefficients(coeffs, normals.shape[0]).to(normals.dtype)
    if ambient:
        g = g + g.new_tensor([ambient] + [0.0] * 8)
    y = sh_basis(normals)  # [B,...,9]
    b = normals.shape[0]
    light = (y.reshape(b, -1, 9) @ g.transpose(1, 2)).reshape(*normals.shape[:-1], 3)
    return albedo * light


def shade_vertices(
    view_vertices: torch.Tensor,
    triangles: torch.Tensor,
    albedo: torch.Tensor,
    coeffs: torch.Tensor,
    normals: str = "unit",
    ambient: float = 0.0,
) -> torch.Tensor:
    """Per-vertex SH shading ``[B,V,3]`` (the official Deep3DFace ``compute_color``): shade each vertex with
    its view-space normal, then let the renderer interpolate the colours (``lighting=None``). The renderer's
    own path shades per pixel with the interpolated, renormalised normal; the two agree on a fine
    mesh and differ at the scale of a triangle.

    Args:
        view_vertices: ``[B,V,3]`` vertices in view space (or any frame rotated like it: normals only).
        triangles: ``[T,3]``.
        albedo: ``[B,V,3]``.
        coeffs: SH coefficients as :func:`sh_shade`.
        normals: ``"unit"`` (sum of unit triangle normals, official) or ``"area"``
            (:func:`facezoo.geometry.mesh.vertex_normals`).
        ambient: as :func:`sh_shade`.

    Example:
        >>> v = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
        >>> rho, light = torch.ones(1, 3, 3), torch.zeros(1, 27)
        >>> shade_vertices(v, torch.tensor([[0, 1, 2]]), rho, light, ambient=0.8)[0, 0]
        tensor([0.7090, 0.7090, 0.7090])
    """
    from facezoo.geometry.mesh import vertex_normals

    return sh_shade(albedo, vertex_normals(view_vertices, triangles, weighting=normals), coeffs, ambient)
