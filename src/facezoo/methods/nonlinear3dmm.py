"""High-fidelity nonlinear 3DMM (Tran, Liu & Liu, CVPR 2019; ``../shared/papers/nonlinear3dmm.txt``), building
on the nonlinear 3DMM of Tran & Liu (CVPR 2018, [44, 45]).

**Model** (§3.2-§3.4, Fig. 2-3; networks in :mod:`facezoo.nn.nonlinear3dmm`). An encoder E reads the crop and
gives the shape latent f_S (l_S = 320), the albedo latent f_A (l_A = 320), the projection M (2x4, weak
perspective) and the SH lighting L (27). Decoders D_S, D_A map the latents to UV maps (192 x 224 in the paper;
``uv_size``), each with the true element and its proxy: ``S = S~ + dS``, ``A = A~ + dA`` (two global-local
branches per decoder; the part boxes of the local pathway come from the model's landmarks in UV,
:func:`facezoo.morphable.uv.uv_part_boxes`). The UV shape map holds offsets from the mean shape in units of
``shape_unit`` mm; vertices are read from it at the model's texture coordinates
(:func:`facezoo.render.sample_uv`), so any facezoo model with UVs works (a model without gets the cylindrical
unwrap of its mean). Albedo maps are ``(1 + tanh) / 2`` in [0, 1]. Images are rendered by the shared
:class:`~facezoo.render.MeshRenderer` with the UV albedo as a texture (any UV size, bilinear lookup), SH
lighting, and the scaled-orthographic camera nearest to M (:func:`camera_from_projection`).

**Unsupervised stage** (``stage: unsupervised``), Eq. 15 + Eq. 7 + Eq. 13 + Eq. 14 + Eq. 16::

    L = sum_{(s,a) in {(S~,A~), (S~,A), (S,A~)}} w_rec [L_rec^i + w_per L_rec^f](I^(s, a), I)
        + w_lan L_lan + w_sym L_sym(A~) + w_con L_con(A~) + w_smo L_smo(S~)
        + w_res (||dS||_1 + ||dA||_1) + w_res_sym L_res-sym(dS_z)

- ``L_rec^i`` Eq. 4, l2,1 over the pixels the estimated mesh covers (:func:`facezoo.losses.photometric_loss`:
  mean per-pixel RGB L2 distance over the binary rendered coverage); ``L_rec^f`` Eq. 5 with a VGG-16 of
  user-given weights (``perceptual_weights``; without them the term is off, logged as 0, and the run says so
  once). I^(S, A) is rendered only for the output (§3.3: "we intentionally left out the loss ...
  on I^(S, A)").
- ``L_lan`` Eq. 7, squared 2D landmark distance of the true shape's 68 landmark vertices through M; as in
  [44, 45] it "is only applied on E": the decoder's weights get no gradient from it (a second D_S forward with
  detached weights, :class:`~facezoo.methods.nonlinear3dmm_ops.DetachedCall`).
- The regularisers act on the proxies only (Eq. 13): albedo symmetry (Eq. 8), chromaticity-weighted albedo
  constancy over 4-neighbourhoods (Eq. 9; the chromaticity of the input image unwrapped into UV through the
  current fit, :func:`facezoo.render.unwrap_texture`), Laplacian shape smoothness (Eq. 10); the residuals get
  the L1 of Eq. 14 and the soft symmetry of Eq. 16 on the depth residual over the texels whose estimated
  normal faces away from the camera (T). Formulas and choices: :mod:`facezoo.losses.uv_regularisers`.
- ``proxies=False`` is the model without proxies (Tran & Liu 2018 + GL, Eq. 11-12): the loss renders I^(S, A)
  and regularises S and A themselves.

**Pretraining** (``stage: pretrain``; §4: "a pretrain stage with supervised losses" as [45]): Tran & Liu
2018's supervised losses on a labelled face: the projection ``||M - M_bar||^2`` (in M's units, ``s_0`` for the
linear part and half the crop for the translation; ``M_bar`` the least-squares affine projection of the
ground-truth landmark vertices onto the 2D landmarks, :func:`fit_projection`), the shape ``||S - S_bar||^2``
per vertex in ``shape_unit`` (ground truth ``params.vertices``, or the model's ``id``/``exp`` when the data
give coefficients of the same model, as 300W-LP's), the albedo ``||A - A_bar||_1`` over the face texels
(``A_bar`` the model's texture of ``params.tex`` rasterised into UV; off for data without it) and the landmark
loss.
Shape and albedo terms apply to both the proxy and the true element (their mean). The unsupervised stage
starts from ``pretrain_checkpoint`` (encoder and decoders, loaded strictly; without one: a warning and fresh
networks).

**Weights** (§4: "λ values are selected to bring losses to similar magnitudes"; the paper lists none; ours,
chosen the same way on synthetic faces): ``w_rec 1`` per pairing; ``w_per 0.1`` (Eq. 5 on VGG features is
O(1) where l2,1 is O(0.1)); ``w_lan 1.6e-3`` on 224-px units (a 5 px error costs 0.04, the l2,1 of a good
fit); ``w_sym 1`` (Eq. 12 has no λ on it); ``w_con 1``; ``w_smo 0.05`` per mm (the mean shape's own Laplacian
is ~0.1 mm per texel, a noisy surface ~1 mm); ``w_res 0.1`` (the paper calls Eq. 14 "a weak regularization":
a residual of 1 mm or 0.05 colour costs ~0.005); ``w_res_sym 0.5``. Pretraining: ``w_pose 1``, ``w_shape 1``,
``w_albedo 1`` (each ~0.1-1 at the start). Adam, learning rate 1e-3 (§4).

Where the paper is silent (our choices): M is regressed as an offset from a frontal projection
(``M = M_0 + units * p``, ``s_0 = face_scale * image_size / 224`` px/mm) with a zero-initialised head, so
training starts at the centred frontal mean face (the shape decoders' output layers start at zero); light
starts at 0.8 ambient (zero head, as the synthetic data's light); the encoder reads [0, 1] RGB; Eq. 4's sums
run over the batch; ``neutral_shape`` is the decoded shape (the model has no separate expression code).

**Paper targets** (Tran et al. 2019, §4.2): texture representation power on AFLW2000-3D, l2,1 0.0363 (ours
with GL + proxy; 0.0386 GL only; 0.0427 Tran & Liu 2018; 0.1287 linear); shape representation power on ten
BFM scans, NME by inter-ocular distance 0.0139 (0.0146 [45], 0.0241 linear). facezoo's measurements on
synthetic faces: ``benchmarks/nonlinear3dmm.py`` and the README.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

import facezoo.nn as fnn
from facezoo.geometry.mesh import vertex_normals
from facezoo.losses import landmark_loss, masked_mean, photometric_loss
from facezoo.losses.feature_reconstruction import FeatureReconstructionLoss
from facezoo.losses.uv_regularisers import (
    albedo_constancy,
    albedo_symmetry,
    chromaticity,
    residual_magnitude,
    residual_soft_symmetry,
    shape_smoothness,
)
from facezoo.methods.base import FaceMethod
from facezoo.methods.nonlinear3dmm_ops import (
    DetachedCall,
    base_projection,
    camera_from_projection,
    fit_projection,
    loss_pairings,
    projection_units,
    regularised_elements,
    uv_layout,
)
from facezoo.methods.reconstruction import FaceReconstruction
from facezoo.methods.views import flatten_views, num_views
from facezoo.render.uv import render_uv, sample_uv, unwrap_texture

#: initial SH ambient per colour channel (the synthetic data's light, Deep3DFace's convention).
AMBIENT = 0.8


@dataclass
class Decoded:
    """What the decoders give for a batch: per element kind (``"true"``, ``"proxy"``) the UV shape offsets
    ``[B,3,H,W]`` (units of ``shape_unit``) and the UV albedo ``[B,3,H,W]`` in [0, 1]; the residuals (``None``
    without proxies): ``shape_residual`` (offset units) and ``albedo_residual`` (colour units)."""

    shape: dict[str, Tensor]
    albedo: dict[str, Tensor]
    shape_residual: Tensor | None
    albedo_residual: Tensor | None


class NonlinearFace3DMM(FaceMethod):
    """The high-fidelity nonlinear 3DMM (see the module docstring for the paper mapping and our choices).

    Args:
        morphable_model: model spec; the decoders live on its UV layout and mesh (``procedural`` for synthetic
            faces; the paper: the BFM face region, e.g. ``models/bfm09_3ddfa.h5`` with 3DDFA's UVs).
        stage: ``"pretrain"`` (supervised) or ``"unsupervised"``.
        image_size: encoder input side (a multiple of 16).
        uv_size: ``(H, W)`` of the UV maps (paper 192 x 224).
        shape_dim, albedo_dim: l_S, l_A (320).
        encoder_channels: the encoder's 13 trunk widths (None: the paper's).
        decoder_channels: global pathway widths (6), ``local_channels`` (4), ``fusion_channels``.
        local_pathway: the four local part networks (False: global pathway only, the "Nonlinear" row of
            Table 1).
        proxies: proxy + residual branches (False: one branch per decoder, Eq. 11-12).
        part_margin: growth of the part boxes around their landmarks (fraction of the box per side).
        shape_unit: mm per unit of the shape decoder's output.
        face_scale: px per mm of the initial projection for a 224 crop (1.015: a face 1 m from a 1015 px
            camera, the synthetic data's).
        pretrain_checkpoint: ``stage: unsupervised``: a checkpoint of the pretraining run.
        perceptual_net, perceptual_weights, perceptual_layers: Eq. 5's network (a :mod:`facezoo.nn` VGG),
            its ``.pth`` (None: the term is off) and layers.
        w_rec, w_per, w_lan, w_sym, w_con, w_smo, w_res, w_res_sym: unsupervised weights (module docstring).
        con_alpha, con_p: Eq. 9's alpha and p (15, 0.8).
        w_pose, w_shape, w_albedo: pretraining weights.
        lr: Adam learning rate (1e-3, §4).
        renderer_backend, eval_mask, max_nonfinite_steps: see :class:`~facezoo.methods.base.FaceMethod`.
    """

    stages = ("pretrain", "unsupervised")
    required_keys = {"fit": ("image", "landmarks68"), "predict": ("image",)}

    def __init__(
        self,
        morphable_model: str = "procedural",
        stage: Literal["pretrain", "unsupervised"] = "pretrain",
        image_size: int = 128,
        uv_size: tuple[int, int] = (192, 224),
        shape_dim: int = 320,
        albedo_dim: int = 320,
        encoder_channels: tuple[int, ...] | None = None,
        decoder_channels: tuple[int, ...] = (320, 256, 192, 128, 64, 32),
        local_channels: tuple[int, ...] = (128, 64, 32, 32),
        fusion_channels: int = 32,
        local_pathway: bool = True,
        proxies: bool = True,
        part_margin: float = 0.25,
        shape_unit: float = 10.0,
        face_scale: float = 1.015,
        pretrain_checkpoint: str | None = None,
        perceptual_net: str = "vgg16_features",
        perceptual_weights: str | None = None,
        perceptual_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
        w_rec: float = 1.0,
        w_per: float = 0.1,
        w_lan: float = 1.6e-3,
        w_sym: float = 1.0,
        w_con: float = 1.0,
        w_smo: float = 0.05,
        w_res: float = 0.1,
        w_res_sym: float = 0.5,
        con_alpha: float = 15.0,
        con_p: float = 0.8,
        w_pose: float = 1.0,
        w_shape: float = 1.0,
        w_albedo: float = 1.0,
        lr: float = 1e-3,
        renderer_backend: str = "auto",
        eval_mask: str | None = "front",
        max_nonfinite_steps: int = 10,
    ) -> None:
        super().__init__(
            morphable_model, image_size, renderer_backend, eval_mask, stage=stage,
            max_nonfinite_steps=max_nonfinite_steps,
        )  # fmt: skip
        self.save_hyperparameters()
        uv_size = tuple(int(x) for x in uv_size)
        if len(uv_size) != 2 or min(uv_size) < 8:
            raise ValueError(f"uv_size: expected (H, W) with both >= 8, got {uv_size!r}")
        if image_size % 16:
            raise ValueError(f"image_size: the encoder needs a multiple of 16, got {image_size}")
        if not shape_unit > 0 or not face_scale > 0:
            raise ValueError(f"shape_unit and face_scale must be positive, got {shape_unit}, {face_scale}")
        model = self.morphable
        self.uv_size = uv_size
        self.proxies = bool(proxies)
        layout = uv_layout(model, uv_size, part_margin)
        self.register_buffer("uv", layout.uv, persistent=False)
        self.register_buffer("uv_mask", layout.mask, persistent=False)
        self.register_buffer("uv_mean", layout.mean, persistent=False)
        self.part_boxes = layout.boxes if local_pathway else ()
        enc = fnn.N3DMMEncoderConfig(input_size=image_size, shape_dim=shape_dim, albedo_dim=albedo_dim)
        if encoder_channels is not None:
            enc = fnn.N3DMMEncoderConfig(
                input_size=image_size, channels=tuple(encoder_channels), shape_dim=shape_dim,
                albedo_dim=albedo_dim,
            )  # fmt: skip
        self.encoder = fnn.N3DMMEncoder(enc)
        with torch.no_grad():  # start at the centred frontal mean face under ambient light
            for head in (self.encoder.pose, self.encoder.light):
                head.weight.zero_()
                head.bias.zero_()
            self.encoder.light.bias[0::9] = AMBIENT
        self.shape_decoder = self._decoder(
            shape_dim, "none", decoder_channels, local_channels, fusion_channels
        )
        self.albedo_decoder = self._decoder(
            albedo_dim, "tanh", decoder_channels, local_channels, fusion_channels
        )
        with torch.no_grad():  # the shape starts at the mean face: zero offsets (the weights still learn)
            for m in self.shape_decoder.modules():
                if isinstance(m, fnn.GlobalLocalDecoder):
                    m.fusion[-1].weight.zero_()
                    m.fusion[-1].bias.zero_()
        self._landmark_shape = DetachedCall(self.shape_decoder)
        self.register_buffer("pose_scale", torch.tensor(face_scale * image_size / 224.0), persistent=False)
        self.register_buffer("lm_valid", model.landmark_valid.float(), persistent=False)
        if perceptual_weights:
            net = fnn.load_backbone_weights(
                fnn.build(perceptual_net), perceptual_weights, exclude=("classifier.",)
            )
            self.register_external("feature_loss", FeatureReconstructionLoss(net, perceptual_layers))
        if stage == "unsupervised":
            self.load_stage_checkpoint(
                pretrain_checkpoint, ("encoder", "shape_decoder", "albedo_decoder"), "pretrain_checkpoint"
            )

    def _decoder(self, latent: int, activation: str, channels, local_channels, fusion: int):
        fields = dict(
            latent_dim=latent, out_channels=3, uv_size=self.uv_size, channels=tuple(channels),
            local_channels=tuple(local_channels), local_boxes=self.part_boxes, fusion_channels=fusion,
        )  # fmt: skip
        if self.proxies:
            return fnn.ProxyResidualDecoder(fnn.ProxyDecoderConfig(activation=activation, **fields))
        dec = fnn.GlobalLocalDecoder(fnn.GlobalLocalConfig(activation="none", **fields))
        torch.nn.init.normal_(dec.fusion[-1].weight, std=0.02)  # as ProxyResidualDecoder's proxy
        return dec

    # -- setup
    def on_fit_start(self) -> None:
        if self.stage == "unsupervised" and "feature_loss" not in self._externals and self.hparams.w_per:
            rank_zero_info(
                "NonlinearFace3DMM: no perceptual_weights given, so the perceptual loss (Eq. 5) is off "
                "(train/loss_per is logged as 0)."
            )

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)

    # -- forward pieces
    def projection(self, pose: Tensor) -> Tensor:
        """The encoder's pose output ``[B,8]`` -> ``M [B,2,4]`` (pixels of the crop)."""
        b = pose.shape[0]
        m0 = base_projection(b, self.image_size, float(self.pose_scale), pose)
        return m0 + projection_units(self.image_size, float(self.pose_scale), pose) * pose.view(b, 2, 4)

    def decode(self, f_s: Tensor, f_a: Tensor) -> Decoded:
        """Run D_S, D_A on the latents (module docstring for the units)."""
        s, a = self.shape_decoder(f_s), self.albedo_decoder(f_a)
        if not self.proxies:
            albedo = (1 + torch.tanh(a)) / 2
            return Decoded({"true": s, "proxy": s}, {"true": albedo, "proxy": albedo}, None, None)
        a_full, a_proxy = (1 + a["full"]) / 2, (1 + a["proxy"]) / 2
        return Decoded(
            {"true": s["full"], "proxy": s["proxy"]}, {"true": a_full, "proxy": a_proxy},
            s["residual"], a_full - a_proxy,
        )  # fmt: skip

    def decode_shape(self, f_s: Tensor) -> Tensor:
        """The true shape's UV offsets ``[B,3,H,W]`` of ``f_S`` (D_S only; representation-power fits)."""
        s = self.shape_decoder(f_s)
        return s["full"] if isinstance(s, dict) else s

    def decode_albedo(self, f_a: Tensor) -> Tensor:
        """The true UV albedo ``[B,3,H,W]`` in [0, 1] of ``f_A`` (D_A only; representation-power fits)."""
        a = self.albedo_decoder(f_a)
        return (1 + a["full"]) / 2 if isinstance(a, dict) else (1 + torch.tanh(a)) / 2

    def vertices_from_uv(self, offsets: Tensor) -> Tensor:
        """UV shape offsets ``[B,3,H,W]`` -> vertices ``[B,V,3]`` (mm): the mean plus the offsets read at the
        model's texture coordinates (exact mean at zero offsets, no bleeding of texels outside the charts)."""
        return self.morphable.mean.to(offsets) + self.hparams.shape_unit * sample_uv(offsets, self.uv)

    def shape_map(self, offsets: Tensor) -> Tensor:
        """UV position map ``[B,3,H,W]`` (mm) of the shape: mean + offsets on the face texels."""
        return (self.uv_mean + self.hparams.shape_unit * offsets) * self.uv_mask

    def encode(self, images: Tensor) -> dict[str, Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"image: expected [B,3,H,W] or [B,V,3,H,W], got {tuple(images.shape)}")
        return self.encoder(images)

    def render(self, vertices: Tensor, albedo_uv: Tensor, camera, light: Tensor, background=None, aa=True):
        """Render a mesh with a UV albedo map through the shared renderer (textured path)."""
        return self.renderer(
            vertices, self.morphable.triangles, camera, texture=albedo_uv, uv=self.uv, lighting=light,
            background=background, antialias=aa,
        )  # fmt: skip

    def reconstruct(self, batch: Mapping[str, Any], render: bool = False) -> FaceReconstruction:
        """One row per image: the decoded true shape S and albedo A (``colours``), M's camera, and in
        ``params`` the latents (``id`` = f_S, ``tex`` = f_A), ``pose`` (M, 8 values row-major), ``light`` and
        the UV maps ``uv_shape [N,3,H,W]`` (mm) and ``uv_albedo [N,3,H,W]`` ([0, 1]); ``render=True`` adds
        I^(S, A)."""
        flat = flatten_views(batch)
        codes = self.encode(flat["image"])
        dec = self.decode(codes["id"], codes["tex"])
        m = self.projection(codes["pose"])
        cam = camera_from_projection(m)
        vertices = self.vertices_from_uv(dec.shape["true"])
        lm3d = self.morphable.landmarks(vertices)
        params = {
            "id": codes["id"], "tex": codes["tex"], "pose": m.flatten(1), "light": codes["light"],
            "uv_shape": self.shape_map(dec.shape["true"]), "uv_albedo": dec.albedo["true"],
        }  # fmt: skip
        meta = {k: flat[k] for k in ("index", "path", "identity") if k in flat}
        rec = FaceReconstruction(
            vertices=vertices, triangles=self.morphable.triangles, landmarks3d=lm3d,
            landmarks2d=cam.project(lm3d), params=params, camera=cam,
            colours=sample_uv(dec.albedo["true"], self.uv), meta=meta, views=num_views(batch),
        )  # fmt: skip
        if render:
            out = self.render(vertices, dec.albedo["true"], cam, codes["light"])
            rec.image, rec.mask = out.image, out.mask
        return rec

    def neutral_shape(self, rec: FaceReconstruction) -> Tensor:
        """The decoded shape ``[N,V,3]`` (mm): the model has no separate expression code (module
        docstring)."""
        return rec.vertices.detach()

    # -- losses
    def training_losses(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        flat = flatten_views(batch)
        codes = self.encode(flat["image"])
        dec = self.decode(codes["id"], codes["tex"])
        m = self.projection(codes["pose"])
        if self.stage == "pretrain":
            return self.pretrain_losses(flat, codes, dec, m)
        return self.unsupervised_losses(flat, codes, dec, m)

    def _landmark_term(self, flat, codes, m, vertices=None) -> Tensor:
        """Eq. 7 in 224-px units; ``vertices=None``: the true shape decoded with detached decoder weights."""
        if vertices is None:
            s = self._landmark_shape(codes["id"])
            offsets = s["full"] if isinstance(s, dict) else s
            vertices = self.vertices_from_uv(offsets)
        cam = camera_from_projection(m)
        pred = cam.project(self.morphable.landmarks(vertices))
        return landmark_loss(
            pred, flat["landmarks68"].to(pred), self.lm_valid, scale=224.0 / self.image_size,
            valid=self.valid_rows(flat, "image", "landmarks68"),
        )  # fmt: skip

    def loss_weights(self) -> dict[str, float]:
        h = self.hparams
        if self.stage == "pretrain":
            return {"pose": h.w_pose, "shape": h.w_shape, "albedo": h.w_albedo, "lan": h.w_lan}
        w = {"rec": h.w_rec, "per": h.w_rec * h.w_per, "lan": h.w_lan, "sym": h.w_sym, "con": h.w_con,
             "smo": h.w_smo}  # fmt: skip
        if self.proxies:
            w.update(res=h.w_res, res_sym=h.w_res_sym)
        return w

    def unsupervised_losses(self, flat, codes, dec: Decoded, m: Tensor) -> dict[str, Tensor]:
        """Eq. 15 (or Eq. 11 without proxies) + Eq. 7 + the regularisers (module docstring)."""
        image = flat["image"]
        rows = self.valid_rows(flat, "image")
        cam = camera_from_projection(m)
        light = codes["light"]
        verts = {k: self.vertices_from_uv(v) for k, v in dec.shape.items()}
        feature_loss = self._externals.get("feature_loss")
        terms: dict[str, Tensor] = {"rec": image.new_zeros(()), "per": image.new_zeros(())}
        visible = None
        for shape_kind, albedo_kind in loss_pairings(self.proxies):
            out = self.render(
                verts[shape_kind], dec.albedo[albedo_kind], cam, light, background=image, aa=False
            )
            terms["rec"] = terms["rec"] + photometric_loss(image, out.image, out.mask, valid=rows)
            if feature_loss is not None:
                terms["per"] = terms["per"] + feature_loss(out.image, image, valid=rows)
            if shape_kind == "true":
                visible = out.visible
        terms["lan"] = self._landmark_term(flat, codes, m)
        which = regularised_elements(self.proxies)
        mask = self.uv_mask
        with torch.no_grad():  # the input's chromaticity in UV through the current fit (Eq. 9's reference)
            tex, seen = unwrap_texture(
                image, cam.detach().project(verts["true"].detach()), self.uv, self.morphable.triangles,
                self.uv_size, visible=visible,
            )  # fmt: skip
        terms["sym"] = albedo_symmetry(dec.albedo[which["sym"]], mask, valid=rows)
        terms["con"] = albedo_constancy(
            dec.albedo[which["con"]], chromaticity(tex), mask * seen, valid=rows,
            alpha=self.hparams.con_alpha, p=self.hparams.con_p,
        )  # fmt: skip
        terms["smo"] = shape_smoothness(self.shape_map(dec.shape[which["smo"]]), mask, valid=rows)
        if self.proxies:
            terms["res"] = residual_magnitude(dec.shape_residual, mask, rows) + residual_magnitude(
                dec.albedo_residual, mask, rows
            )
            with torch.no_grad():  # T: texels whose estimated normal faces away from the camera
                normals = vertex_normals(cam.view(verts["true"].detach()), self.morphable.triangles)
                facing = render_uv(normals[..., 2:3], self.uv, self.morphable.triangles, self.uv_size)
                occluded = (facing <= 0).to(image.dtype) * mask
            terms["res_sym"] = residual_soft_symmetry(dec.shape_residual[:, 2:3], occluded, mask, rows)
        weights = self.loss_weights()
        terms["total"] = sum(weights[k] * v for k, v in terms.items())
        return terms

    def pretrain_losses(self, flat, codes, dec: Decoded, m: Tensor) -> dict[str, Tensor]:
        """Tran & Liu 2018's supervised losses (module docstring)."""
        gt = self._ground_truth_vertices(flat)
        rows = self.valid_rows(flat, "image", "landmarks68")
        model = self.morphable
        target_lm = flat["landmarks68"].to(gt)
        m_bar = fit_projection(model.landmarks(gt), target_lm, self.lm_valid)
        units = projection_units(self.image_size, float(self.pose_scale), m)
        terms: dict[str, Tensor] = {}
        terms["pose"] = masked_mean((((m - m_bar) / units) ** 2).flatten(1).mean(1), rows)
        kinds = ("true", "proxy") if self.proxies else ("true",)
        verts = {k: self.vertices_from_uv(dec.shape[k]) for k in kinds}
        unit = self.hparams.shape_unit
        shape_rows = self.valid_rows(flat, "image", "params")
        terms["shape"] = sum(
            masked_mean((((verts[k] - gt) / unit) ** 2).sum(-1).mean(-1), shape_rows) for k in kinds
        ) / len(kinds)
        params = flat.get("params") or {}
        if model.has_texture and isinstance(params.get("tex"), Tensor):
            with torch.no_grad():
                colours = model.texture(params["tex"].to(gt)).clamp(0, 1)
                target = render_uv(colours, self.uv, model.triangles, self.uv_size)
            terms["albedo"] = sum(
                residual_magnitude(dec.albedo[k] - target, self.uv_mask, shape_rows) for k in kinds
            ) / len(kinds)
        else:
            terms["albedo"] = m.new_zeros(())
        terms["lan"] = self._landmark_term(flat, codes, m, verts["true"])
        weights = self.loss_weights()
        terms["total"] = sum(weights[k] * v for k, v in terms.items())
        return terms

    def _ground_truth_vertices(self, flat: Mapping[str, Any]) -> Tensor:
        params = flat.get("params") if isinstance(flat.get("params"), Mapping) else {}
        model = self.morphable
        gt = params.get("vertices")
        if isinstance(gt, Tensor):
            if gt.shape[1:] != (model.n_vertices, 3):
                raise ValueError(
                    f"NonlinearFace3DMM pretraining: params['vertices'] {tuple(gt.shape)} do not match "
                    f"morphable_model={model.name!r} ({model.n_vertices} vertices); give the data's model"
                )
            return gt.to(self.uv_mean)
        ident = params.get("id")
        if isinstance(ident, Tensor) and ident.shape[-1] == model.n_id:
            exp = params.get("exp")
            exp = exp.to(self.uv_mean) if isinstance(exp, Tensor) and exp.shape[-1] == model.n_exp else None
            with torch.no_grad():
                return model(ident.to(self.uv_mean), exp)
        raise ValueError(
            "NonlinearFace3DMM stage 'pretrain' needs ground-truth shapes: batch params['vertices'] or "
            f"params['id'] (+ 'exp') of morphable_model={model.name!r}; got params keys {sorted(params)}"
        )
