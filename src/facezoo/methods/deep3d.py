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
with 1.9, 1.6e-3, 0.2, 3e-4, 5 and, in ``L_coef``, 1.0 / 0.8 / 1.7e-3 for id / exp / tex.

* ``L_photo`` (Eq. 2): :func:`facezoo.losses.photometric_loss` over the renderer's z-buffered coverage,
  weighted by the skin attention ``A`` (``skin_classifier``: a ``.npz`` from ``facezoo skin fit``; without
  one the documented Chai & Ngan YCbCr rule of :mod:`facezoo.losses.skin`).
* ``L_lan`` (Eq. 3): weights 20 on the official code's indices (nose 28-30, inner mouth 60-67; see
  :mod:`facezoo.losses.landmark`), computed in units of a 224-pixel crop so that ``w_lan`` keeps its meaning
  at other resolutions.
* ``L_per`` (Eq. 4): ArcFace IResNet embeddings (``recognition_net``, weights from ``recognition_weights``);
  the input and the bare rendered face (black background, as the official code feeds ``pred_face``). Without
  weights the term is off (logged as 0) and the run says so once.
* ``L_coef`` (Eq. 5) and ``L_tex`` (Eq. 6, albedo variance over ``model.mask("skin")``; all vertices when the
  model has no skin mask).

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
batch (official ``photo_loss``); the official code's extra light regulariser (``w_gamma``) is not in the paper
and is not used; at predict time an R-Net-only model aggregates image sets by plain averaging.
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
from facezoo.losses import (
    FaceEmbedder,
    coefficient_l2,
    landmark_loss,
    landmark_weights,
    masked_mean,
    photometric_loss,
    texture_variance,
)
from facezoo.losses.skin import SkinClassifier, skin_attention
from facezoo.methods.base import FaceMethod, linear_neutral_shape
from facezoo.methods.reconstruction import FaceReconstruction
from facezoo.methods.views import flatten_views, num_views

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
        skin_classifier: ``.npz`` of :class:`facezoo.losses.skin.SkinClassifier` (None: YCbCr fallback rule).
        recognition_net, recognition_weights: face recogniser for ``L_per`` (None: the term is off).
        w_photo, w_lan, w_per, w_coef, w_tex: R-Net loss weights (paper: 1.9, 1.6e-3, 0.2, 3e-4, 5).
        w_id, w_exp, w_tex_coef: Eq. 5's omega (1.0, 0.8, 1.7e-3).
        cnet_w_lan, cnet_w_photo, cnet_w_per: Eq. 8's weights (1.6e-3, 1.9, 0.1).
        landmark_weighting: ``"deep3d"`` (official code), ``"paper"`` or ``"uniform"``.
        output_scale: per-group output scales ``{group: s}`` (groups ``id, exp, tex, angles, light,
            translation``; missing groups 1); see the module docstring.
        set_aggregation: ``"confidence"`` (C-Net, Eq. 7) or ``"mean"`` (plain averaging) for image sets.
        lr: Adam learning rate (R-Net 1e-4, C-Net 2e-5 in the paper).
        lr_schedule: ``"constant"`` or ``"cosine"`` (annealed to 0 over the trainer's steps, stepped every
            iteration). The paper gives only the "initial learning rate"; a YAML ``lr_scheduler:`` block of
            LightningCLI would be stepped once per *epoch*, which a step-budgeted run never anneals.
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
        skin_classifier: str | None = None,
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
        cnet_w_lan: float = 1.6e-3,
        cnet_w_photo: float = 1.9,
        cnet_w_per: float = 0.1,
        landmark_weighting: Literal["deep3d", "paper", "uniform"] = "deep3d",
        set_aggregation: Literal["confidence", "mean"] = "confidence",
        output_scale: dict[str, float] | None = None,
        lr: float = 1e-4,
        lr_schedule: Literal["constant", "cosine"] = "constant",
        renderer_backend: str = "auto",
        eval_mask: str | None = "front",
        max_nonfinite_steps: int = 10,
    ) -> None:
        super().__init__(
            morphable_model, image_size, renderer_backend, eval_mask, stage=stage,
            max_nonfinite_steps=max_nonfinite_steps,
        )  # fmt: skip
        self.save_hyperparameters()
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule: expected 'constant' or 'cosine', got {lr_schedule!r}")
        if set_aggregation not in ("confidence", "mean"):
            raise ValueError(f"set_aggregation: expected 'confidence' or 'mean', got {set_aggregation!r}")
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
        self.register_external("skin", SkinClassifier.load(skin_classifier))
        if recognition_weights:
            net = fnn.load_backbone_weights(fnn.build(recognition_net), recognition_weights)
            self.register_external("embedder", FaceEmbedder(net))
        self.register_buffer("lm_weights", landmark_weights(landmark_weighting), persistent=False)
        skin = model.mask("skin") if "skin" in model.mask_names else None
        self.register_buffer("tex_region", skin, persistent=False)

    # -- setup
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
                "Deep3DFace: no skin_classifier given; skin attention uses the Chai & Ngan YCbCr rule."
            )

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.hparams.lr)
        if self.hparams.lr_schedule == "constant":
            return optimizer
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
            out = self.renderer(vertices, model.triangles, cam, colors=colours, lighting=params["light"])
            rec.image, rec.mask = out.image, out.mask
        return rec

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
            out = self.renderer(
                rec.vertices, rec.triangles, rec.camera, colors=rec.colours, lighting=rec.params["light"],
                antialias=False,
            )  # fmt: skip
            attention = skin_attention(self.skin(image)).detach()
            terms["photo"] = photometric_loss(image, out.image, out.mask, attention, valid=rows)
            embedder = self._externals.get("embedder")
            terms["per"] = (
                embedder.distance(image, out.image, valid=rows)
                if embedder is not None
                else image.new_zeros(())
            )
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
        terms["total"] = sum(
            weights.get(k, 0.0) * v for k, v in terms.items()
        )  # unweighted terms: logged only
        return terms

    def loss_weights(self) -> dict[str, float]:
        h = self.hparams
        if self.stage == "cnet":
            return {"photo": h.cnet_w_photo, "lan": h.cnet_w_lan, "per": h.cnet_w_per}
        return {"photo": h.w_photo, "lan": h.w_lan, "per": h.w_per, "coef": h.w_coef, "tex": h.w_tex}

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
