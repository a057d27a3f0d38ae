"""``PreviewGrid``: logs ``input | render overlay | shaded mesh`` grids of the first validation batch."""

from __future__ import annotations

from pathlib import Path

import torch
from facezoo.callbacks.panels import grid, panels, save_png
from lightning.pytorch import Callback

from facezoo.methods.views import flatten_views


class PreviewGrid(Callback):
    """Every ``every_n_epochs`` validation epochs, reconstruct the first ``max_images`` faces of the first
    validation batch and log the grid: to TensorBoard (``add_image("val/preview")``) when the logger has an
    experiment with ``add_image``, else as ``<log_dir>/previews/step_<global_step>.png``.

    Args:
        max_images: faces (rows) per grid.
        every_n_epochs: log every n validation epochs.
    """

    def __init__(self, max_images: int = 8, every_n_epochs: int = 1) -> None:
        super().__init__()
        self.max_images = int(max_images)
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.last_path: Path | None = None

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return
        if not trainer.is_global_zero:
            return
        flat = flatten_views(batch)  # image sets / multi-view: one row per image
        images = flat["image"]
        n = min(self.max_images, images.shape[0])
        with torch.no_grad():  # the images one by one (a set-aggregating method would pool a cut set)
            rec = pl_module.reconstruct({"image": images[:n]}, render=True)
        target = flat["landmarks68"][:n] if "landmarks68" in flat else None
        picture = grid(panels(pl_module, rec, images[:n], target))
        logger = trainer.logger
        experiment = getattr(logger, "experiment", None) if logger is not None else None
        if experiment is not None and hasattr(experiment, "add_image"):
            experiment.add_image("val/preview", picture.cpu(), trainer.global_step)
            return
        root = Path(getattr(logger, "log_dir", None) or trainer.default_root_dir)
        self.last_path = save_png(picture, root / "previews" / f"step_{trainer.global_step:07d}.png")
