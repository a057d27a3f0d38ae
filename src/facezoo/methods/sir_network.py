"""SIR's network (sir.txt §III-C, Fig. 2): the shared/branch Sphere64a encoder, the UV albedo decoder, the
confidence network, and how their outputs become a face (weak-perspective camera, UV albedo, SH light).

Output parameterisation (the paper gives the sizes, not the mapping; our choices):

* ``pose [7]`` = quaternion ``(w, x, y, z)`` (4), 2D translation (2), weak-perspective scale (1). The
  quaternion is ``(1, 0, 0, 0) + out[:4]`` (normalised by :func:`facezoo.geometry.quaternion_to_matrix`:
  frontal at zero output); ``t2d = t0 + out[4:6] * S / 2`` px, with ``t0`` the point that puts the mean face's
  landmark centroid at the crop centre; ``s = s0 exp(out[6])`` px/mm, ``s0 = init_scale * S / 224`` (1.015
  px/mm for a 224 crop: the scale of Deep3DFace's 1 m / 1015 px camera, so that the mean face fills a face
  crop).
* ``light [27]``: SH coefficients (3 colours x 9 bands), ``out + 0.8`` on each colour's ambient band (start
  lit).
* albedo: the decoder's ``tanh`` output is a *residual* added to the model's mean albedo rendered into UV
  space (``A = A_mean + R``; Eq. 16's magnitude term pulls ``R`` to 0).
* The last layer of each encoder branch starts at zero (mean face, frontal, centred, ambient light), as
  Deep3DFace's R-Net; the albedo decoder's last layer starts near zero (its own initialisation).
* The encoder reads the crop resized to ``encoder_size`` and normalised as SphereFace, ``(255 x - 127.5) /
  128``; ConfNet (Unsup3D, 64 x 64 input) reads it resized to 64 x 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import facezoo.nn as fnn
from facezoo.geometry import WeakPerspective
from facezoo.geometry.rotations import matrix_to_euler, quaternion_to_matrix
from facezoo.morphable import MorphableModel
from facezoo.render.uv import render_uv

AMBIENT = 0.8


class SIRNetwork(nn.Module):
    """Encoder (Modules 1-4), albedo decoder and ConfNet of SIR for a given morphable model and crop size.

    ``encode(images [N,3,S,S]) -> params`` (``id, exp, tex`` (albedo latent), ``pose [N,7]``, ``light``);
    ``albedo(tex) -> (A [N,3,U,U], R)``; ``confidence(images) -> (sigma [N,1,64,64], sigma_perc
    [N,1,16,16])``;
    ``camera(pose) -> WeakPerspective``.

    Example:
        >>> from facezoo.methods.base import build_morphable
        >>> net = SIRNetwork(build_morphable("procedural:600:8:4:8"), 32, depth=4, channels=(4, 4, 8, 8),
        ...                  hidden=8, albedo_dim=8, uv_size=32, albedo_channels=(8,) * 6, albedo_fusion=8,
        ...                  confnet_nf=16, confnet_zdim=8)
        >>> p = net.encode(torch.rand(2, 3, 32, 32))
        >>> net.albedo(p["tex"])[0].shape, [tuple(s.shape) for s in net.confidence(torch.rand(2, 3, 32, 32))]
        (torch.Size([2, 3, 32, 32]), [(2, 1, 64, 64), (2, 1, 16, 16)])
    """

    def __init__(
        self,
        model: MorphableModel,
        image_size: int,
        encoder_size: int | None = None,
        depth: int = 64,
        channels: tuple[int, int, int, int] = (64, 128, 256, 512),
        hidden: int = 512,
        albedo_dim: int = 512,
        uv_size: int = 256,
        albedo_channels: tuple[int, ...] = (320, 256, 192, 128, 64, 32),
        albedo_fusion: int = 32,
        confnet_nf: int = 64,
        confnet_zdim: int = 128,
        init_scale: float = 1.015,
    ) -> None:
        super().__init__()
        if model.uv is None or not model.has_texture:
            raise ValueError(
                f"SIR needs a morphable model with UV coordinates and a mean albedo (the UV albedo decoder "
                f"predicts a residual over it); {model.name!r} has uv={model.uv is not None}, "
                f"texture={model.has_texture}"
            )
        enc = int(encoder_size or image_size)
        if enc % 16:
            raise ValueError(f"encoder_size: expected a multiple of 16 (four stride-2 stages), got {enc}")
        self.image_size, self.encoder_size = int(image_size), enc
        self.encoder = fnn.build(
            "sir_encoder", n_id=model.n_id, n_exp=model.n_exp, depth=depth, channels=tuple(channels),
            input_size=(enc, enc), hidden=hidden, n_tex=albedo_dim,
        )  # fmt: skip
        for tail in (
            self.encoder.id_tail,
            self.encoder.other_tail,
        ):  # start at the mean face, frontal, centred
            nn.init.zeros_(tail[-1].weight)
            nn.init.zeros_(tail[-1].bias)
        self.albedo_decoder = fnn.build(
            "sir_albedo_decoder", latent_dim=albedo_dim, uv_size=(uv_size, uv_size),
            channels=tuple(albedo_channels), fusion_channels=albedo_fusion,
        )  # fmt: skip
        self.confnet = fnn.build("sir_confnet", nf=confnet_nf, zdim=confnet_zdim)
        with torch.no_grad():
            mean_uv = render_uv(model.tex_mean[None].float(), model.uv, model.triangles, uv_size)
            used = render_uv(
                torch.ones_like(model.tex_mean[None, :, :1]).float(), model.uv, model.triangles, uv_size
            )
        self.register_buffer("mean_albedo", mean_uv, persistent=False)
        self.register_buffer("uv_mask", (used > 0.5).float(), persistent=False)
        s0 = float(init_scale) * image_size / 224.0
        centre = model.landmarks(model.mean[None].float())[0].mean(0)
        t0 = torch.tensor(
            [image_size / 2.0 - s0 * float(centre[0]), image_size / 2.0 + s0 * float(centre[1])]
        )
        self.register_buffer("t0", t0, persistent=False)
        self.s0 = s0
        self.sizes = (model.n_exp, 7, 27)

    # -- pieces
    def encode(self, images: Tensor) -> dict[str, Tensor]:
        """``[N,3,S,S]`` in [0, 1] -> ``{id, exp, tex, pose, light}`` (module docstring)."""
        x = images
        if x.shape[-1] != self.encoder_size or x.shape[-2] != self.encoder_size:
            x = F.interpolate(
                x, size=(self.encoder_size,) * 2, mode="bilinear", align_corners=False, antialias=True
            )
        out = self.encoder((x * 255.0 - 127.5) / 128.0)
        light = out["light"].clone()
        light[:, 0::9] = light[:, 0::9] + AMBIENT
        return {"id": out["id"], "exp": out["exp"], "tex": out["tex"], "pose": out["pose"], "light": light}

    def rotation(self, pose: Tensor) -> Tensor:
        q = pose[:, :4] + pose.new_tensor([1.0, 0.0, 0.0, 0.0])
        return quaternion_to_matrix(q)

    def angles(self, pose: Tensor) -> Tensor:
        """Euler angles (pitch, yaw, roll) ``[N,3]`` (rad) of the pose's rotation (Eq. 19's alpha, beta,
        gamma)."""
        return matrix_to_euler(self.rotation(pose))

    def camera(self, pose: Tensor) -> WeakPerspective:
        scale = self.s0 * torch.exp(pose[:, 6])
        t2d = self.t0.to(pose) + pose[:, 4:6] * (self.image_size / 2.0)
        return WeakPerspective(scale, self.rotation(pose), t2d)

    def albedo(self, tex: Tensor) -> tuple[Tensor, Tensor]:
        """UV albedo ``A = A_mean + R`` and the residual ``R`` (``[N,3,U,U]``)."""
        residual = self.albedo_decoder(tex)
        return self.mean_albedo.to(residual) + residual, residual

    def confidence(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """ConfNet's ``sigma`` maps for the pixel and the perceptual loss (``[N,1,64,64]``,
        ``[N,1,16,16]``)."""
        x = images
        if x.shape[-2:] != (64, 64):
            x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
        return self.confnet(x * 2.0 - 1.0)
