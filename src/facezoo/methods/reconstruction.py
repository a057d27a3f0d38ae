"""``FaceReconstruction``: what every method's ``reconstruct``/``predict_step`` returns and the evaluation,
protocols and export callbacks consume. One row per input image; a view-stacked batch (``image [B,V,...]``)
gives ``B*V`` rows, sample-major, and ``views = V`` (:mod:`facezoo.methods.views`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class FaceReconstruction:
    """A batch of reconstructed faces, one row per input image (all tensors share the leading axis ``N``:
    ``N = B`` for single images, ``B*V`` for a batch of ``B`` sets of ``V`` views, row ``b*V + v``).

    Attributes:
        vertices: ``[B,V,3]`` model-space mesh in mm (pose not applied; ``camera.view`` places it).
        triangles: ``[T,3]`` int64 faces (CCW seen from outside), shared by the batch.
        landmarks3d: ``[B,68,3]`` model-space iBUG-68 landmarks (mm).
        landmarks2d: ``[B,68,2]`` landmarks projected into the input crop (pixels, top-left origin).
        params: regressed parameters, each ``[B,...]`` (e.g. ``id``, ``exp``, ``tex``, ``angles``, ``light``,
            ``translation``).
        camera: the facezoo camera (``Perspective`` / ``WeakPerspective``) mapping model space to the crop.
        colours: ``[B,V,3]`` per-vertex albedo in [0, 1], or ``None``.
        image: ``[B,3,H,W]`` rendered reconstruction (shaded), or ``None``.
        mask: ``[B,1,H,W]`` rendered coverage, or ``None``.
        meta: per-row extras (e.g. ``index [N]``, ``path`` list) that exports use for file names.
        views: rows per input sample ``V`` (1 for single images). A method that predicts one shape per set
            repeats it over the set's rows.

    Example:
        >>> rec = FaceReconstruction(torch.zeros(2, 4, 3), torch.tensor([[0, 1, 2]]), torch.zeros(2, 68, 3),
        ...                          torch.zeros(2, 68, 2))
        >>> len(rec), rec[1].vertices.shape
        (2, torch.Size([1, 4, 3]))
    """

    vertices: Tensor
    triangles: Tensor
    landmarks3d: Tensor
    landmarks2d: Tensor
    params: dict[str, Tensor] = field(default_factory=dict)
    camera: Any = None
    colours: Tensor | None = None
    image: Tensor | None = None
    mask: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    views: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.vertices, Tensor) or self.vertices.ndim != 3 or self.vertices.shape[-1] != 3:
            raise ValueError(f"vertices: expected [B,V,3], got {getattr(self.vertices, 'shape', None)}")
        if self.triangles.ndim != 2 or self.triangles.shape[-1] != 3:
            raise ValueError(f"triangles: expected [T,3], got {tuple(self.triangles.shape)}")
        if not isinstance(self.views, int) or self.views < 1 or len(self) % self.views:
            raise ValueError(
                f"views: expected a positive divisor of the {len(self)} rows, got {self.views!r}"
            )

    def __len__(self) -> int:
        return self.vertices.shape[0]

    def _map(self, fn_tensor, fn_camera, fn_meta, views: int | None = None) -> FaceReconstruction:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "triangles":
                out[f.name] = value
            elif f.name == "params":
                out[f.name] = {k: fn_tensor(v) for k, v in value.items()}
            elif f.name == "camera":
                out[f.name] = None if value is None else fn_camera(value)
            elif f.name == "meta":
                out[f.name] = {k: fn_meta(v) for k, v in value.items()}
            elif f.name == "views":
                out[f.name] = value if views is None else views
            else:
                out[f.name] = None if value is None else fn_tensor(value)
        return FaceReconstruction(**out)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> FaceReconstruction:
        """A copy on ``device`` (triangles and meta tensors too) with floating-point tensors (camera included)
        cast to ``dtype``; integer tensors keep their dtype."""

        def move(t: Tensor) -> Tensor:
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        moved = self._map(
            move,
            lambda c: c.to(device=device, dtype=dtype),
            lambda m: move(m) if isinstance(m, Tensor) else m,
        )
        moved.triangles = self.triangles.to(device)
        return moved

    def detach(self) -> FaceReconstruction:
        """A copy with every tensor detached from the autograd graph."""
        return self._map(
            lambda t: t.detach(), lambda c: c.detach(), lambda m: m.detach() if isinstance(m, Tensor) else m
        )

    def __getitem__(self, index: int | slice | Tensor) -> FaceReconstruction:
        """The faces at ``index`` along the row axis (an int keeps a row axis of 1); the rows are no longer
        grouped in sets (``views = 1``)."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)

        def meta(m):
            if isinstance(m, Tensor):
                return m[index]
            if isinstance(m, list):
                return m[index] if isinstance(index, slice) else [m[i] for i in index.tolist()]
            return m

        return self._map(lambda t: t[index], lambda c: c[index], meta, views=1)
