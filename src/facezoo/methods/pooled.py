"""``PooledSingleView``: any single-view method evaluated on multi-view sets with "+pool" averaging.

MVF-Net (mvfnet.txt §4.4, Table 2) compares against single-view methods on the same three-view triplets:
"to average the three predicted 3D models in a triplet and then compute the point-to-plane errors between the
pooled 3D model with ground-truth model (shown in Table 2 as '+pool' entries)". This wrapper runs any
single-view :class:`~facezoo.methods.FaceMethod` (Deep3DFace, MMFace, ... given by class path, e.g.
``facezoo.methods.MMFace``, and its init arguments) on every image of a set and replaces each row's mesh by
the set's mean mesh (vertex-wise, in model space), and its neutral shape by the mean of the rows' neutral
shapes (exact for any decoder, linear or not). Cameras and 2D landmarks stay per image. On single images it
is the wrapped method.

Training (``facezoo fit``) trains the wrapped method on every image of the sets (its own losses, one row per
image); usually one loads a trained single-view checkpoint with ``checkpoint`` and only evaluates.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import torch  # noqa: F401 (the doctests use it)
from torch import Tensor

from facezoo.methods.base import FaceMethod
from facezoo.methods.reconstruction import FaceReconstruction
from facezoo.methods.stages import read_checkpoint
from facezoo.methods.views import flatten_views, num_views, unflatten_views


def _method_class(path: str) -> type[FaceMethod]:
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name) if module else None
    except (ImportError, AttributeError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, FaceMethod)):
        raise ValueError(
            f"method: expected the class path of a facezoo FaceMethod (e.g. 'facezoo.methods.Deep3DFace'), "
            f"got {path!r}"
        )
    return cls


def _build_inner(cls: type[FaceMethod], args: dict[str, Any]) -> FaceMethod:
    """``cls(**args)`` with its own hyper-parameters: LightningCLI hands the hyper-parameters of the module it
    instantiates (this wrapper's) to every ``save_hyperparameters`` call made meanwhile through a context
    variable, which would give the wrapped method ours instead of its init arguments."""
    try:
        from lightning.pytorch.core.mixins import hparams_mixin

        var = hparams_mixin._given_hyperparameters
    except (ImportError, AttributeError):  # another Lightning version: nothing to undo
        return cls(**args)
    token = var.set(None)
    try:
        return cls(**args)
    finally:
        var.reset(token)


def pool_rows(x: Tensor, views: int) -> Tensor:
    """Each set's mean repeated over its rows: ``[B*V,...] -> [B*V,...]``.

    Example:
        >>> pool_rows(torch.tensor([[0.0], [2.0], [4.0], [6.0]]), 2).flatten().tolist()
        [1.0, 1.0, 5.0, 5.0]
    """
    return unflatten_views(x, views).mean(1, keepdim=True).expand(-1, views, *x.shape[1:]).flatten(0, 1)


class PooledSingleView(FaceMethod):
    """A single-view method + "+pool" over each set (module docstring).

    Args:
        method: class path of the single-view method (``facezoo.methods.Deep3DFace``; MMFace and others by
            their path).
        method_args: its init arguments (``morphable_model``, ``image_size``, its network...).
        checkpoint: optional Lightning checkpoint of that method, loaded strictly (read without running code).
    """

    def __init__(
        self,
        method: str = "facezoo.methods.Deep3DFace",
        method_args: dict[str, Any] | None = None,
        checkpoint: str | None = None,
    ) -> None:
        inner = _build_inner(_method_class(method), method_args or {})
        super().__init__(
            inner.morphable, inner.image_size, inner.renderer.backend, inner.eval_mask, stage=None,
            max_nonfinite_steps=inner.max_nonfinite_steps,
        )  # fmt: skip
        self.save_hyperparameters()
        self.required_keys = inner.required_keys  # instance attribute: the wrapped method's keys
        self.inner = inner
        if checkpoint:
            ckpt = read_checkpoint(checkpoint, "checkpoint")
            inner.load_state_dict(ckpt.get("state_dict", ckpt), strict=True)

    def configure_optimizers(self):
        return self.inner.configure_optimizers()

    def on_fit_start(self) -> None:
        self.inner.on_fit_start()

    def reconstruct(self, batch: Mapping[str, Any], render: bool = False) -> FaceReconstruction:
        """The wrapped method on every image; each set's rows get the set's mean mesh (``views = V``)."""
        v = num_views(batch)
        rec = self.inner.reconstruct(flatten_views(batch), render=render)
        if v == 1:
            return rec
        neutral = self.inner.neutral_shape(rec)
        rec.vertices = pool_rows(rec.vertices, v)
        rec.landmarks3d = pool_rows(rec.landmarks3d, v)
        rec.meta = dict(rec.meta, neutral_shape=pool_rows(neutral, v))
        rec.views = v
        return rec

    def neutral_shape(self, rec: FaceReconstruction) -> Tensor:
        """The pooled neutral shape when ``rec`` came from :meth:`reconstruct` on sets, else the wrapped
        method's."""
        pooled = rec.meta.get("neutral_shape")
        return pooled.detach() if isinstance(pooled, Tensor) else self.inner.neutral_shape(rec)

    def training_losses(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        return self.inner.training_losses(flatten_views(batch))


__all__ = ["PooledSingleView", "pool_rows"]
