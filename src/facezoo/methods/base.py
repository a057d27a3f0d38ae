"""``FaceMethod``: the LightningModule base shared by facezoo's methods (docs/architecture.md, "Methods").

It owns what every method needs and nothing method-specific. The contract, in short:

* **Hooks a method implements** (abstract): ``reconstruct(batch, render=False) -> FaceReconstruction`` (one
  row per input image, :mod:`facezoo.methods.views`), ``neutral_shape(rec) -> [N,V,3]`` (the
  expression-free identity shape of each row, mm; :func:`linear_neutral_shape` for linear models) and
  ``training_losses(batch) -> {term: scalar, ..., "total": scalar}`` (unweighted terms and the weighted
  total). The base's ``training_step`` checks the batch, logs every term as ``train/loss_<term>``, skips a
  step whose total is not finite (counted as ``train/skipped_nonfinite``; ``max_nonfinite_steps`` in a row
  stop the run naming the terms) and returns the total.
* **Stages**: a method lists its training stages in the class attribute ``stages`` (e.g. ``("rnet",
  "cnet")``); the ``stage`` init argument is checked against it. :meth:`load_stage_checkpoint` starts
  sub-networks from an earlier stage's checkpoint (read without running code, loaded strictly; without a
  file it warns and they start fresh), :meth:`freeze_modules` freezes sub-networks and keeps them in eval
  mode (BatchNorm statistics fixed) across ``train()`` calls.
* **View axis**: batches may stack views (``image [B,V,3,H,W]``); losses, :meth:`evaluate`, the metrics
  and the exports use the flat batch :func:`~facezoo.methods.views.flatten_views`, row for row with the
  reconstruction.
* **Mixed batches**: zero-filled labels of a :class:`~facezoo.datamodules.Mixture` batch are marked in
  ``batch["valid"][key]`` (bool ``[B]``); :meth:`valid_rows` gives a loss its row mask (the losses of
  :mod:`facezoo.losses` take ``valid``), and :meth:`evaluate` leaves such rows out.
* **The morphable model**, built from a *spec string* init argument (:func:`build_morphable`), is kept
  **out of checkpoints** (rebuilt from the spec; real models such as the BFM are licence-restricted, so they
  must never travel inside a checkpoint). Such rebuilt modules are "external" (:meth:`register_external`):
  plain attributes, not submodules, that follow the module's device/dtype moves (``_apply``) but have no
  ``state_dict`` keys, so strict loading stays exact. (Not non-persistent buffers: DDP would broadcast the
  model's bases, ~100 MB for the BFM, from rank 0 at every forward, and a frozen recogniser has parameters.)
* A :class:`~facezoo.render.MeshRenderer` for the method's crop size.
* **Evaluation**: vertex error (mm, mean per-vertex distance after a least-squares similarity alignment
  with Umeyama's closed form, when the batch has ground-truth ``params["vertices"]``; a model with another
  vertex count is an error, at setup when the datamodule names its ``morphable_model``) and the 68-point
  landmark NME (:class:`facezoo.metrics.LandmarkNME`), logged as ``val/vertex_error_mm`` and ``val/nme``
  (``test/...`` in testing). ``validation_step``/``test_step`` feed the runner that the datamodule's
  ``protocol`` names (:mod:`facezoo.methods.protocols`); at epoch end its metrics are logged and
  ``facezoo test`` prints its table and writes ``test_results.json``.
* **Batch-key checks**: ``required_keys`` per trainer stage (``"fit"``: the training losses, ``"predict"``:
  ``reconstruct``); validation and test ask the protocol (``predict`` keys + the protocol's own). A
  datamodule's ``provides`` is checked at ``setup`` and every batch on its first use, naming the key and the
  datamodule.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MeanMetric

from facezoo.methods.reconstruction import FaceReconstruction
from facezoo.methods.stages import freeze, load_submodules, read_checkpoint
from facezoo.methods.views import flatten_views, num_views
from facezoo.metrics import LandmarkNME
from facezoo.morphable import MorphableModel


def build_morphable(spec: str | MorphableModel) -> MorphableModel:
    """The morphable model named by ``spec``.

    ``"procedural"`` (the built-in model, 5000 vertices, 80/64/80 components), ``"procedural:<n_vertices>"``,
    ``"procedural:<n_vertices>:<n_id>:<n_exp>:<n_tex>"`` (fewer components, e.g. for CPU demos) or a path to a
    facezoo ``.h5`` file (``facezoo model convert`` writes them). A ``MorphableModel`` instance is returned
    unchanged (for use from Python).

    Example:
        >>> build_morphable("procedural:1000").n_id
        80
    """
    if isinstance(spec, MorphableModel):
        return spec
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"morphable_model: expected a spec string or a MorphableModel, got {spec!r}")
    if spec == "procedural" or spec.startswith("procedural:"):
        from facezoo.morphable.procedural import procedural_model

        rest = spec.partition(":")[2]
        if not rest:
            return procedural_model()
        parts = rest.split(":")
        if len(parts) not in (1, 4) or not all(p.isdigit() for p in parts):
            raise ValueError(
                "morphable_model: expected 'procedural:<n_vertices>' or "
                f"'procedural:<n_vertices>:<n_id>:<n_exp>:<n_tex>', got {spec!r}"
            )
        n = [int(p) for p in parts]
        if len(n) == 1:
            return procedural_model(n_vertices=n[0])
        return procedural_model(n_vertices=n[0], n_id=n[1], n_exp=n[2], n_tex=n[3])
    path = Path(spec).expanduser()
    from facezoo.morphable.hdf5 import load_model, missing_model_message

    if not path.is_file():
        raise FileNotFoundError(missing_model_message(spec))

    return load_model(path)


def check_choice(name: str, value: Any, allowed: tuple) -> None:
    """Reject an init argument outside its choices, naming it and them (LightningCLI checks ``Literal`` types,
    Python callers get this).

    Example:
        >>> check_choice("shading", "flat", ("pixel", "vertex"))
        Traceback (most recent call last):
        ...
        ValueError: shading: expected one of ['pixel', 'vertex'], got 'flat'
    """
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")


def vertex_error(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean per-vertex distance ``[B]`` (mm) after aligning ``pred`` to ``target`` (``[B,V,3]``) with the
    least-squares similarity transform (rotation, translation, isotropic scale; Umeyama) over ``mask`` (bool
    ``[V]``, default all vertices); the error is averaged over the same vertices.

    Example:
        >>> x = torch.randn(1, 50, 3, dtype=torch.float64)
        >>> float(vertex_error(2.0 * x + 1.0, x)) < 1e-9
        True
    """
    from facezoo.geometry.icp import umeyama

    if pred.shape != target.shape or pred.ndim != 3:
        raise ValueError(
            f"pred and target must both be [B,V,3], got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    if mask is not None:
        pred, target = pred[:, mask], target[:, mask]
    p, t = pred.detach().double(), target.detach().double()
    r, tr, s = umeyama(p, t)
    aligned = s[:, None, None] * p @ r.transpose(-1, -2) + tr[:, None]
    return (aligned - t).norm(dim=-1).mean(-1).to(pred.dtype)


def linear_neutral_shape(model: MorphableModel, rec: FaceReconstruction) -> Tensor:
    """``neutral_shape`` of a linear-model method: ``model(rec.params["id"], exp=None)`` ``[N,V,3]`` (mm),
    without gradients.

    Example:
        >>> m = build_morphable("procedural:600")
        >>> rec = FaceReconstruction(m.mean[None], m.triangles, torch.zeros(1, 68, 3), torch.zeros(1, 68, 2),
        ...                          params={"id": torch.zeros(1, m.n_id)})
        >>> torch.equal(linear_neutral_shape(m, rec)[0], m.mean)
        True
    """
    ident = rec.params.get("id") if isinstance(rec.params, Mapping) else None
    if not isinstance(ident, Tensor):
        raise ValueError(
            f"neutral shape: needs rec.params['id'] (identity coefficients); got {sorted(rec.params)}"
        )
    with torch.no_grad():
        return model(ident.detach(), None)


class FaceMethod(LightningModule, metaclass=abc.ABCMeta):
    """Base LightningModule of facezoo's methods (the contract is in the module docstring).

    Args:
        morphable_model: spec of the morphable model (:func:`build_morphable`).
        image_size: side of the square input crops (pixels).
        renderer_backend: rasterizer backend (``"auto"``, ``"builtin"``, ``"nvdiffrast"``).
        eval_mask: name of a model mask for the vertex error (e.g. ``"front"``); ``None`` = all vertices, also
            used when the model has no such mask.
        stage: the training stage, one of the class's :attr:`stages` (default: the first); ``None`` for a
            method without stages.
        max_nonfinite_steps: stop the run after this many training steps in a row whose loss is not finite
            (each is skipped and counted).
    """

    #: the method's training stages, in order (empty: a single-stage method).
    stages: ClassVar[tuple[str, ...]] = ()
    #: batch keys needed per trainer stage: "fit" (training losses), "predict" (``reconstruct``).
    required_keys: ClassVar[dict[str, tuple[str, ...]]] = {"fit": ("image",), "predict": ("image",)}

    def __init__(
        self,
        morphable_model: str = "procedural",
        image_size: int = 224,
        renderer_backend: str = "auto",
        eval_mask: str | None = "front",
        stage: str | None = None,
        max_nonfinite_steps: int = 10,
    ) -> None:
        super().__init__()
        from facezoo.render import MeshRenderer

        if not isinstance(image_size, int) or image_size < 16:
            raise ValueError(f"image_size: expected an int >= 16, got {image_size!r}")
        if self.stages:
            stage = self.stages[0] if stage is None else stage
            check_choice("stage", stage, self.stages)
        elif stage is not None:
            raise ValueError(f"stage: {type(self).__name__} has no training stages, got {stage!r}")
        if (
            isinstance(max_nonfinite_steps, bool)
            or not isinstance(max_nonfinite_steps, int)
            or max_nonfinite_steps < 1
        ):
            raise ValueError(f"max_nonfinite_steps: expected an int >= 1, got {max_nonfinite_steps!r}")
        self.stage = stage
        self.max_nonfinite_steps = max_nonfinite_steps
        self._externals: dict[str, nn.Module] = {}
        self._frozen: list[str] = []
        self.register_external("morphable", build_morphable(morphable_model))
        self.image_size = image_size
        self.renderer = MeshRenderer((image_size, image_size), backend=renderer_backend)
        self.eval_mask = eval_mask
        self.val_vertex_error = MeanMetric()
        self.val_nme = LandmarkNME()
        self._checked_stages: set[str] = set()
        self._runners: dict[str, Any] = {}
        self._nonfinite = {"streak": 0, "skipped": 0, "pending": False, "terms": set()}

    # -- externals: modules rebuilt from init args, never in state_dict -------------------------------------
    def register_external(self, name: str, module: nn.Module) -> None:
        """Attach ``module`` as ``self.<name>`` without making it a submodule: it follows device/dtype moves
        but has no ``state_dict`` keys and is not seen by DDP (it is rebuilt from the init arguments)."""
        if name in self._modules or name in self._parameters or name in self._buffers:
            raise ValueError(f"register_external: {name!r} is already a submodule, parameter or buffer")
        self._externals[name] = module
        object.__setattr__(self, name, module)  # a plain attribute: nn.Module would register a submodule

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        for module in self.__dict__.get("_externals", {}).values():
            module._apply(fn, *args, **kwargs)
        return self

    # -- stages ----------------------------------------------------------------------------------------------
    def load_stage_checkpoint(
        self, path: str | None, modules: Sequence[str], argument: str
    ) -> dict[str, Any] | None:
        """Start the sub-networks ``modules`` (attribute names) from an earlier stage's checkpoint.

        Args:
            path: a Lightning checkpoint (or ``torch.save({"state_dict": ...})``) of the earlier stage; its
                ``<module>.*`` weights load strictly (missing / unexpected keys and shape mismatches are
                named).
                ``None`` or ``""``: a warning, and the modules keep their fresh initialisation.
            modules: the sub-networks to load, e.g. ``("rnet",)``.
            argument: the init argument that gave ``path`` (for messages), e.g. ``"rnet_checkpoint"``.

        Returns:
            The checkpoint's content (e.g. to compare its ``hyper_parameters``), or ``None`` without a file.
        """
        names = ", ".join(modules)
        if not path:
            rank_zero_warn(
                f"{type(self).__name__} stage {self.stage!r}: no {argument} given, so {names} start(s) "
                "from a fresh initialisation instead of an earlier stage's weights"
            )
            return None
        ckpt = read_checkpoint(path, argument)
        state = ckpt.get("state_dict", ckpt)
        load_submodules(state, {m: self.get_submodule(m) for m in modules}, source=f"{argument} {path}")
        return ckpt

    def freeze_modules(self, *names: str) -> None:
        """Freeze the sub-networks ``names``: no gradients, and eval mode (BatchNorm statistics fixed) that
        survives every later ``train()`` call."""
        for name in names:
            freeze(self.get_submodule(name))
            if name not in self._frozen:
                self._frozen.append(name)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.__dict__.get("_frozen", ()):
            self.get_submodule(name).eval()
        return self

    # -- batch-key checks ------------------------------------------------------------------------------------
    def _keys_for(self, stage: str) -> tuple[str, ...]:
        """The keys of ``required_keys[stage]`` for ``"fit"``/``"predict"`` (validation and test ask the
        protocol, :meth:`_setup_keys`)."""
        return tuple(self.required_keys.get(stage, self.required_keys.get("fit", ())))

    def _setup_keys(self, stage: str, dm) -> tuple[str, ...]:
        from facezoo.methods.protocols import protocol_for

        if stage == "predict":
            return self._keys_for("predict")
        protocol_keys = tuple(protocol_for(dm).required_keys(self, "test"))
        if stage in ("validate", "test"):
            return protocol_keys
        return self._keys_for("fit") + tuple(k for k in protocol_keys if k not in self._keys_for("fit"))

    def setup(self, stage: str) -> None:
        dm = self._datamodule()
        provides = getattr(dm, "provides", None)
        if provides is not None:
            missing = [k for k in self._setup_keys(stage, dm) if k not in provides]
            if missing:
                raise ValueError(
                    f"{type(self).__name__} ({stage}) needs batch key(s) {missing}, which datamodule "
                    f"{type(dm).__name__} does not provide (it provides {sorted(provides)})"
                )
        if stage != "predict" and (provides is None or "params" in provides):
            from facezoo.methods.protocols import protocol_for

            if dm is not None and protocol_for(dm).name == "reconstruction":  # the one that compares vertices
                self._check_data_model(dm)

    def _check_data_model(self, dm) -> None:
        """The vertex error compares meshes vertex by vertex: the datamodule's model (``morphable_model``)
        must have the method's vertex count."""
        spec = getattr(dm, "morphable_model", None)
        if spec is None:
            return
        model = getattr(dm, "model", None)
        model = model if isinstance(model, MorphableModel) else build_morphable(spec)
        if model.n_vertices != self.morphable.n_vertices:
            raise ValueError(
                f"{type(dm).__name__} renders faces of morphable_model={_spec_name(spec)} "
                f"({model.n_vertices} vertices) and {type(self).__name__} reconstructs with "
                f"morphable_model={self.morphable.name!r} ({self.morphable.n_vertices} vertices): the vertex "
                "error needs the same mesh; give both the same model"
            )

    def check_batch(self, batch: Mapping[str, Any], stage: str) -> None:
        """Raise if ``batch`` lacks a key this method needs in ``stage`` (``"fit"``/``"predict"``; checked
        once per stage)."""
        if stage in self._checked_stages:
            return
        missing = [k for k in self._keys_for(stage) if k not in batch]
        if missing:
            dm = self._datamodule()
            source = type(dm).__name__ if dm is not None else "the dataloader"
            raise ValueError(
                f"{type(self).__name__} ({stage}) needs batch key(s) {missing}, which {source} does not "
                f"provide (batch keys: {sorted(batch)})"
            )
        self._checked_stages.add(stage)

    @staticmethod
    def valid_rows(batch: Mapping[str, Any], *keys: str) -> Tensor | None:
        """Bool ``[N]``: the rows of a (flat) batch whose ``keys`` are real, not zero-filled placeholders of
        a mixed batch (``batch["valid"]``; a key ``"params"`` covers every ``"params.*"`` entry). ``None``
        when every row is real (the losses then take their unmasked path).

        Example:
            >>> yes_no, no_yes = torch.tensor([True, False]), torch.tensor([False, True])
            >>> b = {"valid": {"landmarks68": yes_no, "params.id": no_yes}}
            >>> FaceMethod.valid_rows(b, "landmarks68").tolist(), FaceMethod.valid_rows(b, "image") is None
            ([True, False], True)
            >>> FaceMethod.valid_rows(b, "landmarks68", "params").tolist()
            [False, False]
        """
        masks = batch.get("valid") if isinstance(batch, Mapping) else None
        if not masks:
            return None
        out = None
        for key in keys:
            for name, m in masks.items():
                if name == key or name.startswith(f"{key}."):
                    m = torch.as_tensor(m).to(torch.bool)
                    out = m if out is None else out & m.to(out.device)
        return out

    # -- the method's interface ------------------------------------------------------------------------------
    @abc.abstractmethod
    def reconstruct(self, batch: Mapping[str, Any], render: bool = False) -> FaceReconstruction:
        """Reconstruct the faces of ``batch`` as the loader gives it (``image [B,3,H,W]`` or ``[B,V,3,H,W]``).

        Returns:
            A :class:`FaceReconstruction` with one row per image (``N = B`` or ``B*V``, sample-major, and
            ``views = V``): ``vertices [N,V,3]`` model-space mm, ``landmarks2d [N,68,2]`` crop pixels,
            ``params`` in the :mod:`facezoo.nn` vocabulary, ``camera``; with ``render=True`` also
            ``image [N,3,H,W]`` and ``mask [N,1,H,W]``.
        """

    @abc.abstractmethod
    def neutral_shape(self, rec: FaceReconstruction) -> Tensor:
        """The expression-free identity shape ``[N,V,3]`` (mm, model space, no gradients) of each row of
        ``rec`` (MICC's neutral scans, verification embeddings); :func:`linear_neutral_shape` for linear
        models."""

    @abc.abstractmethod
    def training_losses(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """The training loss terms of ``batch`` (scalars, unweighted, logged as ``train/loss_<term>``) and
        their weighted sum under ``"total"`` (logged as ``train/loss`` and optimised)."""

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        self.check_batch(batch, "fit")
        terms = self.training_losses(batch)
        self.log_losses(terms, "train", batch_size=batch["image"].shape[0] * num_views(batch))
        self._watch_nonfinite(terms)
        return terms["total"]

    def log_losses(
        self, terms: Mapping[str, Tensor], prefix: str = "train", batch_size: int | None = None
    ) -> None:
        """Log every loss term as ``<prefix>/loss_<term>`` (and the total as ``<prefix>/loss``)."""
        for name, value in terms.items():
            key = f"{prefix}/loss" if name == "total" else f"{prefix}/loss_{name}"
            self.log(key, value.detach(), prog_bar=name == "total", batch_size=batch_size)

    # -- non-finite losses: skip the step, count, stop after max_nonfinite_steps in a row ------------------
    def _watch_nonfinite(self, terms: Mapping[str, Tensor]) -> None:
        """Note a non-finite total (one device sync per step) and the terms that were not finite; the
        decision to skip is taken in :meth:`on_before_optimizer_step`, the same on every rank."""
        if not bool(torch.isfinite(terms["total"].detach()).all()):
            state = self._nonfinite
            state["pending"] = True
            state["terms"] |= {k for k, v in terms.items() if not bool(torch.isfinite(v.detach()).all())}

    def on_before_optimizer_step(self, optimizer) -> None:
        """Skip the update of a step whose loss was not finite (on every rank, if any had one): gradients set
        to ``None`` make the optimizer leave every parameter (and its moments) as it was. (Returning ``None``
        from ``training_step`` would skip it too, but Lightning refuses that under DDP.) Counts the skips
        (``train/skipped_nonfinite``) and stops the run after ``max_nonfinite_steps`` in a row, on every
        rank at the same step."""
        state = self._nonfinite
        skip = state["pending"]
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:  # the same decision on every rank
            flag = torch.tensor(float(skip), device=self.device)
            skip = float(trainer.strategy.reduce(flag, reduce_op="sum")) > 0
        state["pending"] = False
        if not skip:
            state["streak"], state["terms"] = 0, set()
        else:
            optimizer.zero_grad(set_to_none=True)
            state["streak"] += 1
            state["skipped"] += 1
        if trainer is not None:
            self.log("train/skipped_nonfinite", float(state["skipped"]), reduce_fx="max")
        if state["streak"] >= self.max_nonfinite_steps:
            terms = sorted(state["terms"]) or "non-finite on another rank"
            raise FloatingPointError(
                f"{type(self).__name__}: {state['streak']} training steps in a row had a non-finite loss "
                f"(terms {terms}); stopping (max_nonfinite_steps={self.max_nonfinite_steps}). Lower the "
                "learning rate or check the data of those terms."
            )

    # -- evaluation ------------------------------------------------------------------------------------------
    def _eval_mask(self, n_vertices: int) -> Tensor | None:
        model = self.morphable
        if self.eval_mask and self.eval_mask in model.mask_names and model.n_vertices == n_vertices:
            return model.mask(self.eval_mask)
        return None

    def evaluate(self, rec: FaceReconstruction, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Update the metrics with one batch (``batch`` as the loader gives it; flattened here, row for row
        with ``rec``); rows whose labels are placeholders (``batch["valid"]``) are left out. Returns the
        batch's own values (for callers that print)."""
        flat = flatten_views(batch)
        out: dict[str, Tensor] = {}
        params = flat.get("params")
        gt = params.get("vertices") if isinstance(params, Mapping) else None
        if gt is not None:
            if tuple(gt.shape) != tuple(rec.vertices.shape):
                raise ValueError(
                    f"evaluate: ground-truth params['vertices'] {tuple(gt.shape)} do not match the "
                    f"reconstruction {tuple(rec.vertices.shape)} of morphable_model={self.morphable.name!r}: "
                    "the data come from another model (give both the same morphable_model)"
                )
            keep = self.valid_rows(flat, "params.vertices")
            pred, gt = (rec.vertices, gt) if keep is None else (rec.vertices[keep], gt[keep])
            if len(pred):
                err = vertex_error(pred, gt.to(pred), self._eval_mask(gt.shape[1]))
                self.val_vertex_error.update(err)
                out["vertex_error_mm"] = err.mean()
        if "landmarks68" in flat:
            keep = self.valid_rows(flat, "landmarks68")
            pred, target = rec.landmarks2d.detach(), flat["landmarks68"].to(rec.landmarks2d)
            yaw, affine = flat.get("yaw"), flat.get("affine")
            if keep is not None:
                pred, target = pred[keep], target[keep]
                yaw = yaw[keep] if isinstance(yaw, Tensor) else yaw
                affine = affine[keep] if isinstance(affine, Tensor) else affine
            if len(pred):
                # AFLW2000-3D protocol: per-|yaw| buckets, NME in the original image: the crop affine undone
                # for the predictions AND the ground truth (landmarks68 are crop pixels like the predictions)
                from facezoo.metrics import crop_to_original, landmark_nme

                index = flat.get("index")
                index = index[keep] if isinstance(index, Tensor) and keep is not None else index
                target_orig = crop_to_original(target, affine) if isinstance(affine, Tensor) else target
                self.val_nme.update(pred, target_orig, yaw=yaw, crop_transform=affine, index=index)

                out["nme"] = landmark_nme(pred, target).mean()
        return out

    # -- evaluation protocols (facezoo.methods.protocols): the datamodule's ``protocol`` picks the runner
    def evaluation_protocol(self, stage: str):
        """The protocol runner of this ``stage``'s epoch (``"val"``/``"test"``), created on first use for the
        trainer's datamodule (:func:`facezoo.methods.protocols.protocol_for`)."""
        runner = self._runners.get(stage)
        if runner is None:
            from facezoo.methods.protocols import protocol_for

            dm = self._datamodule()
            runner = self._runners[stage] = protocol_for(dm)(self, dm)
        return runner

    def _datamodule(self):
        trainer = self._trainer
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    def _eval_step(self, batch: Mapping[str, Any], stage: str) -> None:
        runner = self.evaluation_protocol(stage)
        # bad samples dropped with on_bad_sample="skip": counted and reported with the result (reliability)
        self.__dict__.setdefault("_skip_reasons", {}).setdefault(stage, []).extend(batch.get("skipped", ()))
        if "image" in batch:  # a batch whose every sample was bad holds only "skipped"
            runner.update(self, batch)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _finish_protocol(self, stage: str):
        """Compute (collectively) and drop the epoch's runner; log its metrics as ``<stage>/<key>``."""
        runner = self._runners.pop(stage, None)
        if runner is None:
            return None, None
        result = runner.compute(self)
        from facezoo.metrics.report import add_skipped

        add_skipped(result, self.__dict__.get("_skip_reasons", {}).pop(stage, []))
        if self._trainer is not None:
            for name, value in result.metrics.items():
                self.log(f"{stage}/{name}", value)
        return runner, result

    def on_validation_epoch_end(self) -> None:
        self._finish_protocol("val")

    def on_test_epoch_end(self) -> None:
        """``facezoo test``: log the protocol's metrics, print its table (AFLW2000-3D: NME as logged, a
        fraction, per yaw bucket and the mean of the bucket means; MICC: RMSE per video type; pairs:
        verification accuracy; the count and files of skipped bad samples) and write ``test_results.json``
        beside the run's logs (rank 0)."""
        runner, result = self._finish_protocol("test")
        trainer = self._trainer
        if result is None or not result.metrics or trainer is None or not trainer.is_global_zero:
            return
        from facezoo.metrics.report import write_json

        name = type(self).__name__
        print(f"\n{result.title}:\n{result.table}")
        out = Path(trainer.log_dir or trainer.default_root_dir) / "test_results.json"
        write_json(
            {"method": name, "protocol": runner.name, "metrics": result.metrics, **result.details}, out
        )
        print(f"wrote {out}")

    def predict_step(
        self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> FaceReconstruction:
        self.check_batch(batch, "predict")
        return self.reconstruct(batch, render=True).detach()


def _spec_name(spec: Any) -> str:
    return repr(spec.name) if isinstance(spec, MorphableModel) else repr(spec)
