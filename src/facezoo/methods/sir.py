"""SIR (Jiang et al., "Reconstructing Recognizable 3D Face Shapes based on 3D Morphable Models";
``../shared/papers/sir.txt``; no public code): shape identity-aware regularisation on a mixed-label dataset.

**Paper targets**: LFW verification 95.23 % (CosFace + centre loss, Euclidean distance on shape parameters,
Table II); MICC Florence shape-only RMSE 1.80 mm (weighted centre loss, per frame, Table V).

**Network** (§III-C, Fig. 2; :class:`facezoo.methods.sir_network.SIRNetwork`): SphereFace-64a residual blocks;
Module 1 (stages 1-2) shared, Modules 2-4 (own stages 3-4 + MLP) regress the shape ``id``, the albedo latent
``tex`` (512, decoded by a transposed-conv network into a UV albedo map, 256 x 256) and the rest (``exp`` 29,
``pose`` 7 = quaternion + 2D translation + weak-perspective scale, SH ``light`` 27); ConfNet (Unsup3D)
predicts the confidence maps. Which blocks are shared is ambiguous in the paper; our reading is in
:mod:`facezoo.nn.sphereface`. ``depth`` picks SphereFace's 4/10/20/36/64-layer variants (64 in the paper).

**Loss** (§III-D), switched per sample by the labels it has (Eq. 9)::

    I in S_recon (landmarks):   epsilon_l L_land + L_pix
    I in S_id   (identity):     epsilon_s L_SIR  + L_pix

* ``L_land`` (Eq. 10): :func:`facezoo.losses.landmark_norm_loss` (in pixels of a 224 crop).
* ``L_pix = L_recon + epsilon_reg L_reg`` (Eq. 13): ``L_recon`` = Laplacian NLL of the L1 image error with
  ConfNet's ``sigma`` (Eq. 11) + ``w_perc`` x Gaussian NLL of VGG-16 ``relu3_3`` feature differences with
  ``sigma_perc`` (Eq. 12; VGG-16 weights from ``vgg_weights``; without them the term is off with one message);
  ``L_reg = L_regp + epsilon_rega L_rega`` (Eq. 14): the coefficient prior (Eq. 15) and the UV albedo
  smoothness and magnitude (Eq. 16, :func:`facezoo.losses.uv_albedo_regulariser`).
* ``L_SIR = L_recog + epsilon_kl L_kl`` (Eq. 17); ``L_recog = L_sm + epsilon_c L_c`` (Eq. 18): CosFace on the
  shape coefficients (:class:`facezoo.losses.CosFace`), the centre loss whose centres (buffers, synchronised
  across DDP ranks) follow Eq. 20 weighted by the neutral-frontal confidence ``f`` of Eq. 19
  (``weighted_centres: false`` = Wen et al.'s plain update, the paper's "Ours-lc"), and the batch KL prior
  of Eq. 21.

**Stages** (§III-E): ``warmup`` trains on reconstruction data without the SIR term (rows with identity labels
get ``L_pix`` only); ``mixed`` trains on the mixture of a recognition and a reconstruction dataset
(:class:`facezoo.datamodules.Mixture`, drawn with Eq. 22's probabilities,
:func:`facezoo.data.sir_probabilities`) with every term, starting from the warm-up's weights
(``warmup_checkpoint``; without one, a fresh network and a warning).

Where the paper is silent (our choices): every loss weight (defaults below, chosen so that the terms have
comparable gradients on the synthetic benchmark; the paper gives none); each term is the mean over the rows
that have its label (so a weight does not depend on the mixing ratio) and a row with both kinds of labels gets
both terms; ``Omega`` of Eqs. 11-12 is the rendered face region, and for Eq. 12 the rendering is composited
over the input so that features near the silhouette compare like with like; CosFace ``s = 64``, ``m = 0.35``
(CosFace's values); Eq. 19's ``lambda`` = 0.1 (``||alpha_exp||`` in units of std); the centre update rate 0.5
(Wen et al.); Adam at ``lr`` 1e-4. The output parameterisation is in :mod:`facezoo.methods.sir_network`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

import facezoo.nn as fnn
from facezoo.losses import coefficient_l2, masked_mean
from facezoo.losses.centre import CentreBank, neutral_frontal_confidence
from facezoo.losses.cosface import CosFace
from facezoo.losses.kl import batch_kl_standard_normal
from facezoo.losses.landmark_norm import landmark_norm_loss
from facezoo.losses.nll import gaussian_nll, laplacian_nll
from facezoo.losses.uv_albedo import uv_albedo_regulariser
from facezoo.methods.base import FaceMethod, linear_neutral_shape
from facezoo.methods.reconstruction import FaceReconstruction
from facezoo.methods.sir_network import SIRNetwork
from facezoo.methods.views import flatten_views, num_views
from facezoo.render.uv import sample_uv


class SIR(FaceMethod):
    """SIR (module docstring for the paper mapping and our choices).

    Args:
        morphable_model: morphable-model spec (the paper: BFM 2009 in 3DDFA's crop, 199 id / 29 exp; it
            needs UV coordinates and a mean albedo).
        stage: ``"warmup"`` (reconstruction data, no SIR term) or ``"mixed"`` (every term).
        warmup_checkpoint: ``stage: mixed``: a checkpoint of a warm-up run whose ``net.*`` weights load
            strictly; ``None``: a fresh network, with a warning.
        image_size: crop side (pixels) of the inputs and the rendering.
        encoder_size: side the encoder reads the crop at (multiple of 16; ``None`` = ``image_size``).
        depth, channels, hidden: SphereFace depth (64), stage widths and MLP width.
        albedo_dim, uv_size, albedo_channels, albedo_fusion: albedo latent (512), UV map side (256),
            decoder widths.
        confnet_nf, confnet_zdim: ConfNet widths (Unsup3D: 64, 128).
        num_identities: identity classes of the recognition data (VGGFace2's training split: 8631).
        init_scale: weak-perspective scale at zero output, px/mm for a 224 crop.
        vgg_weights: a torchvision-layout VGG-16 ``.pth`` for Eq. 12 (``None``: the perceptual term is off).
        vgg_layer, vgg_kwargs: the VGG-16 layer of Eq. 12 (``relu3_3``, as Unsup3D) and config overrides.
        w_land, w_sir, w_reg, w_id, w_exp, w_rega, w_uv, w_perc, w_c, w_kl: epsilon_l, epsilon_s, epsilon_reg,
            epsilon_id, epsilon_exp, epsilon_rega, epsilon_uv, the perceptual weight inside L_recon,
            epsilon_c, epsilon_kl.
        cosface_s, cosface_m: CosFace scale and margin.
        centre_rate: the centre update rate (Wen et al.'s alpha).
        weighted_centres: weight the centre update by Eq. 19's ``f`` (``False``: plain centre loss).
        confidence_lambda: ``lambda`` of Eq. 19.
        lr: Adam learning rate.
        renderer_backend, eval_mask, max_nonfinite_steps: see :class:`~facezoo.methods.base.FaceMethod`.

    Example:
        >>> sir = SIR("procedural:600:8:4:8", image_size=32, depth=4, channels=(4, 4, 8, 8), hidden=8,
        ...           albedo_dim=8, uv_size=32, albedo_channels=(8,) * 6, albedo_fusion=8, confnet_nf=16,
        ...           confnet_zdim=8, num_identities=4)
        >>> rec = sir.eval().reconstruct({"image": torch.rand(2, 3, 32, 32)})
        >>> rec.vertices.shape, rec.params["pose"].shape      # pose: quaternion 4, translation 2, scale 1
        (torch.Size([2, 600, 3]), torch.Size([2, 7]))
    """

    stages = ("warmup", "mixed")
    required_keys = {"fit": ("image",), "predict": ("image",)}

    def __init__(
        self,
        morphable_model: str = "procedural",
        stage: Literal["warmup", "mixed"] = "warmup",
        warmup_checkpoint: str | None = None,
        image_size: int = 112,
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
        num_identities: int = 8631,
        init_scale: float = 1.015,
        vgg_weights: str | None = None,
        vgg_layer: str = "relu3_3",
        vgg_kwargs: dict[str, Any] | None = None,
        w_land: float = 1.0,
        w_sir: float = 1.0,
        w_reg: float = 1.0,
        w_id: float = 1e-3,
        w_exp: float = 1e-3,
        w_rega: float = 0.1,
        w_uv: float = 1.0,
        w_perc: float = 1.0,
        w_c: float = 0.01,
        w_kl: float = 1.0,
        cosface_s: float = 64.0,
        cosface_m: float = 0.35,
        centre_rate: float = 0.5,
        weighted_centres: bool = True,
        confidence_lambda: float = 0.1,
        lr: float = 1e-4,
        renderer_backend: str = "auto",
        eval_mask: str | None = "front",
        max_nonfinite_steps: int = 10,
    ) -> None:
        super().__init__(
            morphable_model, image_size, renderer_backend, eval_mask, stage=stage,
            max_nonfinite_steps=max_nonfinite_steps,
        )  # fmt: skip
        self.save_hyperparameters()
        if num_identities < 2:
            raise ValueError(f"num_identities: expected >= 2 identity classes, got {num_identities}")
        model = self.morphable
        self.net = SIRNetwork(
            model, image_size, encoder_size, depth, tuple(channels), hidden, albedo_dim, uv_size,
            tuple(albedo_channels), albedo_fusion, confnet_nf, confnet_zdim, init_scale,
        )  # fmt: skip
        self.cosface = CosFace(model.n_id, num_identities, cosface_s, cosface_m)
        self.centres = CentreBank(num_identities, model.n_id, centre_rate)
        if stage == "warmup":  # no SIR term: the classifier has no gradient (DDP refuses unused parameters)
            self.cosface.requires_grad_(False)
        if vgg_weights:
            vgg = fnn.load_backbone_weights(
                fnn.build("vgg16_features", **(vgg_kwargs or {})), vgg_weights, exclude=("classifier.",)
            )
            vgg.requires_grad_(False)
            self.register_external("vgg", vgg.eval())
        if stage == "mixed":
            self.load_stage_checkpoint(warmup_checkpoint, ("net",), "warmup_checkpoint")

    # -- setup
    def setup(self, stage: str) -> None:
        """Besides the base's checks: the warm-up learns shape from landmarks and the mixed stage needs
        identity labels, so the datamodule must provide them (a single mixed batch may lack either: a Mixture
        batch of one member)."""
        super().setup(stage)
        dm = self._datamodule()
        provides = getattr(dm, "provides", None)
        need = "landmarks68" if self.stage == "warmup" else "identity"
        if stage == "fit" and provides is not None and need not in provides:
            raise ValueError(
                f"SIR stage {self.stage!r} needs batch key {need!r}, which datamodule "
                f"{type(dm).__name__} does not "
                f"provide (it provides {sorted(provides)})"
            )

    def on_fit_start(self) -> None:
        if "vgg" not in self._externals:
            rank_zero_info(
                "SIR: no vgg_weights given, so the perceptual term of L_recon (Eq. 12) is off "
                "(train/loss_perc is logged as 0)."
            )

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)

    # -- reconstruction
    def reconstruct(self, batch: Mapping[str, Any], render: bool = False) -> FaceReconstruction:
        """One row per image (image sets are reconstructed image by image)."""
        images = batch["image"]
        flat = images.flatten(0, 1) if images.ndim == 5 else images
        rec = self._reconstruction(self.net.encode(flat), render=render)
        meta = {k: v for k, v in flatten_views(batch).items() if k in ("index", "path", "identity")}
        rec.meta, rec.views = meta, num_views(batch)
        return rec

    def neutral_shape(self, rec: FaceReconstruction) -> Tensor:
        """``morphable(id, exp=None)`` ``[N,V,3]`` (mm)."""
        return linear_neutral_shape(self.morphable, rec)

    def _reconstruction(self, params: dict[str, Tensor], render: bool) -> FaceReconstruction:
        model = self.morphable
        vertices = model(params["id"], params["exp"])
        cam = self.net.camera(params["pose"])
        albedo, residual = self.net.albedo(params["tex"])
        lm3d = model.landmarks(vertices)
        params = {**params, "angles": self.net.angles(params["pose"])}
        rec = FaceReconstruction(
            vertices=vertices, triangles=model.triangles, landmarks3d=lm3d, landmarks2d=cam.project(lm3d),
            params=params, camera=cam, colours=sample_uv(albedo, model.uv).clamp(0, 1),
        )  # fmt: skip
        rec.meta = {"albedo_uv": albedo, "albedo_residual": residual}
        if render:
            out = self.renderer(
                vertices, model.triangles, cam, texture=albedo, uv=model.uv, lighting=params["light"]
            )
            rec.image, rec.mask = out.image, out.mask
        return rec

    # -- losses
    def identity_rows(self, batch: Mapping[str, Any]) -> Tensor:
        """Bool ``[N]``: rows of a flat batch with a real identity label (``valid`` and ``>= 0``)."""
        n = batch["image"].shape[0]
        ident = batch.get("identity")
        if not isinstance(ident, Tensor):
            return torch.zeros(n, dtype=torch.bool, device=batch["image"].device)
        rows = ident.to(batch["image"].device) >= 0
        valid = self.valid_rows(batch, "identity")
        return rows if valid is None else rows & valid.to(rows.device)

    def landmark_rows(self, batch: Mapping[str, Any]) -> Tensor:
        """Bool ``[N]``: rows of a flat batch with real 68-point landmarks."""
        n = batch["image"].shape[0]
        device = batch["image"].device
        if "landmarks68" not in batch:
            return torch.zeros(n, dtype=torch.bool, device=device)
        valid = self.valid_rows(batch, "landmarks68")
        return torch.ones(n, dtype=torch.bool, device=device) if valid is None else valid.to(device)

    def pixel_terms(self, image: Tensor, rec: FaceReconstruction, rows: Tensor | None) -> dict[str, Tensor]:
        """``L_pix``'s terms: Laplacian NLL (Eq. 11), Gaussian NLL of VGG features (Eq. 12), Eqs. 15-16."""
        h = self.hparams
        model = self.morphable
        albedo = rec.meta["albedo_uv"]
        out = self.renderer(rec.vertices, model.triangles, rec.camera, texture=albedo, uv=model.uv,
                            lighting=rec.params["light"])  # fmt: skip
        sigma, sigma_perc = self.net.confidence(image)
        terms = {"pix": laplacian_nll(out.image, image, sigma, out.mask, rows)}
        vgg = self._externals.get("vgg")
        if vgg is not None:
            composite = out.mask * out.image + (1 - out.mask) * image
            with torch.no_grad():
                target = vgg.extract(image, [h.vgg_layer])[h.vgg_layer]
            pred = vgg.extract(composite, [h.vgg_layer])[h.vgg_layer]
            terms["perc"] = gaussian_nll(pred, target, sigma_perc, out.mask, rows)
        else:
            terms["perc"] = image.new_zeros(())
        p = rec.params
        terms["regp"] = masked_mean(
            h.w_id * coefficient_l2(p["id"]) + h.w_exp * coefficient_l2(p["exp"]), rows
        )
        terms["rega"] = uv_albedo_regulariser(
            albedo, rec.meta["albedo_residual"], h.w_uv, self.net.uv_mask, rows
        )
        return terms

    def sir_terms(self, rec: FaceReconstruction, labels: Tensor, rows: Tensor) -> dict[str, Tensor]:
        """``L_SIR``'s terms on the identity rows, and the centre update of Eq. 20 (every rank calls it)."""
        h = self.hparams
        ident = rec.params["id"]
        safe = torch.where(
            rows, labels.to(rows.device).long(), torch.zeros_like(labels.long(), device=rows.device)
        )
        terms = {
            "cos": self.cosface(ident, safe, rows),
            "centre": self.centres.loss(ident, safe, rows),
            "kl": batch_kl_standard_normal(ident, rows),
        }
        if self.training and torch.is_grad_enabled():
            f = None
            if h.weighted_centres:
                f = neutral_frontal_confidence(rec.params["angles"].detach(), rec.params["exp"].detach(),
                                               h.confidence_lambda)  # fmt: skip
            self.centres.update(ident.detach(), safe, f, rows)
        return terms

    def training_losses(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        h = self.hparams
        flat = flatten_views(batch)
        image = flat["image"]
        rec = self._reconstruction(self.net.encode(image), render=False)
        image_rows = self.valid_rows(flat, "image")
        terms = self.pixel_terms(image, rec, image_rows)
        lm_rows = self.landmark_rows(flat)
        if "landmarks68" in flat:
            target = flat["landmarks68"].to(rec.landmarks2d)
            terms["land"] = landmark_norm_loss(
                rec.landmarks2d, target, lm_rows, scale=224.0 / self.image_size
            )
        else:
            terms["land"] = image.new_zeros(())
        total = h.w_land * terms["land"] + terms["pix"] + h.w_perc * terms["perc"]
        total = total + h.w_reg * (terms["regp"] + h.w_rega * terms["rega"])
        if self.stage == "mixed":
            id_rows = self.identity_rows(flat)
            labels = flat["identity"] if isinstance(flat.get("identity"), Tensor) else id_rows.long()
            sir = self.sir_terms(rec, labels, id_rows)
            terms.update(sir)
            terms["sir"] = sir["cos"] + h.w_c * sir["centre"] + h.w_kl * sir["kl"]
            total = total + h.w_sir * terms["sir"]
        terms["total"] = total
        return terms
