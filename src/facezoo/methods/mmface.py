"""MMFace (Yi et al., CVPR 2019; ``../shared/papers/mmface.txt``): volumetric + parametric regression.

**Model** (§3.1): a linear 3DMM ``S(α, β) = S̄ + U_id α + U_exp β`` posed by a weak-perspective camera
``V = f P R S + t`` (Eq. 2; :class:`facezoo.geometry.WeakPerspective`, pose vector ``p = (f, r, t)``, Euler
``r = (pitch, yaw, roll)`` with ``R = Rz Ry Rx``).

**VMN** (§3.2.1): two stacked hourglasses (:class:`facezoo.nn.StackedHourglass`) map the 256x256 crop to a
``volume_depth x volume_size x volume_size`` volume with sigmoid output. Ground truth
(:mod:`facezoo.geometry.voxelize`): the ground-truth mesh posed by the ground-truth camera, voxelised in image
space (x, y with the crop, z quantised over the depth slices) and filled from the visible surface to the back
inside the silhouette, as VRN. Loss ``E_V`` (Eq. 3): voxel-wise BCE (:func:`facezoo.losses.volumetric_bce`).

**PMN** (§3.2.2): five 3D convolutions and three FC branches (identity with its extra FC layer, expression,
pose) (:class:`facezoo.nn.VolumeRegressor`) on the VMN's sigmoid volume (the ground-truth volume in stage
``pmn``). Losses: ``E_id = ||U_id(α - α̂)||²`` (Eq. 5), ``E_exp = ||U_exp(β - β̂)||²`` (Eq. 6) through the
bases' Gram matrices (:mod:`facezoo.losses.basis_l2`: the geometry error, never a plain parameter L2), and
``E_P`` (Eq. 7), the squared distance of the 68 ground-truth-shape landmarks projected by the predicted and by
the ground-truth pose. ``parametric_loss: single`` replaces the three by ``E'_P`` (Eq. 8), the same distance
over every vertex of the predicted vs the ground-truth posed shape.

**Objective** (Eq. 9): ``E = λ_V E_V + E_id + λ_exp E_exp + λ_P E_P``.

**Stages** (§4; ``stage``; a zoo config each): ``vmn`` (VMN alone on ``E_V``), ``pmn`` (PMN alone fed the
ground-truth volume, ``{λ_exp, λ_P} = {5, 5}``), ``joint`` (both concatenated and fine-tuned with ``{λ_V,
λ_exp, λ_P} = {1e6, 5, 5}``; VMN and PMN start from ``vmn_checkpoint`` / ``pmn_checkpoint``, each a fresh
start with one warning when not given). The network a stage does not train is frozen (BatchNorm in eval).
Adam, ``lr`` 1e-4 reduced 10x after ``lr_decay_epochs`` (40) epochs, for another 20 (``max_epochs: 60`` in the
configs); the joint stage runs 10 epochs.

**Pose refinement** (§3.2.3; ``pose_refinement``): ``none`` (MMFace-PMN: the PMN's pose), ``icp`` (the
vertices facing the viewer aligned by similarity ICP to the surface points of the predicted volume, started
from the PMN's pose: :func:`facezoo.geometry.weak_perspective_icp`; ``icp_resolution`` resamples the volume
to that in-plane size and depth first, so ICP-64/128/192 of the paper's ablation is a switch) or ``gt``
(MMFace-GT: the ground-truth pose of the batch). Applied by :meth:`reconstruct` outside training (validate,
test, predict).

**Evaluation**: the AFLW2000-3D landmark NME of ``facezoo test`` (the ``reconstruction`` protocol) plus NME3D
(Eq. 11, :func:`facezoo.metrics.nme3d`: the posed meshes ``f R S + t`` in pixel units, z-aligned) when the
batch has the ground-truth shape and pose; logged as ``val/nme3d`` / ``test/nme3d``.

**Paper targets** (300W-LP training, AFLW2000-3D, Table 1): NME_2D^68 3.46 % (ICP-192; PMN 6.11, ICP-64 4.89,
ICP-128 4.43, GT pose 1.61) and NME3D 3.66 % (ICP-192; 3.78 with ICP-128, 2.01 with the GT pose).

Where the paper is silent (its supplementary is not available), our choices:

* Units: the paper's BFM is in raw units (µm: "f ≈ 0.001 aligns the mean shape with pixel units"), so Eqs.
  5-6 are in µm², which is what λ_V = 1e6 balances against a per-voxel BCE. ``shape_unit`` (mm, default
  1e-3) keeps that balance for facezoo's mm models: ``E_id``/``E_exp`` are the per-vertex mean squared error
  in ``shape_unit``² ("MSE"); ``E_V`` is the mean over voxels (and over the two stacks' outputs:
  intermediate supervision as in Newell et al. / VRN); ``E_P`` / ``E'_P`` are per-point mean squared
  distances in pixels of a 256 crop (``256 / image_size`` scales other crop sizes).
* Pose initialisation ("f ≈ 0.001, t ≈ (128, 128)"): the pose branch predicts offsets from ``f₀ =
  init_scale * image_size / 256`` px/mm (``init_scale`` 1: the paper's 0.001 for µm) and the crop centre:
  ``f = f₀ exp(o₀)``, ``r = (o₁, o₂, o₃)``, ``t = (c, c) + (image_size / 2) (o₄, o₅)``; the branch's last
  layer starts near 0, so training starts at the paper's initial pose.
* The volume: ``x, y`` span the crop, ``z`` spans ``depth_extent * image_size`` pixel units centred on the
  posed depth of the mean shape's centroid (so the face sits in the middle of every volume whatever the
  model's origin); slice 0 is the farthest. ``volume_size = volume_depth = 128`` by default (MMFace-ICP-128,
  the paper's default). ICP: point-to-point with isotropic scale (open3d), the vertices whose normals face
  the viewer under the PMN pose, at most 50 iterations; its depth offset is free (weak perspective).
* Ground truth of synthetic faces (perspective renders): :mod:`facezoo.methods.mmface_targets`.
* Joint-stage learning rate: the paper gives none; ``lr`` 1e-5 (the end of the stage schedules) in
  ``zoo/mmface.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

import facezoo.nn as fnn
from facezoo.geometry import (
    WeakPerspective,
    image_space_points,
    volume_surface,
    voxelize,
    weak_perspective_icp,
)
from facezoo.geometry.mesh import vertex_normals
from facezoo.losses import landmark_loss
from facezoo.losses.basis_l2 import basis_gram, basis_weighted_l2
from facezoo.losses.volumetric import volumetric_bce
from facezoo.methods.base import FaceMethod, check_choice, linear_neutral_shape
from facezoo.methods.mmface_targets import ground_truth_camera, ground_truth_vertices
from facezoo.methods.reconstruction import FaceReconstruction
from facezoo.methods.views import flatten_views, num_views

__all__ = ["MMFace"]

#: the paper's crop side: E_P is measured in pixels of a 256 crop, and f0 = init_scale * image_size / 256.
PAPER_CROP = 256.0


class MMFace(FaceMethod):
    """MMFace VMN / PMN / joint (see the module docstring for the paper mapping and our choices).

    Args:
        morphable_model: morphable-model spec (``"procedural"``, a facezoo ``.h5``; the paper: BFM 2009 +
            FaceWarehouse in 3DDFA's crop, 199 + 29 components, ``facezoo model convert --format bfm-3ddfa``).
        stage: ``"vmn"``, ``"pmn"`` or ``"joint"``.
        image_size: input crop side (256 in the paper).
        volume_size, volume_depth: in-plane resolution and depth slices of the VMN volume (128, 128).
        depth_extent: the volume's depth range in units of ``image_size`` (1.0).
        hourglass: :class:`facezoo.nn.HourglassConfig` fields (``features``, ``depth``...; the paper's 2
            stacks are fixed: ``n_stacks`` cannot be overridden).
        pmn: :class:`facezoo.nn.VolumeRegressorConfig` fields (``channels``, ``pool_size``, ``hidden``).
        vmn_checkpoint, pmn_checkpoint: ``stage: joint``: checkpoints of the ``vmn`` / ``pmn`` stages (their
            ``vmn.*`` / ``pmn.*`` weights load strictly); ``None``: a fresh start with a warning.
        lambda_v, lambda_exp, lambda_p: Eq. 9's weights (1e6, 5, 5).
        shape_unit: unit of ``E_id`` / ``E_exp`` in mm (1e-3: µm, the paper's BFM units).
        parametric_loss: ``"separate"`` (Eqs. 5-7) or ``"single"`` (Eq. 8).
        pose_refinement: ``"none"``, ``"icp"`` or ``"gt"``.
        icp_resolution: volume resolution for ICP (``None``: the VMN's own; 64 / 128 / 192 in the paper).
        init_scale: the pose's initial scale in px/mm for a 256 crop (1.0).
        lr: Adam's learning rate (1e-4). lr_decay_epochs: epochs before the 10x decay (40; ``None``: none).
        renderer_backend, eval_mask, max_nonfinite_steps: see :class:`~facezoo.methods.base.FaceMethod`.

    Example:
        >>> m = MMFace("procedural:600", stage="pmn", image_size=32, volume_size=16, volume_depth=16,
        ...            hourglass={"features": 16, "depth": 1},
        ...            pmn={"channels": (4, 4, 8, 8, 8), "hidden": 16})
        >>> params, camera = m.regress(torch.zeros(2, 16, 16, 16))     # PMN on a [N,D,S,S] volume
        >>> tuple(params["id"].shape), tuple(camera.project(m.morphable.mean.expand(2, -1, -1)).shape)
        ((2, 80), (2, 600, 2))
    """

    stages = ("vmn", "pmn", "joint")
    required_keys = {"fit": ("image", "params"), "predict": ("image",)}

    def __init__(
        self,
        morphable_model: str = "procedural",
        stage: Literal["vmn", "pmn", "joint"] = "joint",
        image_size: int = 256,
        volume_size: int = 128,
        volume_depth: int = 128,
        depth_extent: float = 1.0,
        hourglass: dict[str, Any] | None = None,
        pmn: dict[str, Any] | None = None,
        vmn_checkpoint: str | None = None,
        pmn_checkpoint: str | None = None,
        lambda_v: float = 1e6,
        lambda_exp: float = 5.0,
        lambda_p: float = 5.0,
        shape_unit: float = 1e-3,
        parametric_loss: Literal["separate", "single"] = "separate",
        pose_refinement: Literal["none", "icp", "gt"] = "none",
        icp_resolution: int | None = None,
        init_scale: float = 1.0,
        lr: float = 1e-4,
        lr_decay_epochs: int | None = 40,
        renderer_backend: str = "auto",
        eval_mask: str | None = "front",
        max_nonfinite_steps: int = 10,
    ) -> None:
        super().__init__(
            morphable_model, image_size, renderer_backend, eval_mask, stage=stage,
            max_nonfinite_steps=max_nonfinite_steps,
        )  # fmt: skip
        self.save_hyperparameters()
        check_choice("parametric_loss", parametric_loss, ("separate", "single"))
        check_choice("pose_refinement", pose_refinement, ("none", "icp", "gt"))
        for name, value in (("volume_size", volume_size), ("volume_depth", volume_depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name}: expected an int >= 2, got {value!r}")
        if icp_resolution is not None and (not isinstance(icp_resolution, int) or icp_resolution < 2):
            raise ValueError(f"icp_resolution: expected None or an int >= 2, got {icp_resolution!r}")
        if not depth_extent > 0 or not shape_unit > 0 or not init_scale > 0:
            raise ValueError(
                f"depth_extent, shape_unit, init_scale: expected > 0, got {depth_extent}, {shape_unit}, "
                f"{init_scale}"
            )
        hg = dict(hourglass or {})
        if "n_stacks" in hg or "out_channels" in hg or "volume_size" in hg:
            raise ValueError(
                "hourglass: n_stacks (2, the paper's), out_channels and volume_size (volume_depth, "
                f"volume_size) are set by MMFace; got {sorted(hg)}"
            )
        model = self.morphable
        self.vmn = fnn.StackedHourglass(
            fnn.HourglassConfig(n_stacks=2, out_channels=volume_depth, volume_size=volume_size, **hg)
        )
        self.pmn = fnn.VolumeRegressor(
            fnn.VolumeRegressorConfig(n_id=model.n_id, n_exp=model.n_exp, n_pose=6, **dict(pmn or {}))
        )
        std = None if model.bases_scaled else model.id_std
        self.register_buffer("gram_id", basis_gram(model.id_basis, std, shape_unit).float(), persistent=False)
        std = None if model.bases_scaled else model.exp_std
        self.register_buffer(
            "gram_exp", basis_gram(model.exp_basis, std, shape_unit).float(), persistent=False
        )
        self.register_buffer("centroid", model.mean.mean(0), persistent=False)
        if stage == "vmn":
            self.freeze_modules("pmn")
        elif stage == "pmn":
            self.freeze_modules("vmn")
        else:
            self.load_stage_checkpoint(vmn_checkpoint, ("vmn",), "vmn_checkpoint")
            self.load_stage_checkpoint(pmn_checkpoint, ("pmn",), "pmn_checkpoint")
        from facezoo.metrics import NME3D

        self.val_nme3d = NME3D()

    # -- frames ------------------------------------------------------------------------------------------
    @property
    def z_range(self) -> tuple[float, float]:
        half = 0.5 * self.hparams.depth_extent * self.image_size
        return -half, half

    def volume_points(self, camera: WeakPerspective, vertices: Tensor) -> Tensor:
        """Posed vertices ``[N,V,3]`` in the volume's frame (z relative to the posed mean-shape centroid)."""
        c = self.centroid.to(vertices)
        z0 = camera.scale * (camera.rotation @ c)[:, 2]
        return image_space_points(camera, vertices, z0)

    def target_volume(self, camera: WeakPerspective, vertices: Tensor) -> Tensor:
        """Ground-truth occupancy ``[N,D,S,S]`` of posed meshes (VRN filling, :func:`voxelize`)."""
        h = self.hparams
        with torch.no_grad():
            pts = self.volume_points(camera, vertices.detach())
            return voxelize(pts, self.morphable.triangles, (h.volume_depth, h.volume_size, h.volume_size),
                            self.image_size, self.z_range, fill="behind")  # fmt: skip

    def decode_pose(self, raw: Tensor) -> WeakPerspective:
        """PMN pose outputs ``[N,6]`` -> camera (offsets from the paper's initial pose; module docstring)."""
        s = self.image_size
        f0 = self.hparams.init_scale * s / PAPER_CROP
        scale = f0 * torch.exp(raw[:, 0].clamp(-10.0, 10.0))
        t2d = s / 2.0 + (s / 2.0) * raw[:, 4:6]
        params = torch.cat((scale[:, None], raw[:, 1:4], t2d), dim=-1)
        return WeakPerspective.from_params(params)

    # -- forward -----------------------------------------------------------------------------------------
    def predict_volume(self, images: Tensor) -> list[Tensor]:
        """VMN logits of each stack ``[N,D,S,S]`` (apply ``sigmoid`` for occupancy)."""
        return self.vmn(images)

    def regress(self, volume: Tensor) -> tuple[dict[str, Tensor], WeakPerspective]:
        """PMN: occupancy ``[N,D,S,S]`` -> ``{"id", "exp", "pose"}`` and the decoded camera."""
        out = self.pmn(volume)
        return out, self.decode_pose(out["pose"])

    def _images(self, batch: Mapping[str, Any]) -> Tensor:
        images = batch["image"]
        if images.ndim == 5:
            images = images.flatten(0, 1)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"image: expected [B,3,H,W] or [B,V,3,H,W], got {tuple(images.shape)}")
        return images

    def reconstruct(self, batch: Mapping[str, Any], render: bool = False) -> FaceReconstruction:
        """One row per image. Stage ``pmn`` reads the ground-truth volume when the batch has the labels (as it
        trains); the other stages the VMN's. Outside training the pose is refined as ``pose_refinement``
        says."""
        flat = flatten_views(batch)
        images = self._images(batch)
        volume = None
        if self.stage == "pmn" and isinstance(flat.get("params"), Mapping):
            try:
                verts_gt = ground_truth_vertices(flat, self.morphable)
                volume = self.target_volume(ground_truth_camera(flat, self.morphable, self.image_size,
                                                                verts_gt), verts_gt)  # fmt: skip
            except ValueError:
                volume = None
        if volume is None:
            volume = torch.sigmoid(self.predict_volume(images)[-1])
        params, camera = self.regress(volume)
        model = self.morphable
        vertices = model(params["id"], params["exp"])
        refine = self.hparams.pose_refinement
        if not self.training and refine == "icp":
            camera = self.refine_pose(camera, vertices, volume)
        elif not self.training and refine == "gt":
            camera = ground_truth_camera(flat, model, self.image_size).to(vertices.device, vertices.dtype)
        params = dict(params, pose=camera.to_params())
        lm3d = model.landmarks(vertices)
        rec = FaceReconstruction(
            vertices=vertices, triangles=model.triangles, landmarks3d=lm3d, landmarks2d=camera.project(lm3d),
            params=params, camera=camera, meta=_meta(flat), views=num_views(batch),
        )  # fmt: skip
        if render:
            out = self.renderer(vertices, model.triangles, camera)
            rec.image, rec.mask = out.image, out.mask
        return rec

    def refine_pose(self, camera: WeakPerspective, vertices: Tensor, volume: Tensor) -> WeakPerspective:
        """ICP of the vertices facing the viewer onto the surface of ``volume`` (at ``icp_resolution``)."""
        res = self.hparams.icp_resolution
        if res is not None and (volume.shape[-1] != res or volume.shape[1] != res):
            volume = F.interpolate(volume[:, None], size=(res, res, res), mode="trilinear",
                                   align_corners=False)[:, 0]  # fmt: skip
        targets = volume_surface(volume.detach().float(), self.image_size, self.z_range)
        normals = vertex_normals(vertices.detach(), self.morphable.triangles)
        facing = (normals @ camera.rotation.transpose(-1, -2).to(normals))[..., 2] > 0
        return weak_perspective_icp(camera.detach(), vertices.detach(), targets, source_mask=facing)

    def neutral_shape(self, rec: FaceReconstruction) -> Tensor:
        """``morphable(id, exp=None)`` ``[N,V,3]`` (mm)."""
        return linear_neutral_shape(self.morphable, rec)

    # -- losses ------------------------------------------------------------------------------------------
    def training_losses(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        flat = flatten_views(batch)
        images = self._images(batch)
        model, h = self.morphable, self.hparams
        verts_gt = ground_truth_vertices(flat, model).to(images)
        cam_gt = ground_truth_camera(flat, model, self.image_size, verts_gt).to(images.device, images.dtype)
        rows = self.valid_rows(flat, "image", "params")
        target = self.target_volume(cam_gt, verts_gt)
        terms: dict[str, Tensor] = {}
        if self.stage in ("vmn", "joint"):
            logits = self.predict_volume(images)
            terms["v"] = sum(volumetric_bce(x, target, rows) for x in logits) / len(logits)
            if self.stage == "vmn":
                terms["total"] = terms["v"]
                return terms
            volume = torch.sigmoid(logits[-1])
        else:
            volume = target
        out, camera = self.regress(volume)
        params = flat["params"]
        scale = PAPER_CROP / self.image_size
        if h.parametric_loss == "single":  # Eq. 8: one loss on the whole posed geometry
            pred = camera.project(model(out["id"], out["exp"]))
            terms["p_single"] = landmark_loss(pred, cam_gt.project(verts_gt), scale=scale, valid=rows)
            parametric = terms["p_single"]
        else:
            terms["id"] = basis_weighted_l2(out["id"], params["id"].to(out["id"]), self.gram_id, rows)
            terms["exp"] = basis_weighted_l2(out["exp"], params["exp"].to(out["exp"]), self.gram_exp, rows)
            lm_gt = model.landmarks(verts_gt)  # Eq. 7: the ground-truth shape under both poses
            terms["p"] = landmark_loss(camera.project(lm_gt), cam_gt.project(lm_gt), scale=scale, valid=rows)
            parametric = terms["id"] + h.lambda_exp * terms["exp"] + h.lambda_p * terms["p"]
        terms["total"] = parametric + (h.lambda_v * terms["v"] if "v" in terms else 0.0)
        return terms

    # -- evaluation: + NME3D (Eq. 11) ---------------------------------------------------------------------
    def evaluate(self, rec: FaceReconstruction, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        out = super().evaluate(rec, batch)
        flat = flatten_views(batch)
        if not isinstance(flat.get("params"), Mapping):
            return out
        try:
            verts_gt = ground_truth_vertices(flat, self.morphable).to(rec.vertices)
            cam_gt = ground_truth_camera(flat, self.morphable, self.image_size, verts_gt)
        except ValueError:
            return out
        if verts_gt.shape != rec.vertices.shape:
            return out
        cam_gt = cam_gt.to(rec.vertices.device, rec.vertices.dtype)
        keep = self.valid_rows(flat, "params")
        pred = image_space_points(rec.camera, rec.vertices.detach())
        gt = image_space_points(cam_gt, verts_gt)
        if keep is not None:
            pred, gt = pred[keep], gt[keep]
        if len(pred):
            from facezoo.metrics import nme3d

            self.val_nme3d.update(pred, gt)
            out["nme3d"] = nme3d(pred, gt).mean()
        return out

    def evaluation_protocol(self, stage: str):
        runner = super().evaluation_protocol(stage)
        if runner.name == "reconstruction" and not getattr(runner, "_mmface", False):
            _add_nme3d(runner)
        return runner

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.hparams.lr)
        decay = self.hparams.lr_decay_epochs
        if decay is None:
            return optimizer
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[int(decay)], gamma=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


def _add_nme3d(runner) -> None:
    """Make a ``reconstruction`` runner report MMFace's NME3D (``val_nme3d``) beside its own metrics."""
    compute = runner.compute

    def compute_with_nme3d(method):
        result = compute(method)
        metric = method.val_nme3d
        if int(metric.count) > 0:
            values = {k: float(v) for k, v in metric.compute().items()}
            result.metrics.update(values)
            from facezoo.metrics.report import format_table

            result.table = format_table({type(method).__name__: result.metrics}, precision=4)
            result.title += "; NME3D: fraction of the 3D box diagonal (MMFace Eq. 11)"
        metric.reset()
        return result

    runner.compute = compute_with_nme3d
    runner._mmface = True


def _meta(flat: Mapping[str, Any]) -> dict[str, Any]:
    return {k: flat[k] for k in ("index", "path", "identity") if k in flat}
