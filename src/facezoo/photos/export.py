"""What ``facezoo reconstruct`` writes per photo, and the contact sheet of all overlays.

Per photo ``<stem>`` in the output folder:

* ``<stem>.obj``: the mesh in model space (mm) with per-vertex RGB where known: the fitted or regressed
  albedo when the model has one, else the photo's colour sampled at the vertices that the fitted pose shows
  (hidden vertices grey 0.5); written by :func:`facezoo.callbacks.export.write_obj`.
* ``<stem>_overlay.png``: the photo (longer side at most ``max_side`` px) with the reconstruction rendered
  over it (70 % opacity; lit by the fitted SH light where known, else grey under a fixed light), the input
  landmarks in red and the model's in green (:func:`facezoo.callbacks.panels.draw_points`).
* ``<stem>.json``: ``landmarks2d`` (68 x [x, y], photo pixels), ``landmarks_input`` and their source file,
  ``nme`` (model points vs input landmarks over ``sqrt(w h)``), ``params`` (lists), ``camera``, the model,
  method and checkpoint used, the photo's size.
* ``<stem>.npz``: the same parameters, camera and landmarks as arrays.

``contact_sheet.png``: every overlay scaled to one height, in rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["overlay_image", "vertex_colours", "write_exports", "contact_sheet"]

#: grey shading light (Deep3DFace SH, ambient + upper-left-front), as the preview panels use.
SHADE_LIGHT = (0.6, -0.2, 0.25, 0.15, 0.0, 0.0, 0.0, 0.0, 0.0)


def _scaled(result, max_side: int):
    from facezoo.fitting.camera import transform_camera

    img = result.photo.image
    h, w = img.shape[-2:]
    k = min(1.0, max_side / max(h, w))
    size = (max(1, round(h * k)), max(1, round(w * k)))
    kx, ky = size[1] / w, size[0] / h
    k = (kx + ky) / 2
    if size != (h, w):
        img = torch.nn.functional.interpolate(img[None], size=size, mode="area")[0]
    affine = torch.tensor([[[k, 0.0, 0.0], [0.0, k, 0.0]]], dtype=torch.float64)
    return img, transform_camera(result.camera.to(dtype=torch.float64), affine), k


def _render(result, camera, size, colours=None, light=None):
    from facezoo.render import MeshRenderer

    v = result.vertices[None].float()
    if colours is None:
        colours = v.new_full((1, v.shape[1], 3), 0.7)
        light = v.new_tensor(SHADE_LIGHT).repeat(3)[None]
    return MeshRenderer(size, backend="builtin")(
        v, result.triangles, camera.to(dtype=torch.float32), colors=colours[None].float() if colours.ndim == 2
        else colours.float(), lighting=None if light is None else light.reshape(1, -1).float(),
        background=0.0,
    )  # fmt: skip


def vertex_colours(result, max_side: int = 640) -> Tensor:
    """``[V,3]`` colours for the mesh: the albedo where known, else the photo (longer side at most
    ``max_side`` px) sampled at the vertices the fitted pose shows (others grey)."""
    if result.colours is not None:
        return result.colours.clamp(0, 1)
    from facezoo.render.sampling import sample_image

    img, cam, _ = _scaled(result, max_side)
    out = _render(result, cam, tuple(img.shape[-2:]))
    pix = cam.project(result.vertices[None].double()).float()
    colours = sample_image(img[None].float(), pix)[0]
    vis = out.visible[0][:, None]
    return torch.where(vis, colours, torch.full_like(colours, 0.5)).double()


def overlay_image(result, max_side: int = 640, opacity: float = 0.7) -> Tensor:
    """``[3,h,w]`` the photo with the reconstruction over it and the landmarks marked (module docstring)."""
    from facezoo.callbacks.panels import draw_points

    img, cam, k = _scaled(result, max_side)
    lit = result.colours is not None and result.light is not None
    out = _render(result, cam, tuple(img.shape[-2:]), result.colours if lit else None,
                  result.light if lit else None)  # fmt: skip
    mask = out.mask[0] * opacity
    picture = mask * out.image[0].clamp(0, 1) + (1 - mask) * img.float()
    r = max(1, max(img.shape[-2:]) // 200)
    picture = draw_points(picture[None], (result.photo.landmarks[None] * k).float(), (1.0, 0.2, 0.2), r)
    picture = draw_points(picture, (result.landmarks2d[None] * k).float(), (0.2, 1.0, 0.2), r)
    return picture[0]


def _camera_dict(camera) -> dict:
    return {"type": type(camera).__name__, **{k: v[0].tolist() for k, v in camera._tensors().items()}}


def write_exports(result, out_dir: str | Path, model_name: str, method: str, checkpoint: str | None) -> dict:
    """Write one photo's files (module docstring); returns ``{kind: path}`` and the overlay tensor."""
    from facezoo.callbacks.export import write_obj
    from facezoo.callbacks.panels import save_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = result.photo.stem
    files = {"obj": write_obj(out / f"{stem}.obj", result.vertices, result.triangles, vertex_colours(result))}
    overlay = overlay_image(result)
    files["overlay"] = save_png(overlay, out / f"{stem}_overlay.png")
    h, w = result.photo.image.shape[-2:]
    meta = {
        "photo": str(result.photo.path),
        "image_size": [int(w), int(h)],
        "model": model_name,
        "method": method,
        "checkpoint": checkpoint,
        "landmarks_source": result.photo.source,
        "landmarks_input": result.photo.landmarks.tolist(),
        "landmarks2d": result.landmarks2d.tolist(),
        "nme": result.nme,
        "params": {k: v.tolist() for k, v in result.params.items()},
        "camera": _camera_dict(result.camera),
        **result.info,
    }
    files["json"] = out / f"{stem}.json"
    files["json"].write_text(json.dumps(meta, indent=1))
    arrays = {f"params_{k}": v.numpy() for k, v in result.params.items()}
    arrays.update({f"camera_{k}": v[0].numpy() for k, v in result.camera._tensors().items()})
    arrays.update(landmarks2d=result.landmarks2d.numpy(), landmarks3d=result.landmarks3d.numpy(),
                  landmarks_input=result.photo.landmarks.numpy())  # fmt: skip
    files["npz"] = out / f"{stem}.npz"
    np.savez(files["npz"], **arrays)
    files["overlay_tensor"] = overlay
    return files


def contact_sheet(images: list[Tensor], path: str | Path, height: int = 160, columns: int = 6) -> Path:
    """Tile ``images`` ``[3,H_i,W_i]`` scaled to ``height`` px, ``columns`` per row, into one PNG.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "s.png"
        >>> p = contact_sheet([torch.zeros(3, 20, 10), torch.ones(3, 10, 10)], out, 8)
        >>> from PIL import Image; Image.open(p).size
        (12, 8)
    """
    from facezoo.callbacks.panels import save_png

    if not images:
        raise ValueError("contact_sheet: no images")
    tiles = []
    for im in images:
        w = max(1, round(im.shape[-1] * height / im.shape[-2]))
        tiles.append(torch.nn.functional.interpolate(im[None].float(), size=(height, w), mode="area")[0])
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    width = max(sum(t.shape[-1] for t in row) for row in rows)
    sheet = torch.ones(3, height * len(rows), width)
    for r, row in enumerate(rows):
        x = 0
        for t in row:
            sheet[:, r * height : (r + 1) * height, x : x + t.shape[-1]] = t
            x += t.shape[-1]
    return save_png(sheet, path)
