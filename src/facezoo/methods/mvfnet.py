"""MVF-Net (Wu et al., CVPR 2019; ``../shared/papers/mvfnet.txt``): multi-view 3DMM regression.

**Paper target** (Table 1 v4 / Table 2, MICC Florence point-to-plane error after ICP, three-view triplets,
subjects 2 and 27 excluded): **1.220 mm** (± 0.247) indoor-cooperative and **1.228 mm** (± 0.236) indoor.

**Network** (§3.3, :class:`facezoo.nn.MVFNet`): a shared-weight encoder per view pooled to 512 features; a
per-view pose head ``P = (f, pitch, yaw, roll, t_x, t_y)`` (:mod:`facezoo.methods.mvfnet_pose` decodes it into
a weak-perspective camera, Eq. 2); the V concatenated features regress one identity + expression vector sized
from the morphable model (199 + 29 for the 3DDFA-crop BFM). Any number of views (``n_views``; the paper: 3).
One shape per set, repeated over the set's rows of the :class:`FaceReconstruction` (``views = V``).

**Supervised pretraining** (``stage: supervised``, §3.6.1, Eq. 6): ``L_sup = 0.1 L_landmark + 10 L_pose +
1 L_3DMM + 1 L_reg``. ``L_landmark``: mean squared 2D distance of the 68 projected landmarks in 224-pixel
units (MoFA-style sparse term); ``L_pose``: mean squared error of the normalised pose vectors against the
ground-truth camera (300W-LP's ``params["pose"]``, or the weak-perspective fit of the ground-truth mesh's
landmarks, :func:`~facezoo.methods.mvfnet_pose.ground_truth_camera`); ``L_3DMM``: squared L2 distance of the
(id, exp) coefficients to the labels (summed over coefficients, mean over sets); ``L_reg``: MoFA's
statistical prior, the mean squared coefficient (our normalisation: averaged over the coefficients, so that
with the paper's equal weights it cannot halve the supervised coefficients, as a summed prior would).

**Self-supervised training** (``stage: selfsupervised``, §3.4-3.6.2, Eq. 9): ``L = 1 L_landmark + 10 L_photo
+ 0.1 L_align`` over the paper's four pairs ``(I_B, I_{A->B}), (I_B, I_{C->B}), (I_A, I_{B->A}), (I_C,
I_{B->C})`` with B the frontal ``anchor_view`` (for V views: the anchor with each other view, both ways).
Per pair:

* texture sampling (§3.4, :func:`facezoo.render.sampling.sample_vertex_colours`): per-vertex colours from the
  source image at the vertices' projections (bilinear), z-buffer visibility in the source;
* the rendered projection ``I_{S->T}`` through the shared renderer
  (:func:`~facezoo.render.sampling.render_projection`, barycentric interpolation, antialiased silhouettes);
* visibility masks (:mod:`facezoo.methods.mvfnet_masks`): rendered ``M_{S->T}`` (seen in S, minus the
  landmark regions of the projected 3D landmarks), observed ``M_T^{(S)}`` (the mesh's coverage refined by the
  domain-transform filter guided by ``I_T``, minus the regions of the detected 2D landmarks);
* ``L_photo`` (Eq. 7) over the union of the masks and ``L_align`` (Eq. 8), bidirectional flow of a frozen
  estimator with the outside of each mask filled with an easy-to-track texture
  (:mod:`facezoo.losses.multiview`). The flow is PWC-Net (:class:`facezoo.nn.PWCNet`) with
  ``flow_weights``, otherwise the weight-free pyramidal Horn–Schunck flow
  (:class:`facezoo.nn.HornSchunckFlow`), said once at fit start.

Training setup (§4.2): Adam, batch 12, 224² crops with a 0-5 % random box shift (the datamodules'), supervised
10 epochs at 1e-5 on 300W-LP triplets, self-supervised 10 epochs at 1e-6 on Multi-PIE triplets
(``zoo/mvfnet-supervised.yaml``, ``zoo/mvfnet.yaml``); the self-supervised stage starts from
``supervised_checkpoint``.

Where the paper is silent (our choices): the pose normalisation (:mod:`~facezoo.methods.mvfnet_pose`); the
loss normalisations above and in :mod:`facezoo.losses.multiview`; the landmark regions of the masks
(:mod:`~facezoo.methods.mvfnet_masks`); Eq. 9 has no coefficient prior, so ``self_w_reg`` defaults to 0; the
domain-transform parameters (``mask_sigma_s`` 8 px at 224, ``mask_sigma_r`` 0.1); detected landmarks missing
on a row (``valid``) fall back to the projected model landmarks for that row's observed mask; the renders'
background is black.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

import facezoo.nn as fnn
from facezoo.losses import landmark_loss, masked_mean
from facezoo.losses.multiview import alignment_loss, trackable_texture, union_photometric_loss
from facezoo.methods.base import FaceMethod, linear_neutral_shape
from facezoo.methods.mvfnet_masks import landmark_region_mask, oblique_side, observed_mask
from facezoo.methods.mvfnet_pose import decode_pose, encode_pose, ground_truth_camera, reference_scale
from facezoo.methods.reconstruction import FaceReconstruction
from facezoo.methods.views import flatten_views, num_views
from facezoo.render.sampling import render_projection, sample_vertex_colours


def view_pairs(n_views: int, anchor: int = 0) -> list[tuple[int, int]]:
    """The (observed, source) view pairs of the self-supervised losses: the anchor with every other view,
    both ways (the paper's four pairs for three views with the frontal anchor B).

    Example:
        >>> view_pairs(3, anchor=0)       # (B, A->B), (A, B->A), (B, C->B), (C, B->C) with B = view 0
        [(0, 1), (1, 0), (0, 2), (2, 0)]
    """
    if not 0 <= anchor < n_views:
        raise ValueError(f"anchor_view: expected 0 <= anchor_view < n_views={n_views}, got {anchor}")
    pairs = []
    for v in range(n_views):
        if v != anchor:
            pairs += [(anchor, v), (v, anchor)]
    return pairs


class MVFNet(FaceMethod):
    """MVF-Net (module docstring: the paper mapping, the target numbers and our choices).

    Args:
        morphable_model: morphable-model spec (the paper: the 3DDFA-crop BFM, ``facezoo model convert
            --format bfm-3ddfa``).
        stage: ``"supervised"`` (Eq. 6) or ``"selfsupervised"`` (Eq. 9).
        n_views: views per sample (3).
        encoder: ``"official"`` (the released 7-conv BN encoder) or ``"vgg"`` (VGG-Face's convolutions).
        width_divisor, hidden: network size (:class:`facezoo.nn.MVFNetConfig`; 1 and 256 as released).
        encoder_weights: optional ``.pth`` of VGG-Face / VGG-16 convolutions (``encoder: vgg``).
        supervised_checkpoint: ``stage: selfsupervised``: the supervised run's checkpoint (``net.*`` loaded
            strictly); ``None``: a fresh network, with a warning.
        image_size: crop side (224).
        anchor_view: the frontal view of each set (facezoo's triplets: 0).
        rotation_convention: Euler order of the pose angles (``"zyx"``: ``R = Rz Ry Rx``).
        w_landmark, w_pose, w_3dmm, w_reg: Eq. 6 (0.1, 10, 1, 1).
        self_w_landmark, self_w_photo, self_w_align: Eq. 9 (1, 10, 0.1); self_w_reg: our optional prior (0).
        flow_weights: PWC-Net weights (NVlabs ``pwc_net.pth.tar``) for ``L_align``; ``None``: Horn–Schunck.
        flow_kwargs: :class:`facezoo.nn.HornSchunckConfig` fields for the weight-free flow.
        mask_sigma_s, mask_sigma_r: domain-transform filter of the observed masks (px at 224; guide units).
        lr: Adam learning rate (1e-5 supervised, 1e-6 self-supervised in the paper).
        renderer_backend, eval_mask, max_nonfinite_steps: :class:`~facezoo.methods.base.FaceMethod`.
    """

    stages = ("supervised", "selfsupervised")
    required_keys = {"fit": ("image", "landmarks68"), "predict": ("image",)}

    def __init__(
        self,
        morphable_model: str = "procedural",
        stage: Literal["supervised", "selfsupervised"] = "supervised",
        n_views: int = 3,
        encoder: Literal["official", "vgg"] = "official",
        width_divisor: int = 1,
        hidden: int = 256,
        encoder_weights: str | None = None,
        supervised_checkpoint: str | None = None,
        image_size: int = 224,
        anchor_view: int = 0,
        rotation_convention: str = "zyx",
        w_landmark: float = 0.1,
        w_pose: float = 10.0,
        w_3dmm: float = 1.0,
        w_reg: float = 1.0,
        self_w_landmark: float = 1.0,
        self_w_photo: float = 10.0,
        self_w_align: float = 0.1,
        self_w_reg: float = 0.0,
        flow_weights: str | None = None,
        flow_kwargs: dict[str, Any] | None = None,
        mask_sigma_s: float = 8.0,
        mask_sigma_r: float = 0.1,
        lr: float = 1e-5,
        renderer_backend: str = "auto",
        eval_mask: str | None = "front",
        max_nonfinite_steps: int = 10,
    ) -> None:
        super().__init__(
            morphable_model, image_size, renderer_backend, eval_mask, stage=stage,
            max_nonfinite_steps=max_nonfinite_steps,
        )  # fmt: skip
        self.save_hyperparameters()
        if not isinstance(n_views, int) or n_views < 1:
            raise ValueError(f"n_views: expected a positive int, got {n_views!r}")
        self.pairs = view_pairs(n_views, anchor_view) if n_views > 1 else []
        model = self.morphable
        self.net = fnn.build(
            "mvfnet", n_id=model.n_id, n_exp=model.n_exp, n_views=n_views, encoder=encoder,
            width_divisor=width_divisor, hidden=hidden,
        )  # fmt: skip
        if encoder_weights:
            if encoder != "vgg":
                raise ValueError("encoder_weights: VGG-Face / VGG-16 weights need encoder: vgg")
            fnn.load_backbone_weights(self.net.encoder, encoder_weights, exclude=("classifier.",))
        with torch.no_grad():
            self.s0 = reference_scale(model.landmarks(model.mean[None])[0], image_size)
        if stage == "selfsupervised":
            self.load_stage_checkpoint(supervised_checkpoint, ("net",), "supervised_checkpoint")
            if flow_weights:
                flow = fnn.load_backbone_weights(fnn.build("pwcnet"), flow_weights)
            else:
                flow = fnn.HornSchunckFlow(fnn.HornSchunckConfig(**(flow_kwargs or {})))
            flow.eval().requires_grad_(False)  # frozen (§4.2), not trained, not in checkpoints
            self.register_external("flow", flow)
        self._said_no_pose = False

    def on_fit_start(self) -> None:
        if self.stage == "selfsupervised" and not self.hparams.flow_weights:
            rank_zero_info(
                "MVFNet: no flow_weights given, so the alignment loss (Eq. 8) uses the weight-free pyramidal "
                "Horn-Schunck flow instead of PWC-Net."
            )

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)

    # -- forward
    def reconstruct(self, batch: Mapping[str, Any], render: bool = False) -> FaceReconstruction:
        """One row per image (``B*V`` rows, ``views = V``) sharing their set's shape; per-row cameras. With
        ``render=True`` each row's mesh is textured from its own image (§3.4) and rendered back."""
        images = batch["image"]
        v = num_views(batch)
        if images.ndim == 4:
            images = images[:, None]
        if v != self.hparams.n_views:
            raise ValueError(
                f"MVFNet was built for n_views={self.hparams.n_views}; the batch has image "
                f"{tuple(batch['image'].shape)} ({v} view(s)): use a datamodule with that many views per "
                "sample"
            )
        out = self.net(images)
        rows = lambda x: x.repeat_interleave(v, dim=0)  # noqa: E731 (one shape per set -> its rows)
        params = {"id": rows(out["id"]), "exp": rows(out["exp"]), "pose": out["pose"].flatten(0, 1)}
        model = self.morphable
        vertices = rows(model(out["id"], out["exp"]))
        cam = decode_pose(params["pose"], self.s0, self.image_size, self.hparams.rotation_convention)
        lm3d = model.landmarks(vertices)
        flat = flatten_views(batch)
        meta = {k: flat[k] for k in ("index", "path", "identity") if k in flat}
        rec = FaceReconstruction(
            vertices=vertices, triangles=model.triangles, landmarks3d=lm3d, landmarks2d=cam.project(lm3d),
            params=params, camera=cam, meta=meta, views=v,
        )  # fmt: skip
        if render:
            colours, vis = sample_vertex_colours(flat["image"], vertices, model.triangles, cam, self.renderer)
            rec.colours = colours
            proj = render_projection(colours, vis, vertices, model.triangles, cam, self.renderer)
            rec.image, rec.mask = proj.image, proj.seen
        return rec

    def neutral_shape(self, rec: FaceReconstruction) -> Tensor:
        """``morphable(id, exp=None)`` ``[N,V,3]`` (mm)."""
        return linear_neutral_shape(self.morphable, rec)

    # -- losses
    def training_losses(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        rec = self.reconstruct(batch)
        flat = flatten_views(batch)
        h = self.hparams
        terms: dict[str, Tensor] = {}
        terms["landmark"] = landmark_loss(
            rec.landmarks2d, flat["landmarks68"].to(rec.landmarks2d), scale=224.0 / self.image_size,
            valid=self.valid_rows(flat, "image", "landmarks68"),
        )  # fmt: skip
        if self.stage == "supervised":
            terms["pose"] = self.pose_loss(rec, flat)
            terms["3dmm"] = self.coefficient_loss(rec, flat)
            weights = {"landmark": h.w_landmark, "pose": h.w_pose, "3dmm": h.w_3dmm, "reg": h.w_reg}
        else:
            terms.update(self.multiview_losses(rec, flat))
            weights = {
                "landmark": h.self_w_landmark, "photo": h.self_w_photo, "align": h.self_w_align,
                "reg": h.self_w_reg,
            }  # fmt: skip
        v = rec.views
        ident, exp = rec.params["id"][::v], rec.params["exp"][::v]
        terms["reg"] = torch.cat((ident, exp), -1).square().mean(-1).mean()
        terms["total"] = sum(weights[k] * terms[k] for k in weights)
        return terms

    def pose_loss(self, rec: FaceReconstruction, flat: Mapping[str, Any]) -> Tensor:
        """``L_pose``: mean squared error of the normalised pose vectors against the ground truth (0, and one
        message, when the batch has no pose label)."""
        cam = ground_truth_camera(flat, self.morphable, self.image_size)
        pred = rec.params["pose"]
        if cam is None:
            if not self._said_no_pose:
                rank_zero_info(
                    "MVFNet: the batch has no pose label (params.pose or params.vertices): L_pose = 0"
                )
                self._said_no_pose = True
            return pred.sum() * 0.0
        target = encode_pose(
            cam.to(pred.device, pred.dtype), self.s0, self.image_size, self.hparams.rotation_convention
        )
        keys = ("image", "params") if "pose" in flat["params"] else ("image", "params", "landmarks68")
        return masked_mean((pred - target.detach()).square().mean(-1), self.valid_rows(flat, *keys))

    def coefficient_loss(self, rec: FaceReconstruction, flat: Mapping[str, Any]) -> Tensor:
        """``L_3DMM``: ``||x - x_gt||^2`` over (id, exp), mean over sets (0 without labels)."""
        params = flat.get("params") or {}
        v = rec.views
        pred, target = [], []
        for key in ("id", "exp"):
            gt = params.get(key)
            if gt is None:
                continue
            p = rec.params[key][::v]
            if gt.shape[-1] != p.shape[-1]:
                raise ValueError(
                    f"MVFNet: params.{key} labels have {gt.shape[-1]} coefficients but morphable_model="
                    f"{self.morphable.name!r} has {p.shape[-1]}: train with the model the labels refer to"
                )
            pred.append(p)
            target.append(gt[::v].to(p))
        if not pred:
            return rec.params["id"].sum() * 0.0
        err = (torch.cat(pred, -1) - torch.cat(target, -1)).square().sum(-1)
        valid = self.valid_rows(flat, "params")
        return masked_mean(err, None if valid is None else valid[::v])

    def multiview_losses(self, rec: FaceReconstruction, flat: Mapping[str, Any]) -> dict[str, Tensor]:
        """``L_photo`` (Eq. 7) and ``L_align`` (Eq. 8) over :func:`view_pairs` (module docstring)."""
        if not self.pairs:
            zero = rec.vertices.sum() * 0.0
            return {"photo": zero, "align": zero}
        v, n = rec.views, len(rec)
        images = flat["image"].to(rec.vertices)
        tri = rec.triangles
        colours, vis = sample_vertex_colours(images, rec.vertices, tri, rec.camera, self.renderer)
        base = torch.arange(0, n, v, device=images.device)
        dst = torch.cat([base + t for t, _ in self.pairs])
        src = torch.cat([base + s for _, s in self.pairs])
        cam_dst, cam_src = rec.camera[dst], rec.camera[src]
        proj = render_projection(colours[src], vis[src], rec.vertices[dst], tri, cam_dst, self.renderer)
        side = oblique_side(cam_src, cam_dst)
        size = tuple(images.shape[-2:])
        keep_ren = landmark_region_mask(rec.landmarks2d[dst], side, size)
        detected = flat["landmarks68"].to(rec.landmarks2d)
        lm_ok = self.valid_rows(flat, "landmarks68")
        if lm_ok is not None:  # rows without detected landmarks: the model's own projection
            detected = torch.where(
                lm_ok.to(detected.device)[:, None, None], detected, rec.landmarks2d.detach()
            )
        observed = images[dst]
        scale = self.image_size / 224.0
        m_obs = observed_mask(
            observed, proj.coverage, detected[dst], side, self.hparams.mask_sigma_s * scale,
            self.hparams.mask_sigma_r,
        )  # fmt: skip
        m_ren = proj.seen * keep_ren
        valid = self.valid_rows(flat, "image")
        valid = None if valid is None else valid[dst]
        out = {"photo": union_photometric_loss(observed, proj.image, m_obs, m_ren, valid=valid)}
        if self.hparams.self_w_align:
            texture = trackable_texture(size[0], size[1], observed)
            out["align"] = alignment_loss(
                self.flow, observed, proj.image, m_obs, proj.soft * keep_ren, texture, valid
            )
        else:
            out["align"] = out["photo"] * 0.0
        return out


__all__ = ["MVFNet", "view_pairs"]
