"""Face editing with the nonlinear 3DMM (Tran et al. 2019, §4.5, Fig. 14): add a sticker to a face.

    python examples/face_editing.py                        # synthetic face, known geometry and light
    python examples/face_editing.py --ckpt run.ckpt --image face.jpg   # a trained NonlinearFace3DMM

"Using the estimated shape as well as the projection matrix, we can unwrap the facial texture into the UV
space. Thanks to the lighting decomposition, we can also remove the shading from the texture to get the
detailed albedo. From here we can directly edit the albedo by adding sticker ... Finally, the edited images
can be rendered using the modified albedo together with other original elements." The steps below are these:

1. geometry, camera and SH light: from the checkpoint's ``reconstruct`` (true shape S, the camera of M, L),
   or for the default synthetic face its ground truth (so the example runs without a trained model);
2. unwrap the photo into UV through the mesh (:func:`facezoo.render.uv.unwrap_texture`, visible texels);
3. remove the shading: divide by the SH irradiance of the mesh's normals rasterised into UV;
4. paste a sticker (a five-pointed star) on the albedo, on the better-seen cheek, placed from the model's
   landmarks in UV;
5. re-render with the edited albedo under the same light, and add the difference the sticker makes to the
   photo (so the rest of the photo keeps its own detail: only the sticker's pixels change).

Writes ``runs/examples/face_editing.png``: input | unwrapped texture | albedo (shading removed) | edited
albedo | result (the UV maps are resized to the image height).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from facezoo.geometry.mesh import vertex_normals
from facezoo.render import MeshRenderer
from facezoo.render.shading import sh_shade
from facezoo.render.uv import render_uv, unwrap_texture


def star_mask(size: tuple[int, int], centre: tuple[float, float], radius: float) -> torch.Tensor:
    """``[H,W]`` 0/1 mask of a five-pointed star (texel centres inside the star polygon)."""
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    ang = torch.atan2(ys - centre[0], xs - centre[1]) + math.pi / 2
    r = torch.hypot(ys - centre[0], xs - centre[1])
    # polar form of a star: the boundary radius oscillates between the outer and inner radius 5 times
    k = (ang % (2 * math.pi / 5)) / (2 * math.pi / 5)
    inner = 0.45 * radius
    edge = torch.where(k < 0.5, radius + (inner - radius) * 2 * k, inner + (radius - inner) * (2 * k - 1))
    return (r <= edge).float()


def from_synthetic(size: int):
    from facezoo.datamodules.synthetic import SyntheticFaces

    dm = SyntheticFaces("procedural", image_size=size, occluder_prob=0.0, yaw_range=25.0, num_test=1)
    s = dm.dataset("test")[0]
    p = {k: v[None] for k, v in s["params"].items()}
    cam = dm.camera(p["angles"], p["translation"])
    model = dm.model
    return s["image"][None], p["vertices"], cam, p["light"], model


def from_checkpoint(ckpt: str, image_path: str):
    from PIL import Image

    from facezoo.methods import NonlinearFace3DMM

    method = NonlinearFace3DMM.load_from_checkpoint(ckpt, map_location="cpu").eval()
    size = method.image_size
    img = Image.open(image_path).convert("RGB").resize((size, size))
    image = torch.from_numpy(__import__("numpy").asarray(img)).permute(2, 0, 1).float()[None] / 255.0
    with torch.no_grad():
        rec = method.reconstruct({"image": image})
    return image, rec.vertices, rec.camera, rec.params["light"], method.morphable


def main() -> None:
    ap = argparse.ArgumentParser(description="Add a sticker to a face with the nonlinear 3DMM (paper §4.5).")
    ap.add_argument("--ckpt", help="a NonlinearFace3DMM checkpoint (with --image)")
    ap.add_argument("--image", help="a face crop (resized to the model's input size)")
    ap.add_argument("--size", type=int, default=224, help="image size of the synthetic face")
    ap.add_argument("--uv", type=int, nargs=2, default=(192, 224), help="UV map (H, W)")
    ap.add_argument("--out", default="runs/examples/face_editing.png")
    args = ap.parse_args()
    if args.ckpt and args.image:
        image, verts, cam, light, model = from_checkpoint(args.ckpt, args.image)
    else:
        image, verts, cam, light, model = from_synthetic(args.size)
    uv_size = tuple(args.uv)
    tri, uv = model.triangles, model.uv
    renderer = MeshRenderer(image.shape[-2:])
    with torch.no_grad():
        seen_by = renderer(verts, tri, cam, colors=torch.zeros_like(verts)).visible
        # 2. unwrap
        texture, seen = unwrap_texture(image, cam.project(verts), uv, tri, uv_size, visible=seen_by)
        # 3. remove shading: the SH irradiance of each texel's (view-space) normal
        normals = vertex_normals(cam.view(verts), tri)
        irradiance = sh_shade(torch.ones_like(normals), normals, light)
        shading = render_uv(irradiance, uv, tri, uv_size)
        albedo = torch.where(seen > 0, texture / shading.clamp_min(1e-3), texture).clamp(0, 1)
        # 4. the sticker on a cheek, between the nose's side and the jaw (from the landmarks in UV); the cheek
        #    the camera sees more of
        lm_uv = uv[model.landmarks68]
        best = None
        for nose, jaw in ((31, 3), (35, 13)):
            anchor = (lm_uv[nose] + lm_uv[jaw]) / 2
            centre = ((1 - float(anchor[1])) * uv_size[0], float(anchor[0]) * uv_size[1])
            radius = 0.2 * float((lm_uv[nose] - lm_uv[jaw]).norm()) * uv_size[1]
            star = star_mask(uv_size, centre, radius)[None, None]
            score = float((star * seen).sum())
            if best is None or score > best[0]:
                best = (score, star)
        sticker = best[1]
        colour = torch.tensor([0.95, 0.75, 0.1]).view(1, 3, 1, 1)
        edited = albedo * (1 - sticker) + colour * sticker
        # 5. re-render: original and edited albedo under the same light; add the sticker's difference
        before = renderer(verts, tri, cam, texture=albedo, uv=uv, lighting=light).image
        after = renderer(verts, tri, cam, texture=edited, uv=uv, lighting=light).image
        result = (image + after - before).clamp(0, 1)
    h = image.shape[-2]

    def panel(x):
        return F.interpolate(x, size=(h, round(h * x.shape[-1] / x.shape[-2])), mode="bilinear")[0]

    grid = torch.cat([image[0], panel(texture), panel(albedo), panel(edited), result[0]], dim=2)
    from facezoo.callbacks.panels import save_png

    path = save_png(grid, Path(args.out))
    changed = float(((result - image).abs().sum(1) > 0.05).float().mean())
    print(f"wrote {path} (sticker covers {changed:.1%} of the image)")


if __name__ == "__main__":
    main()
