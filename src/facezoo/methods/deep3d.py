"""Deep3DFace (Deng et al., CVPR-W 2019; ``../shared/papers/deep3d.txt``): R-Net + hybrid-level loss, C-Net.

**R-Net** (§3, §4): a ResNet (ResNet-50 in the paper; ``backbone`` picks any :mod:`facezoo.nn` ResNet) whose
last FC regresses ``x = (alpha id, beta exp, delta tex, angles 3, gamma 27, t 3)``, sized from the morphable
model (the paper's BFM crop: 80 + 64 + 80 + 3 + 27 + 3 = 257). The FC weight and bias start at zero except the
SH ambient (0.8 on the first coefficient of each colour channel, the official ``init_lit``), so training
starts at the mean face, lit, 1 m in front of the camera. Perspective camera
(:meth:`facezoo.geometry.Perspective.deep3d`): focal 1015 px for a 224 crop, scaled with ``image_size``;
principal point at the crop centre; ``t`` in decimetres as in the official code (t = 0 puts the model origin
``camera_distance`` mm from the camera).

Loss (§4, weights as the paper): ``w_photo L_photo + w_lan L_lan + w_per L_per + w_coef L_coef + w_tex L_tex``
with 1.9, 1.6e-3, 0.2, 3e-4, 5 and, in ``L_coef``, 1.0 / 0.8 / 1.7e-3 for id / exp / tex; optionally the
official code's light term ``w_gamma L_gamma`` (below). The official code (Deep3DFaceRecon_pytorch) trains
with 1.92 / 1.6e-3 / 0.2 / 3e-4 / 5, tex 1.7e-2 and ``w_gamma`` 10: ``zoo/deep3d-official.yaml``.

* ``L_photo`` (Eq. 2): :func:`facezoo.losses.photometric_loss` over the face region ``M`` weighted by the skin
  attention ``A``.

  ``M``: the renderer's z-buffered coverage restricted to the triangles whose three vertices lie in the
  model's vertex mask ``photo_region`` (default ``"front"``). For the ``bfm-deep3d`` model that mask is
  Deep3DFace's ``frontmask2`` and the triangles are exactly its ``tri_mask2`` (checked on the real
  ``facemodel_info.mat``: ``tri_mask2``, numbered within ``frontmask2_idx``, maps onto the 54,681 triangles of
  ``tri`` inside ``frontmask2``), the official photometric region (it leaves out ears, neck and the crop's
  edge). The official PyTorch code rasterises that subset on its own; we take it from the one rasterisation
  of the whole mesh (``triangle_id``), so a region triangle hidden behind a non-region one does not count.
  Fallback: a model without the mask (e.g. a user's ``.h5``) uses the whole mesh, said once at fit start;
  ``photo_region: null`` asks for the whole mesh (facezoo before this option). The procedural model's
  ``"front"`` is its face from chin to forehead.

  ``A`` (``skin_model``): ``"gmm"`` (default, what the official code trains with): the raw posterior of the
  published 4 + 4 component YCbCr Gaussian mixtures with skin prior 0.8 (:mod:`facezoo.losses.skin_deep3d`),
  ``A = P``. ``"rule"``: the paper's attention ``A = 1 if P > 0.5 else P`` (§3.2) with ``P`` from the Chai &
  Ngan YCbCr rule (:mod:`facezoo.losses.skin`). ``skin_classifier`` (a ``.npz`` from ``facezoo skin fit``,
  the paper's naive-Bayes GMM fitted on your skin data) replaces either, with the paper's rule.
  ``skin_attention`` overrides the rule (``"raw"``: ``A = P``; ``"threshold"``: the paper's).
* ``L_lan`` (Eq. 3): weights 20 on the official code's indices (nose 28-30, inner mouth 60-67; see
  :mod:`facezoo.losses.landmark`), computed in units of a 224-pixel crop so that ``w_lan`` keeps its meaning
  at other resolutions.
* ``L_per`` (Eq. 4): ArcFace IResNet embeddings (``recognition_net``, weights from ``recognition_weights``);
  the input and the bare rendered face (black background, as the official code feeds ``pred_face``), each
  warped to the ArcFace 112x112 five-point template (``perceptual_alignment: arcface``, the official code:
  the input by its ground-truth landmarks, the rendering by the predicted ones; :mod:`facezoo.data.arcface`)
  or resized whole (``resize``). Without weights the term is off (logged as 0) and the run says so once.
* ``L_coef`` (Eq. 5) and ``L_tex`` (Eq. 6, albedo variance over ``model.mask("skin")``; all vertices when the
  model has no skin mask).
* ``L_gamma`` (official code only, ``w_gamma``, default 0 = off as in the paper):
  :func:`facezoo.losses.regularisers.light_colour_variance`, the mean over the 27 SH coefficients of their
  squared deviation from the mean over RGB.

Shading (``shading``): ``"pixel"`` (default, facezoo's renderer: area-weighted vertex normals interpolated
and renormalised per pixel, SH per pixel) or ``"vertex"`` (the official code: vertex normals as the sum of the
unit normals of the vertex's triangles, SH per vertex, colours interpolated;
:func:`facezoo.render.shading.shade_vertices`). The paper says neither.

**C-Net** (§5, ``stage: cnet``): :class:`facezoo.nn.ConfidenceNet` on R-Net's first-stage map and pooled
features; sigmoid confidences ``c [K_id]``; Eq. 7 aggregation ``alpha = sum_j c_j alpha_j / sum_j c_j`` over
an image set (``image [B,M,3,H,W]``); trained with R-Net frozen (weights from ``rnet_checkpoint``; without
one a fresh R-Net, with a warning) on Eq. 8,
the mean over the set of the hybrid loss with ``alpha`` replaced by the aggregate and the paper's weights
``w_lan 1.6e-3, w_photo 1.9, w_per 0.1`` (the regularisers are not part of Eq. 8's weights and are left out).

Output scaling (``output_scale``, our addition; the paper is silent on how the FC's outputs map to ``x``):
each parameter group is its FC rows times a constant, ``x_k = s_k * fc_k(f)`` (default 1: the official code).
Under the weak losses the groups get gradients of very different sizes: on synthetic 64-px batches near the
truth (pose off by 0.05, the demo's weights) the rms gradient of the total loss is ~280 for the angles and
translation, ~3-5 for the id and exp coefficients, 0.1 for light and 0.01 for texture. Pose then dominates
what the shared backbone learns and identity is learned last; ``s < 1`` on the pose and ``s > 1`` on the rest
rebalance it (under Adam this is a per-group learning rate of the head and a per-group weight on the gradient
the backbone receives). The CPU demo uses it; the paper's configs do not. A C-Net must use its R-Net's scales.

Where the paper is silent (our choices): R-Net reads images in [0, 1] without ImageNet normalisation (as the
official PyTorch code); angles are (pitch, yaw, roll) with ``R = Rz Ry Rx``; Eq. 2's sums run over the whole
batch (official ``photo_loss``); the official code's extra light regulariser is not in the paper
and is the option ``w_gamma``; at predict time an R-Net-only model aggregates image sets by plain averaging.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

import facezoo.nn as fnn
from facezoo.geometry import Perspective
from facezoo.geometry.mesh import vertex_normals
from facezoo.losses import (
    FaceEmbedder,
    coefficient_l2,
    landmark_loss,
    landmark_weights,
    masked_mean,
    photometric_loss,
    texture_variance,
)
from facezoo.losses.regularisers import light_colour_variance
from facezoo.losses.skin import SkinClassifier, skin_attention
from facezoo.losses.skin_deep3d import Deep3DSkinGMM
from facezoo.methods.base import FaceMethod, check_choice, linear_neutral_shape
from facezoo.methods.reconstruction import FaceReconstruction
from facezoo.methods.views import flatten_views, num_views
from facezoo.render.shading import sh_shade

#: Deep3DFace's initial ambient light (official ``init_lit``), added to gamma_0 of each channel at init.
AMBIENT = 0.8
PARAM_NAMES = ("id", "exp", "tex", "angles", "light", "translation")


def aggregate_identity(identity: Tensor, confidence: Tensor | None = None) -> Tensor:
    """Eq. 7: element-wise confidence-weighted mean over a set, ``[B,M,K], [B,M,K] -> [B,K]``
    (``confidence=None`` is the plain average).

    Example:
        >>> a = torch.tensor([[[0.0], [2.0]]]); c = torch.tensor([[[1.0], [3.0]]])
        >>> aggregate_identity(a, c)
        tensor([[1.5000]])
    """
    if identity.ndim != 3:
        raise ValueError(f"identity: expected [B,M,K], got {tuple(identity.shape)}")
    if confidence is None:
        return identity.mean(dim=1)
    if confidence.shape != identity.shape:
        raise ValueError(f"confidence: expected {tuple(identity.shape)}, got {tuple(confidence.shape)}")
    return (confidence * identity).sum(1) / confidence.sum(1).clamp_min(1e-12)


def output_scales(scales: Mapping[str, float] | None, sizes: tuple[int, ...]) -> Tensor:
    """The per-output scale vector ``[sum(sizes)]`` of ``{group: s}`` (groups :data:`PARAM_NAMES`, default 1).

    Example:
        >>> output_scales({"angles": 0.1}, (2, 1, 1, 3, 27, 3))[:7]
        tensor([1.0000, 1.0000, 1.0000, 1.0000, 0.1000, 0.1000, 0.1000])
    """
    scales = dict(scales or {})
    unknown = sorted(set(scales) - set(PARAM_NAMES))
    if unknown:
        raise ValueError(f"output_scale: unknown group(s) {unknown}; expected some of {list(PARAM_NAMES)}")
    for name, value in scales.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"output_scale: {name} must be a positive number, got {value!r}")
    return torch.cat(
        [torch.full((n,), float(scales.get(k, 1.0))) for k, n in zip(PARAM_NAMES, sizes, strict=True)]
    )


class Deep3DFace(FaceMethod):
    """Deep3DFace R-Net / C-Net (see the module docstring for the paper mapping and our choices).

    Args:
        morphable_model: morphable-model spec (``"procedural"``, ``"procedural:<n>"``, a facezoo ``.h5``).
        stage: ``"rnet"`` (single-image training) or ``"cnet"`` (image-set aggregation, R-Net frozen).
        backbone: :mod:`facezoo.nn` ResNet name (``resnet50`` in the paper, ``resnet18`` for CPU demos).
        backbone_kwargs: extra ResNet config fields (e.g. ``{"width": 32}``).
        backbone_weights: optional ``.pth`` (torchvision names; e.g. ImageNet) loaded into the backbone, head
            excluded.
        rnet_checkpoint: ``stage: cnet``: a Lightning checkpoint of an R-Net run whose ``rnet.*`` weights load
            strictly (read without running code); ``None``: a fresh R-Net, with a warning.
        image_size: input crop side (224 in the paper).
        focal: focal length in pixels *for a 224 crop* (scaled by ``image_size / 224``).
        camera_distance: mm from the camera to the model origin at ``t = 0``.
        skin_model: ``"gmm"`` (official published YCbCr mixtures, default) or ``"rule"`` (Chai & Ngan).
        skin_classifier: ``.npz`` of :class:`facezoo.losses.skin.SkinClassifier` (replaces ``skin_model``).
        skin_attention: ``"raw"`` (A = P, official), ``"threshold"`` (the paper's A = 1 if P > 0.5 else P) or
            None: raw for ``skin_model: gmm``, threshold for the rule and for a ``skin_classifier``.
        photo_region: vertex mask of the model whose triangles make Eq. 2's face region (``"front"``;
            missing from the model: the whole mesh, said once); None: the whole mesh.
        perceptual_alignment: ``"arcface"`` (five-point template warp, official) or ``"resize"``.
        shading: ``"pixel"`` (facezoo) or ``"vertex"`` (official; unit-normal sums, SH per vertex).
        recognition_net, recognition_weights: face recogniser for ``L_per`` (None: the term is off).
        w_photo, w_lan, w_per, w_coef, w_tex: R-Net loss weights (paper: 1.9, 1.6e-3, 0.2, 3e-4, 5).
        w_id, w_exp, w_tex_coef: Eq. 5's omega (1.0, 0.8, 1.7e-3; official code 1.0, 0.8, 1.7e-2).
        w_gamma: the official light-colour regulariser's weight (paper: none, 0; official code 10).
        cnet_w_lan, cnet_w_photo, cnet_w_per: Eq. 8's weights (1.6e-3, 1.9, 0.1).
        landmark_weighting: ``"deep3d"`` (official code), ``"paper"`` or ``"uniform"``.
        output_scale: per-group output scales ``{group: s}`` (groups ``id, exp, tex, angles, light,
            translation``; missing groups 1); see the module docstring.
        set_aggregation: ``"confidence"`` (C-Net, Eq. 7) or ``"mean"`` (plain averaging) for image sets.
        lr: Adam learning rate (R-Net 1e-4, C-Net 2e-5 in the paper).
        lr_schedule: ``"constant"``, ``"cosine"`` (annealed to 0 over the trainer's steps, stepped every
            iteration) or ``"step"`` (x ``lr_step_gamma`` every ``lr_step_epochs`` epochs: the official code's
            x0.2 every 10 epochs). The paper gives only the "initial learning rate"; a YAML ``lr_scheduler:``
            block of LightningCLI would be stepped once per *epoch*, which a step-budgeted run never anneals.
        lr_step_epochs, lr_step_gamma: the ``"step"`` schedule (10, 0.2).
        renderer_backend, eval_mask, max_nonfinite_steps: see :class:`~facezoo.methods.base.FaceMethod`.
    """

    stages = ("rnet", "cnet")
    required_keys = {"fit": ("image", "landmarks68"), "predict": ("image",)}

    def __init__(
        self,
        morphable_model: str = "procedural",
        stage: Literal["rnet", "cnet"] = "rnet",
        backbone: str = "resnet50",
        backbone_kwargs: dict[str, Any] | None = None,
        backbone_weights: str | None = None,
        rnet_checkpoint: str | None = None,
        image_size: int = 224,
        focal: float = 1015.0,
        camera_distance: float = 1000.0,
        skin_model: Literal["gmm", "rule"] = "gmm",
        skin_classifier: str | None = None,
        skin_attention: Literal["raw", "threshold"] | None = None,
        photo_region: str | None = "front",
        perceptual_alignment: Literal["arcface", "resize"] = "arcface",
        shading: Literal["pixel", "vertex"] = "pixel",
        recognition_net: str = "iresnet100",
        recognition_weights: str | None = None,
        w_photo: float = 1.9,
        w_lan: float = 1.6e-3,
        w_per: float = 0.2,
        w_coef: float = 3e-4,
        w_tex: float = 5.0,
        w_id: float = 1.0,
        w_exp: float = 0.8,
        w_tex_coef: float = 1.7e-3,
        w_gamma: float = 0.0,
        cnet_w_lan: float = 1.6e-3,
        cnet_w_photo: float = 1.9,
        cnet_w_per: float = 0.1,
        landmark_weighting: Literal["deep3d", "paper", "uniform"] = "deep3d",
        set_aggregation: Literal["confidence", "mean"] = "confidence",
        output_scale: dict[str, float] | None = None,
        lr: float = 1e-4,
        lr_schedule: Literal["constant", "cosine", "step"] = "constant",
        lr_step_epochs: int = 10,
        lr_step_gamma: float = 0.2,
        renderer_backend: str = "auto",
        eval_mask: str | None = "front",
        max_nonfinite_steps: int = 10,
    ) -> None:
        super().__init__(
            morphable_model, image_size, renderer_backend, eval_mask, stage=stage,
            max_nonfinite_steps=max_nonfinite_steps,
        )  # fmt: skip
        self.save_hyperparameters()
        for name, value, allowed in (
            ("lr_schedule", lr_schedule, ("constant", "cosine", "step")),
            ("skin_model", skin_model, ("gmm", "rule")),
            ("skin_attention", skin_attention, ("raw", "threshold", None)),
            ("perceptual_alignment", perceptual_alignment, ("arcface", "resize")),
            ("shading", shading, ("pixel", "vertex")),
            ("set_aggregation", set_aggregation, ("confidence", "mean")),
        ):
            check_choice(name, value, allowed)
        if lr_step_epochs < 1 or not 0.0 < lr_step_gamma <= 1.0:
            raise ValueError(
                f"lr_step_epochs must be >= 1 and lr_step_gamma in (0, 1], "
                f"got {lr_step_epochs}, {lr_step_gamma}"
            )
        model = self.morphable
        if not model.has_texture:
            raise ValueError(
                f"Deep3DFace needs a morphable model with a texture basis; {model.name!r} has none"
            )
        self.set_aggregation = set_aggregation
        self.sizes = (model.n_id, model.n_exp, model.n_tex, 3, 27, 3)
        self.rnet = fnn.build(
            backbone, num_outputs=sum(self.sizes), zero_init_fc=True, **(backbone_kwargs or {})
        )
        if backbone_weights:
            fnn.load_backbone_weights(self.rnet, backbone_weights, exclude=("fc.",))
        scale = output_scales(output_scale, self.sizes)
        self.register_buffer("output_scale", scale, persistent=False)
        with torch.no_grad():  # start at the mean face under Deep3DFace's ambient light
            light0 = sum(self.sizes[:4])
            self.rnet.fc.bias[light0 : light0 + 27 : 9] = AMBIENT / scale[light0]
        self.cnet = None
        if stage == "cnet":
            cfg = fnn.ConfidenceNetConfig(
                stage1_channels=self.rnet.stage1_dim, pooled_dim=self.rnet.feature_dim, num_outputs=model.n_id
            )
            self.cnet = fnn.ConfidenceNet(cfg)
            self.load_rnet(rnet_checkpoint)
            self.freeze_modules("rnet")  # frozen R-Net: BatchNorm statistics must not move either
        if skin_classifier is not None or skin_model == "rule":
            self.register_external("skin", SkinClassifier.load(skin_classifier))
        else:
            self.register_external("skin", Deep3DSkinGMM())
        if skin_attention is None:
            skin_attention = "raw" if isinstance(self.skin, Deep3DSkinGMM) else "threshold"
        self.skin_attention = skin_attention
        self.register_buffer("photo_triangles", self._photo_triangles(photo_region), persistent=False)
        if recognition_weights:
            net = fnn.load_backbone_weights(fnn.build(recognition_net), recognition_weights)
            self.register_external("embedder", FaceEmbedder(net))
        self.register_buffer("lm_weights", landmark_weights(landmark_weighting), persistent=False)
        skin = model.mask("skin") if "skin" in model.mask_names else None
        self.register_buffer("tex_region", skin, persistent=False)

    # -- setup
    def _photo_triangles(self, region: str | None) -> Tensor | None:
        """bool ``[T]``: the triangles whose three vertices are in the vertex mask ``region`` (None: the whole
        mesh; the default ``"front"`` missing from the model: the whole mesh, with a message at fit start)."""
        model = self.morphable
        self._region_note = None
        if region is None:
            return None
        if region not in model.mask_names:
            if region == "front":
                self._region_note = (
                    f"Deep3DFace: the morphable model {model.name!r} has no 'front' mask, so the photometric "
                    "region is the whole mesh (Deep3DFace's is its front crop: convert the BFM with "
                    "`facezoo model convert --format bfm-deep3d`)."
                )
                return None
            raise ValueError(
                f"photo_region: {region!r} is not a mask of {model.name!r} (has {model.mask_names})"
            )
        mask = model.mask(region).to(model.triangles.device)
        tri = mask[model.triangles.long()].all(dim=1)
        if not bool(tri.any()):
            raise ValueError(f"photo_region: no triangle of {model.name!r} lies inside the mask {region!r}")
        return tri

    def load_rnet(self, path: str | None) -> None:
        """Load the ``rnet.*`` weights of a Deep3DFace checkpoint strictly into :attr:`rnet` (``None``: keep
        the fresh R-Net, with a warning; :meth:`FaceMethod.load_stage_checkpoint`)."""
        ckpt = self.load_stage_checkpoint(path, ("rnet",), "rnet_checkpoint")
        if ckpt is None:
            return
        saved = (ckpt.get("hyper_parameters") or {}).get("output_scale")
        if "hyper_parameters" in ckpt and not torch.equal(
            output_scales(saved, self.sizes), self.output_scale
        ):
            raise ValueError(
                f"rnet_checkpoint: {path} was trained with output_scale={saved}, this model has "
                f"output_scale={self.hparams.output_scale}; give the same (R-Net's outputs mean other things)"
            )

    def on_fit_start(self) -> None:
        if "embedder" not in self._externals:
            rank_zero_info(
                "Deep3DFace: no recognition_weights given, so the perception-level loss (Eq. 4) is off "
                "(train/loss_per is logged as 0)."
            )
        if self.skin.is_fallback:
            rank_zero_info(
                "Deep3DFace: skin_model 'rule' and no skin_classifier; skin attention uses the Chai & Ngan "
                "YCbCr rule."
            )
        if self._region_note:
            rank_zero_info(self._region_note)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.hparams.lr)
        if self.hparams.lr_schedule == "constant":
            return optimizer
        if self.hparams.lr_schedule == "step":
            schedule = torch.optim.lr_scheduler.StepLR(
                optimizer, step_size=self.hparams.lr_step_epochs, gamma=self.hparams.lr_step_gamma
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
        steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(steps):
            raise ValueError("lr_schedule 'cosine' needs a finite trainer.max_steps or trainer.max_epochs")
        steps = max(1, int(steps))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # -- forward pieces
    def decode(self, out: Tensor) -> dict[str, Tensor]:
        """Scale the R-Net output ``[B,P]`` by ``output_scale`` and split it into ``id, exp, tex, angles,
        light, translation``."""
        out = out * self.output_scale.to(out)
        return dict(zip(PARAM_NAMES, out.split(self.sizes, dim=-1), strict=True))

    def camera(self, params: Mapping[str, Tensor]) -> Perspective:
        s = self.image_size
        return Perspective.deep3d(
            params["angles"],
            params["translation"],
            focal=self.hparams.focal * s / 224.0,
            center=s / 2.0,
            camera_distance=self.hparams.camera_distance / 100.0,
            unit_mm=100.0,
        )

    def regress(self, images: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
        """R-Net (and, for sets, aggregation): ``[N,3,H,W]`` -> params; ``[B,M,3,H,W]`` -> params of the
        ``B*M`` images with the identity replaced by each set's aggregate (Eq. 7). Returns the params and the
        confidences ``[B*M,K_id]`` (None without C-Net)."""
        if images.ndim == 4:
            return self.decode(self.rnet(images)), None
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"image: expected [B,3,H,W] or [B,M,3,H,W], got {tuple(images.shape)}")
        b, m = images.shape[:2]
        flat = images.flatten(0, 1)
        conf = None
        if self.cnet is not None and self.set_aggregation == "confidence":
            out, stage1, pooled = self.rnet(flat, return_features=True)
            conf = self.cnet(stage1.detach(), pooled.detach())
        else:
            out = self.rnet(flat)
        params = self.decode(out)
        k = params["id"].shape[-1]
        ident = params["id"].reshape(b, m, k)
        agg = aggregate_identity(ident, None if conf is None else conf.reshape(b, m, k))
        params["id"] = agg[:, None].expand(b, m, k).reshape(b * m, k)
        return params, conf

    def reconstruct(self, batch: Mapping[str, Any], render: bool = False) -> FaceReconstruction:
        """One row per image (image sets: ``B*M`` rows sharing their set's aggregated identity)."""
        params, _ = self.regress(batch["image"])
        meta = _meta(flatten_views(batch))
        return self._reconstruction(params, render=render, meta=meta, views=num_views(batch))

    def neutral_shape(self, rec: FaceReconstruction) -> Tensor:
        """``morphable(id, exp=None)`` ``[N,V,3]`` (mm)."""
        return linear_neutral_shape(self.morphable, rec)

    def _reconstruction(
        self, params: dict[str, Tensor], render: bool, meta: dict | None = None, views: int = 1
    ) -> FaceReconstruction:
        model = self.morphable
        vertices = model(params["id"], params["exp"])
        colours = model.texture(params["tex"])
        cam = self.camera(params)
        lm3d = model.landmarks(vertices)
        rec = FaceReconstruction(
            vertices=vertices,
            triangles=model.triangles,
            landmarks3d=lm3d,
            landmarks2d=cam.project(lm3d),
            params=params,
            camera=cam,
            colours=colours,
            meta=meta or {},
            views=views,
        )
        if render:
            out = self.render(rec)
            rec.image, rec.mask = out.image, out.mask
        return rec

    def render(self, rec: FaceReconstruction, antialias: bool = True):
        """Render ``rec`` lit by its SH light (``shading``: per pixel, or per vertex as the official code)."""
        light = rec.params["light"]
        if self.hparams.shading == "vertex":
            normals = vertex_normals(rec.camera.view(rec.vertices), rec.triangles, weighting="unit")
            colours = sh_shade(rec.colours, normals, light)
            return self.renderer(rec.vertices, rec.triangles, rec.camera, colors=colours, antialias=antialias)
        return self.renderer(
            rec.vertices, rec.triangles, rec.camera, colors=rec.colours, lighting=light, antialias=antialias
        )

    # -- losses
    def losses(self, batch: Mapping[str, Any], rec: FaceReconstruction, weights: Mapping[str, float]):
        """The hybrid-level loss terms (unweighted) and the weighted total, row for row with ``rec``
        (``batch`` as the loader gives it, or flat). Rows whose image (all terms) or landmarks (``lan``) are
        placeholders of a mixed batch contribute nothing (:meth:`FaceMethod.valid_rows`)."""
        batch = flatten_views(batch)
        image = batch["image"]
        target_lm = batch["landmarks68"].to(rec.landmarks2d)
        rows = self.valid_rows(batch, "image")
        terms: dict[str, Tensor] = {}
        if weights.get("photo", 0.0) or weights.get("per", 0.0):
            # Eq. 2's face region M is the binary projected face (the official code rasterises without
            # antialiasing): an antialiased silhouette blends into a background that is not the input's and
            # biases the loss toward shrinking the face (measured: d/dt_z at the ground truth 2.3e-3 with
            # antialiasing over black, 3.6e-6 without).
            out = self.render(rec, antialias=False)
            region = out.mask
            if self.photo_triangles is not None:  # the face region's triangles only (official tri_mask2)
                tid = out.triangle_id
                inside = self.photo_triangles[tid.clamp_min(0)] & (tid >= 0)
                region = region * inside[:, None].to(region)
            prob = self.skin(image)
            attention = (prob if self.skin_attention == "raw" else skin_attention(prob)).detach()
            terms["photo"] = photometric_loss(image, out.image, region, attention, valid=rows)
            embedder = self._externals.get("embedder")
            if embedder is None:
                terms["per"] = image.new_zeros(())
            elif self.hparams.perceptual_alignment == "arcface":
                # the input by its ground-truth landmarks, the rendering by the predicted ones (official);
                # rows without ground truth take the predicted ones (finite warp) and are left out
                lm_rows = self.valid_rows(batch, "image", "landmarks68")
                pred_lm = rec.landmarks2d.detach()
                gt_lm = target_lm if lm_rows is None else torch.where(
                    lm_rows.to(target_lm.device)[:, None, None], target_lm, pred_lm
                )  # fmt: skip
                terms["per"] = embedder.distance(
                    image, out.image, valid=lm_rows, image_landmarks=gt_lm, rendered_landmarks=pred_lm
                )
            else:
                terms["per"] = embedder.distance(image, out.image, valid=rows)
        terms["lan"] = landmark_loss(
            rec.landmarks2d, target_lm, self.lm_weights, scale=224.0 / self.image_size,
            valid=self.valid_rows(batch, "image", "landmarks68"),
        )  # fmt: skip
        if "coef" in weights:
            h = self.hparams
            p = rec.params
            terms["coef"] = masked_mean(
                h.w_id * coefficient_l2(p["id"]) + h.w_exp * coefficient_l2(p["exp"])
                + h.w_tex_coef * coefficient_l2(p["tex"]), rows,
            )  # fmt: skip
        if "tex" in weights:
            terms["tex"] = texture_variance(rec.colours, self.tex_region, valid=rows)
        if "gamma" in weights:
            terms["gamma"] = light_colour_variance(rec.params["light"], valid=rows)
        terms["total"] = sum(
            weights.get(k, 0.0) * v for k, v in terms.items()
        )  # unweighted terms: logged only
        return terms

    def loss_weights(self) -> dict[str, float]:
        h = self.hparams
        if self.stage == "cnet":
            return {"photo": h.cnet_w_photo, "lan": h.cnet_w_lan, "per": h.cnet_w_per}
        weights = {"photo": h.w_photo, "lan": h.w_lan, "per": h.w_per, "coef": h.w_coef, "tex": h.w_tex}
        if h.w_gamma:
            weights["gamma"] = h.w_gamma
        return weights

    def training_losses(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        images = batch["image"]
        if self.stage == "cnet" and images.ndim != 5:
            raise ValueError(
                f"Deep3DFace stage 'cnet' trains on image sets [B,M,3,H,W]; got image {tuple(images.shape)} "
                "(use a datamodule with set_size > 1)"
            )
        if self.stage == "rnet" and images.ndim == 5:
            images = images.flatten(0, 1)  # R-Net trains on single images; sets are just more images
        params, _ = self.regress(images)
        rec = self._reconstruction(params, render=False)
        return self.losses(batch, rec, self.loss_weights())


def _meta(batch: Mapping[str, Any]) -> dict[str, Any]:
    meta = {}
    for key in ("index", "path", "identity"):
        if key in batch:
            meta[key] = batch[key]
    return meta
