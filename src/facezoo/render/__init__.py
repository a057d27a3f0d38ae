"""Differentiable rendering: rasterize / interpolate / antialias (nvdiffrast's contract, swappable backends),
SH shading, the MeshRenderer, UV maps and image <-> mesh texture sampling.

**The backend boundary.** A backend (:mod:`facezoo.render.backends`) implements nvdiffrast's rasterization
contract and nothing else: ``rasterize(pos_clip [B,V,4], tri [T,3], (H, W)) -> rast [B,H,W,4]`` = (u, v, z/w,
triangle id + 1), top-row-first, zeros where empty, (u, v, z/w) differentiable in ``pos_clip``. ``"builtin"``
(facezoo's own, CPU and CUDA, the default and the one CI tests) and ``"nvdiffrast"`` (optional, CUDA) are
registered; ``"auto"`` picks nvdiffrast on CUDA when importable, else builtin. Both take float32 and float64
positions and return rast in their dtype. :func:`interpolate` and :func:`antialias` read only that rast
contract, so facezoo's implementations of them serve every backend; the other stages (vertex normals, SH
shading, the fused per-pixel stage, visibility) belong to :class:`MeshRenderer` and own their kernels
(``facezoo.render.kernels.<stage>``, launched from the stage's module), never a backend.

**The kernel switch.** Every stage has two implementations with the same results: Warp kernels (CPU threads
or CUDA streams; faster) and pure PyTorch. One switch picks them, the environment variable
``FACEZOO_RENDER_KERNELS``:

- ``auto`` (default): Warp where it imports and compiles, else PyTorch, with one ``RuntimeWarning`` per
  process that gives the reason (the exception text);
- ``warp``: Warp, or a ``RuntimeError`` with the reason;
- ``torch``: PyTorch everywhere.

:func:`use_kernels` sets the same for a block of code (tests compare the two paths this way) and
:func:`active_kernels` says which one is in use. An autograd Function keeps its forward's choice for its
backward.

**Input checks.** The kernels index with ``tri`` and with rast's triangle ids unchecked, so every public op
checks them at the boundary (``tri`` in ``[0, V)`` once per tensor; rast's ids at most ``T``) and names the
argument, its dtype, shape and device in the error.

Example:
    >>> import torch
    >>> from facezoo.render import interpolate, rasterize, use_kernels
    >>> pos = torch.tensor([[[-1.0, -1.0, 0.0, 1.0], [3.0, -1.0, 0.0, 1.0], [-1.0, 3.0, 0.0, 1.0]]])
    >>> tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    >>> with use_kernels("torch"):
    ...     a = interpolate(pos[..., :2], rasterize(pos, tri, (2, 2)), tri)
    >>> b = interpolate(pos[..., :2], rasterize(pos, tri, (2, 2)), tri)
    >>> torch.equal(a, b), a[0, 0, 0].tolist()
    (True, [-0.5, 0.5])
"""

from facezoo.render._runtime import active_kernels, use_kernels
from facezoo.render.antialias import antialias
from facezoo.render.interpolate import interpolate
from facezoo.render.rasterize import rasterize
from facezoo.render.renderer import MeshRenderer, RenderOutput
from facezoo.render.sampling import sample_image, transfer_texture
from facezoo.render.shading import sh_basis, sh_shade
from facezoo.render.uv import render_uv, sample_uv
from facezoo.render.visibility import vertex_visibility

__all__ = [
    "MeshRenderer",
    "RenderOutput",
    "active_kernels",
    "antialias",
    "interpolate",
    "rasterize",
    "render_uv",
    "sample_image",
    "sample_uv",
    "sh_basis",
    "sh_shade",
    "transfer_texture",
    "use_kernels",
    "vertex_visibility",
]
