"""``ReconstructionWriter``: writes what ``facezoo predict`` reconstructs, one set of files per input face.

Per face ``<name>`` (the sample's ``index``, zero-padded, with ``_<view>`` for image sets and multi-view
samples; or a running counter): ``<name>.obj`` (the mesh in model space, mm, with per-vertex RGB albedo as
``v x y z r g b``, triangles 1-based and counter-clockwise; written by open3d), ``<name>_lm68.txt`` (68 lines
``x y`` in crop pixels), ``<name>_lm68_3d.txt`` (68 lines ``x y z`` in model-space mm) and ``<name>.png``
(input | overlay | shaded mesh) when the batch carries the input image; methods with UV maps in ``params``
(the nonlinear 3DMM) also get ``<name>_uv_albedo.png`` and ``<name>_uv_shape.npy`` (``[3,H,W]``, mm). The rows
of a view-stacked batch are the reconstruction's rows (:mod:`facezoo.methods.views`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from facezoo.callbacks.panels import panels, save_png
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from facezoo.methods.views import flatten_views


def write_mesh(path: str | Path, vertices: Tensor, triangles: Tensor, colours: Tensor | None = None) -> Path:
    """Write a triangle mesh with open3d, in the format of ``path``'s suffix (``.obj``: ``v x y z [r g b]``
    lines and 1-based ``f`` lines; ``.ply``: 8-bit vertex colours): ``vertices [V,3]``, ``triangles [T,3]``
    (0-based), optional ``colours [V,3]`` in [0, 1] (clamped). Parents are created.

    Example:
        >>> import tempfile
        >>> out = write_mesh(Path(tempfile.mkdtemp()) / "t.obj", torch.eye(3), torch.tensor([[0, 1, 2]]))
        >>> [line for line in out.read_text().splitlines() if not line.startswith("#")]
        ['v 1 0 0', 'v 0 1 0', 'v 0 0 1', 'f 1 2 3']
    """
    try:
        import open3d as o3d
    except (ImportError, OSError) as err:
        raise ImportError(
            f"writing meshes needs open3d, which could not be loaded ({err}); `make install` installs it "
            "(and libusb-1.0-0, which open3d's Linux wheels need)"
        ) from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    v = vertices.detach().cpu().double().numpy()
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices: expected [V,3], got {v.shape}")
    f = triangles.detach().cpu().long().numpy()
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and (f.min() < 0 or f.max() >= len(v))):
        raise ValueError(f"triangles: expected [T,3] indices in [0, {len(v)}), got {f.shape}")
    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f.astype(np.int32))
    )
    if colours is not None:
        c = colours.detach().cpu().double().clamp(0, 1).numpy()
        if c.shape != v.shape:
            raise ValueError(f"colours: expected {v.shape}, got {c.shape}")
        mesh.vertex_colors = o3d.utility.Vector3dVector(c)
    if not o3d.io.write_triangle_mesh(str(path), mesh, write_ascii=True, write_vertex_normals=False):
        raise OSError(f"open3d could not write {path} (unknown suffix or unwritable folder?)")
    return path


def write_obj(path: str | Path, vertices: Tensor, triangles: Tensor, colours: Tensor | None = None) -> Path:
    """Write a Wavefront OBJ (:func:`write_mesh`)."""
    path = Path(path)
    if path.suffix.lower() != ".obj":
        raise ValueError(f"write_obj: expected a .obj path, got {path}")
    return write_mesh(path, vertices, triangles, colours)


def write_points(path: str | Path, points: Tensor) -> Path:
    """Write ``points [N,D]`` one per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, points.detach().cpu().double().numpy(), fmt="%.4f")
    return path


class ReconstructionWriter(BasePredictionWriter):
    """Prediction writer for :class:`~facezoo.methods.FaceReconstruction` outputs (module docstring).

    Args:
        output_dir: folder for the files (created).
        pictures: also write the overlay PNGs.
    """

    def __init__(self, output_dir: str = "predictions", pictures: bool = True) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.pictures = bool(pictures)
        self._counter = 0
        self.written: list[Path] = []

    def _names(self, flat, rec) -> list[str]:
        n, views = len(rec), rec.views
        index = flat.get("index") if isinstance(flat, dict) else None
        if isinstance(index, Tensor) and index.numel() == n:
            if views == 1:
                return [f"{int(i):06d}" for i in index]
            return [f"{int(i):06d}_{j % views}" for j, i in enumerate(index)]
        names = [f"{self._counter + i:06d}" for i in range(n)]
        self._counter += n
        return names

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        rec = prediction
        flat = flatten_views(batch) if isinstance(batch, dict) and "image" in batch else {}
        names = self._names(flat, rec)
        pictures = None
        if self.pictures and "image" in flat and rec.image is not None:
            with torch.no_grad():
                pictures = panels(pl_module, rec, flat["image"], flat.get("landmarks68"))
        for i, name in enumerate(names):
            colours = rec.colours[i] if rec.colours is not None else None
            self.written.append(
                write_obj(self.output_dir / f"{name}.obj", rec.vertices[i], rec.triangles, colours)
            )
            self.written.append(write_points(self.output_dir / f"{name}_lm68.txt", rec.landmarks2d[i]))
            self.written.append(write_points(self.output_dir / f"{name}_lm68_3d.txt", rec.landmarks3d[i]))
            if pictures is not None:
                self.written.append(save_png(pictures[i], self.output_dir / f"{name}.png"))
            self._write_uv_maps(rec, i, name)

    def _write_uv_maps(self, rec, i: int, name: str) -> None:
        """UV maps a method puts in ``params`` (the nonlinear 3DMM): ``uv_albedo [N,3,H,W]`` in [0, 1] as
        ``<name>_uv_albedo.png``, ``uv_shape [N,3,H,W]`` (mm) as ``<name>_uv_shape.npy``."""
        albedo, shape = rec.params.get("uv_albedo"), rec.params.get("uv_shape")
        if isinstance(albedo, Tensor) and albedo.ndim == 4:
            self.written.append(save_png(albedo[i], self.output_dir / f"{name}_uv_albedo.png"))
        if isinstance(shape, Tensor) and shape.ndim == 4:
            path = self.output_dir / f"{name}_uv_shape.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, shape[i].detach().cpu().float().numpy())
            self.written.append(path)
