"""``ReconstructionWriter``: writes what ``facezoo predict`` reconstructs, one set of files per input face.

Per face ``<name>`` (the sample's ``index``, zero-padded, or a running counter): ``<name>.obj`` (the mesh in
model space, mm, with per-vertex RGB albedo as ``v x y z r g b``, triangles 1-based and counter-clockwise),
``<name>_lm68.txt`` (68 lines ``x y`` in crop pixels), ``<name>_lm68_3d.txt`` (68 lines ``x y z`` in
model-space mm) and ``<name>.png`` (input | overlay | shaded mesh) when the batch carries the input image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from facezoo.callbacks.panels import panels, save_png
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor


def write_obj(path: str | Path, vertices: Tensor, triangles: Tensor, colours: Tensor | None = None) -> Path:
    """Write a Wavefront OBJ: ``vertices [V,3]``, ``triangles [T,3]`` (0-based), optional ``colours [V,3]`` in
    [0, 1] as the common ``v x y z r g b`` extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    v = vertices.detach().cpu().double().numpy()
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices: expected [V,3], got {v.shape}")
    f = triangles.detach().cpu().long().numpy() + 1
    lines = []
    if colours is not None:
        c = colours.detach().cpu().double().clamp(0, 1).numpy()
        lines += [
            f"v {a:.5f} {b:.5f} {d:.5f} {r:.4f} {g:.4f} {bl:.4f}" for (a, b, d), (r, g, bl) in zip(v, c)
        ]
    else:
        lines += [f"v {a:.5f} {b:.5f} {d:.5f}" for a, b, d in v]
    lines += [f"f {i} {j} {k}" for i, j, k in f]
    path.write_text("\n".join(lines) + "\n")
    return path


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

    def _names(self, batch, n: int) -> list[str]:
        index = batch.get("index") if isinstance(batch, dict) else None
        if isinstance(index, Tensor) and index.numel() * (n // max(index.numel(), 1)) == n and index.numel():
            per = n // index.numel()
            if per == 1:
                return [f"{int(i):06d}" for i in index]
            return [f"{int(i):06d}_{j}" for i in index for j in range(per)]
        names = [f"{self._counter + i:06d}" for i in range(n)]
        self._counter += n
        return names

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        rec = prediction
        n = len(rec)
        names = self._names(batch, n)
        pictures = None
        if self.pictures and isinstance(batch, dict) and "image" in batch and rec.image is not None:
            images = batch["image"].flatten(0, 1) if batch["image"].ndim == 5 else batch["image"]
            target = batch.get("landmarks68")
            if target is not None:
                target = target.reshape(rec.landmarks2d.shape)
            with torch.no_grad():
                pictures = panels(pl_module, rec, images, target)
        for i, name in enumerate(names):
            colours = rec.colours[i] if rec.colours is not None else None
            self.written.append(
                write_obj(self.output_dir / f"{name}.obj", rec.vertices[i], rec.triangles, colours)
            )
            self.written.append(write_points(self.output_dir / f"{name}_lm68.txt", rec.landmarks2d[i]))
            self.written.append(write_points(self.output_dir / f"{name}_lm68_3d.txt", rec.landmarks3d[i]))
            if pictures is not None:
                self.written.append(save_png(pictures[i], self.output_dir / f"{name}.png"))
