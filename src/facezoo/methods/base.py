"""``FaceMethod``: the small LightningModule base shared by facezoo's methods (DESIGN.md "Methods").

It owns what every method needs and nothing method-specific:

* the morphable model, built from a *spec string* init argument (:func:`build_morphable`) and kept **out of
  checkpoints** (it is rebuilt from the spec; real models such as the BFM are licence-restricted, so they must
  never travel inside a checkpoint). Such rebuilt modules are "external": they move with the LightningModule
  (``.to()``, ``.half()``...) but have no ``state_dict`` keys, so strict loading stays exact;
* a :class:`~facezoo.render.MeshRenderer` for the method's crop size;
* evaluation metrics: vertex error (mm, mean per-vertex distance after a least-squares similarity alignment
  with Umeyama's closed form, when the batch has ground-truth ``params["vertices"]``) and the 68-point
  landmark NME (:class:`facezoo.metrics.LandmarkNME`, bounding-box normaliser), logged as
  ``val/vertex_error_mm`` and ``val/nme`` (``test/...`` in testing);
* evaluation protocols: ``validation_step``/``test_step`` feed the runner that the datamodule's ``protocol``
  names (:mod:`facezoo.methods.protocols`: ``reconstruction`` (the metrics above), ``micc``,
  ``verification``); at epoch end its metrics are logged and ``facezoo test`` prints its table and writes
  ``test_results.json``;
* batch-key checks: a method lists the keys it needs per stage (``required_keys``); a datamodule that declares
  what it ``provides`` is checked at ``setup``, and every datamodule is checked on its first batch, with an
  error naming the key and the datamodule.

Subclasses implement ``reconstruct(batch) -> FaceReconstruction`` and ``training_step`` (logging every term
through :meth:`log_losses`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MeanMetric

from facezoo.methods.reconstruction import FaceReconstruction
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


class FaceMethod(LightningModule):
    """Base LightningModule of facezoo's methods.

    Args:
        morphable_model: spec of the morphable model (:func:`build_morphable`).
        image_size: side of the square input crops (pixels).
        renderer_backend: rasterizer backend (``"auto"``, ``"builtin"``, ``"nvdiffrast"``).
        eval_mask: name of a model mask for the vertex error (e.g. ``"front"``); ``None`` = all vertices, also
            used when the model has no such mask.
    """

    #: batch keys needed per trainer stage ("fit" covers training and validation losses).
    required_keys: ClassVar[dict[str, tuple[str, ...]]] = {"fit": ("image",), "predict": ("image",)}

    def __init__(
        self,
        morphable_model: str = "procedural",
        image_size: int = 224,
        renderer_backend: str = "auto",
        eval_mask: str | None = "front",
    ) -> None:
        super().__init__()
        from facezoo.render import MeshRenderer

        if not isinstance(image_size, int) or image_size < 16:
            raise ValueError(f"image_size: expected an int >= 16, got {image_size!r}")
        self._externals: dict[str, nn.Module] = {}
        self.register_external("morphable", build_morphable(morphable_model))
        self.image_size = image_size
        self.renderer = MeshRenderer((image_size, image_size), backend=renderer_backend)
        self.eval_mask = eval_mask
        self.val_vertex_error = MeanMetric()
        self.val_nme = LandmarkNME()
        self._checked_stages: set[str] = set()
        self._runners: dict[str, Any] = {}

    # -- externals: modules rebuilt from init args, never in state_dict
    def register_external(self, name: str, module: nn.Module) -> None:
        """Attach ``module`` as ``self.<name>`` without making it a submodule: it follows device/dtype moves
        but has no ``state_dict`` keys (it is rebuilt from the init arguments)."""
        self._externals[name] = module

    def __getattr__(self, name: str) -> Any:
        externals = self.__dict__.get("_externals")
        if externals is not None and name in externals:
            return externals[name]
        return super().__getattr__(name)

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        for module in self.__dict__.get("_externals", {}).values():
            module._apply(fn, *args, **kwargs)
        return self

    # -- batch-key checks
    # ----------------------------------------------------------------------------------------
    def _keys_for(self, stage: str) -> tuple[str, ...]:
        return tuple(self.required_keys.get(stage, self.required_keys.get("fit", ())))

    def setup(self, stage: str) -> None:
        trainer = self._trainer
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        provides = getattr(dm, "provides", None)
        if provides is not None:
            keys = self._keys_for(stage)
            if stage in ("validate", "test"):
                from facezoo.methods.protocols import protocol_for

                keys = protocol_for(dm).required_keys(self, stage)
            missing = [k for k in keys if k not in provides]
            if missing:
                raise ValueError(
                    f"{type(self).__name__} ({stage}) needs batch key(s) {missing}, which datamodule "
                    f"{type(dm).__name__} does not provide (it provides {sorted(provides)})"
                )

    def check_batch(self, batch: Mapping[str, Any], stage: str) -> None:
        """Raise if ``batch`` lacks a key this method needs in ``stage`` (checked once per stage)."""
        if stage in self._checked_stages:
            return
        missing = [k for k in self._keys_for(stage) if k not in batch]
        if missing:
            trainer = self._trainer
            dm = getattr(trainer, "datamodule", None) if trainer is not None else None
            source = type(dm).__name__ if dm is not None else "the dataloader"
            raise ValueError(
                f"{type(self).__name__} ({stage}) needs batch key(s) {missing}, which {source} does not "
                "provide "
                f"(batch keys: {sorted(batch)})"
            )
        self._checked_stages.add(stage)

    # -- the method's interface
    def reconstruct(
        self, batch: Mapping[str, Any], render: bool = False
    ) -> FaceReconstruction:  # pragma: no cover
        """Reconstruct the faces of ``batch`` (``render=True`` also fills ``image``/``mask``)."""
        raise NotImplementedError

    def log_losses(
        self, terms: Mapping[str, Tensor], prefix: str = "train", batch_size: int | None = None
    ) -> None:
        """Log every loss term as ``<prefix>/loss_<term>`` (and the total as ``<prefix>/loss``)."""
        for name, value in terms.items():
            key = f"{prefix}/loss" if name == "total" else f"{prefix}/loss_{name}"
            self.log(key, value.detach(), prog_bar=name == "total", batch_size=batch_size)

    # -- evaluation
    def _eval_mask(self, n_vertices: int) -> Tensor | None:
        model = self.morphable
        if self.eval_mask and self.eval_mask in model.mask_names and model.n_vertices == n_vertices:
            return model.mask(self.eval_mask)
        return None

    def evaluate(self, rec: FaceReconstruction, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Update the metrics with one batch; returns the batch's own values (for callers that print)."""
        out: dict[str, Tensor] = {}
        gt = batch.get("params", {}).get("vertices") if isinstance(batch.get("params"), Mapping) else None
        if gt is not None:
            gt = gt.reshape(rec.vertices.shape) if gt.numel() == rec.vertices.numel() else None
        if gt is not None:
            err = vertex_error(rec.vertices, gt.to(rec.vertices), self._eval_mask(gt.shape[1]))
            self.val_vertex_error.update(err)
            out["vertex_error_mm"] = err.mean()
        if "landmarks68" in batch:
            target = batch["landmarks68"].reshape(rec.landmarks2d.shape).to(rec.landmarks2d)
            # AFLW2000-3D protocol: per-|yaw| buckets, NME measured in the original image (crop affine undone)
            self.val_nme.update(
                rec.landmarks2d.detach(), target, yaw=batch.get("yaw"), crop_transform=batch.get("affine"),
                index=batch.get("index"),
            )  # fmt: skip
            from facezoo.metrics import landmark_nme

            out["nme"] = landmark_nme(rec.landmarks2d.detach(), target).mean()
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
