"""Photometric refinement: shape, expression, albedo, SH light and pose from the pixels, after the landmarks.

Starting from a :class:`~facezoo.fitting.LandmarkFit`, every photo is cut to a ``crop_size`` square around
its landmarks (:func:`facezoo.data.landmark_box_affine`, side 1.6 x the landmark box: forehead and cheeks
included) so that photos of any size form one batch, the camera is moved into the crop
(:func:`~facezoo.fitting.camera.transform_camera`), and Adam minimises, through the shared
:class:`~facezoo.render.MeshRenderer` (z-buffered, antialiased silhouettes),

    w_photo L_photo + w_lan sum_l w_l ||pi(X_l) - x_l||^2 / n^2 + lam_id ||id||^2 + lam_exp ||exp||^2
        + lam_tex ||tex||^2

with ``L_photo`` Deep3DFace's robust masked colour distance (:func:`facezoo.losses.photometric_loss`, no skin
attention: every covered pixel counts), the landmark term of :mod:`~facezoo.fitting.landmark_fit` with the
jaw correspondences it ended on, and 27 SH coefficients (Deep3DFace's basis, :mod:`facezoo.render.shading`)
started at a uniform ambient light matching the crop's mean brightness. The fitted camera is moved back to
photo pixels. The model must have an albedo (texture) model.

Our choices (no paper fixes them): crop 160 px, 60 Adam steps, learning rates 0.02 (coefficients), 0.01
(light), 0.002 (rotation, rad), 0.002 (log scale) and 0.2 px (weak-perspective shift) / 1 mm (perspective
translation); ``w_lan = 1``, ``w_photo = 0.1``, ``lam_tex = 1e-3``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from facezoo.data.align import invert_affine, landmark_box_affine, transform_points, warp_image
from facezoo.fitting.camera import transform_camera
from facezoo.fitting.landmark_fit import LandmarkFit, landmark_normaliser
from facezoo.fitting.targets import landmark_set
from facezoo.geometry import Perspective, WeakPerspective, axis_angle_to_matrix
from facezoo.losses import photometric_loss
from facezoo.morphable import MorphableModel

__all__ = ["PhotometricFit", "refine_photometric", "crop_photos"]


@dataclass
class PhotometricFit:
    """``params`` (``id``, ``exp``, ``tex``, ``light [B,27]``), ``camera`` (photo pixels), ``vertices
    [B,V,3]``, ``colours [B,V,3]`` albedo, ``landmarks2d [B,68,2]`` photo pixels, ``losses``: the first and
    last photometric loss."""

    params: dict[str, Tensor]
    camera: WeakPerspective | Perspective
    vertices: Tensor
    colours: Tensor
    landmarks3d: Tensor
    landmarks2d: Tensor
    losses: tuple[float, float]


def crop_photos(
    photos: list[Tensor], landmarks: Tensor, size: int, scale: float = 1.6
) -> tuple[Tensor, Tensor]:
    """``([B,3,size,size] crops, [B,2,3] affines photo -> crop)`` around each photo's landmarks
    ``[B,L,2]``; ``photos`` are ``[3,H_i,W_i]`` of any sizes.

    Example:
        >>> crops, A = crop_photos([torch.rand(3, 40, 50)], torch.tensor([[[10.0, 10.0], [30.0, 30.0]]]), 16)
        >>> crops.shape, A[0, 0, 0].item()
        (torch.Size([1, 3, 16, 16]), 0.5)
    """
    affine = landmark_box_affine(landmarks.double(), size, scale=scale)
    crops = [warp_image(p[None].float(), a[None], size)[0] for p, a in zip(photos, affine)]
    return torch.stack(crops), affine


def refine_photometric(
    model: MorphableModel,
    photos: list[Tensor],
    fit: LandmarkFit,
    landmarks: Tensor,
    weight: Tensor | None = None,
    *,
    crop_size: int = 160,
    steps: int = 60,
    w_photo: float = 0.1,
    w_lan: float = 1.0,
    lam_id: float = 1e-3,
    lam_exp: float = 1e-3,
    lam_tex: float = 1e-3,
    backend: str = "auto",
) -> PhotometricFit:
    """Refine ``fit`` on the ``photos`` ``[3,H_i,W_i]`` (module docstring); ``landmarks [B,L,2]`` photo
    pixels as given to :func:`~facezoo.fitting.fit_landmarks`, ``weight [B,L]``."""
    from facezoo.render import MeshRenderer

    if not model.has_texture:
        raise ValueError(
            f"photometric fitting needs a morphable model with an albedo (texture) model; {model.name!r} has "
            "none (fit landmarks only)"
        )
    if len(photos) != len(fit.vertices):
        raise ValueError(f"photos: {len(photos)} images for {len(fit.vertices)} fitted faces")
    dev = model.mean.device
    m = model.float()
    b = len(photos)
    lm = landmarks.to(dev, torch.float64)
    w = (
        torch.ones(lm.shape[:2], dtype=torch.float64, device=dev)
        if weight is None
        else weight.to(dev).double()
    )
    lset = landmark_set(model, lm.shape[1])
    w = w * (lset.valid.to(dev) | lset.jaw.to(dev)).double()
    crops, affine = crop_photos([p.to(dev) for p in photos], lm, crop_size)
    target = transform_points(lm, affine).float()
    norm = landmark_normaliser(target.double(), w).float()
    wf = w.float()
    cam0 = transform_camera(fit.camera.to(dev, torch.float64), affine).to(dtype=torch.float32)
    # landmark vertices: the jaw at the vertices the landmark fit ended on
    idx = lset.index.to(dev).expand(b, -1, -1).clone()
    if lm.shape[1] == 68:
        idx = fit.landmark_index.to(dev)[..., None].expand(b, 68, 2)
    lw = lset.weight.to(dev).float()[..., None]

    ident = fit.params["id"].float().clone().requires_grad_(True)
    exp = fit.params["exp"].float().clone().requires_grad_(True)
    tex = torch.zeros(b, m.n_tex, device=dev, requires_grad=True)
    albedo0 = m.texture(None).mean()
    light = torch.zeros(b, 3, 9, device=dev)
    light[:, :, 0] = (crops.mean((2, 3)) / (albedo0 * 0.886)).clamp(0.2, 3.0)  # pi/sqrt(4pi) = 0.886
    light = light.reshape(b, 27).requires_grad_(True)
    omega = torch.zeros(b, 3, device=dev, requires_grad=True)
    weak = isinstance(cam0, WeakPerspective)
    shift = torch.zeros(b, 3, device=dev, requires_grad=True)  # weak: (log s, tx, ty); perspective: t (mm)
    groups = [
        {"params": [ident, exp, tex], "lr": 0.02},
        {"params": [light], "lr": 0.01},
        {"params": [omega], "lr": 0.002},
    ]
    if weak:
        groups.append({"params": [shift], "lr": 0.2})
    else:
        groups.append({"params": [shift], "lr": 1.0})
    opt = torch.optim.Adam(groups)
    renderer = MeshRenderer(crop_size, backend=backend)

    def camera() -> WeakPerspective | Perspective:
        rot = axis_angle_to_matrix(omega) @ cam0.rotation
        if weak:
            scale = cam0.scale * (shift[:, 0] * 0.01).exp()  # lr 0.2 on the shift: 0.002 on log s
            return WeakPerspective(scale, rot, cam0.t2d + shift[:, 1:])
        return Perspective(cam0.focal, cam0.center, rot, cam0.translation + shift)

    first = last = float("nan")
    for step in range(steps + 1):
        verts = m(ident, exp if m.n_exp else None)
        colours = m.texture(tex) if m.n_tex else m.texture(None).expand(b, -1, -1)
        cam = camera()
        flat = idx.reshape(b, -1)
        lm3d = (torch.gather(verts, 1, flat[..., None].expand(-1, -1, 3)).reshape(b, -1, 2, 3) * lw).sum(-2)
        proj = cam.project(lm3d)
        r = ((proj - target) / norm[:, None, None]).square().sum(-1)
        l_lan = (r * wf).sum(-1).mean()
        out = renderer(verts, m.triangles, cam, colors=colours, lighting=light)
        l_photo = photometric_loss(crops, out.image, out.mask)
        prior = (
            lam_id * ident.square().sum(-1) + lam_exp * exp.square().sum(-1) + lam_tex * tex.square().sum(-1)
        )
        loss = w_photo * l_photo + w_lan * l_lan + prior.mean()
        if step == 0:
            first = float(l_photo.detach())
        last = float(l_photo.detach())
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        cam = transform_camera(camera().to(dtype=torch.float64), invert_affine(affine))
        verts = m(ident, exp if m.n_exp else None).double()
        colours = (m.texture(tex) if m.n_tex else m.texture(None).expand(b, -1, -1)).double()
        idx68 = fit.landmark_index.to(dev)
        lm3d = torch.gather(verts, 1, idx68[..., None].expand(b, 68, 3))
        params = {"id": ident.detach().double(), "exp": exp.detach().double(), "tex": tex.detach().double(),
                  "light": light.detach().double()}  # fmt: skip
    return PhotometricFit(params, cam, verts, colours, lm3d, cam.project(lm3d), (first, last))
