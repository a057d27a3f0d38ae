"""``ModelCard``: a card (JSON) beside every checkpoint at the end of fit and test.

Add it to any run: ``--trainer.callbacks+=facezoo.callbacks.ModelCard``. At the end of ``fit`` it writes
``<stem>.card.json`` beside each checkpoint the run's ``ModelCheckpoint`` callbacks saved (best, last and the
top-k kept), with the method and its hyper-parameters, the datamodule and its hyper-parameters, the resolved
config (``config.yaml`` that LightningCLI saved in the log folder, when there is one), the logged metrics
(``trainer.callback_metrics``), the checkpoint's sha256 and the versions (:mod:`facezoo.hub.card`). At the end
of ``test`` the card of the tested checkpoint (``--ckpt_path``) is written or updated with the test metrics
under ``test_metrics``.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback

from facezoo.hub.card import make_card, read_card, write_card

__all__ = ["ModelCard"]


def _config(trainer) -> str | None:
    log_dir = getattr(trainer, "log_dir", None)
    path = Path(log_dir) / "config.yaml" if log_dir else None
    return path.read_text(encoding="utf-8") if path is not None and path.is_file() else None


def _data(trainer) -> dict:
    dm = getattr(trainer, "datamodule", None)
    if dm is None:
        return {}
    return {"class": f"{type(dm).__module__}.{type(dm).__name__}", "hyper_parameters": dict(dm.hparams)}


class ModelCard(Callback):
    """Write ``<checkpoint stem>.card.json`` beside each checkpoint at the end of fit and test.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> trainer = Trainer(callbacks=[ModelCard()], logger=False, enable_progress_bar=False)
    """

    def __init__(self) -> None:
        self.written: list[Path] = []

    def _card(self, trainer, module, path: Path, metrics: dict, extra: dict | None = None) -> dict:
        return make_card(
            path,
            method=f"{type(module).__module__}.{type(module).__name__}",
            hyper_parameters=dict(module.hparams),
            data=_data(trainer),
            config=_config(trainer),
            metrics=metrics,
            global_step=trainer.global_step,
            extra=extra,
        )

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        paths = set()
        for callback in trainer.checkpoint_callbacks:
            for name in ("best_model_path", "last_model_path"):
                if getattr(callback, name, ""):
                    paths.add(getattr(callback, name))
            paths.update(getattr(callback, "best_k_models", {}) or {})
        metrics = dict(trainer.callback_metrics)
        for path in sorted(Path(p) for p in paths if p and Path(p).is_file()):
            self.written.append(write_card(path, self._card(trainer, pl_module, path, metrics)))

    def on_test_end(self, trainer, pl_module) -> None:
        path = getattr(trainer, "ckpt_path", None)
        if not trainer.is_global_zero or not path or not Path(path).is_file():
            return
        path = Path(path)
        card = read_card(path) or self._card(trainer, pl_module, path, {})
        card["test_metrics"] = make_card(path, metrics=dict(trainer.callback_metrics))["metrics"]
        self.written.append(write_card(path, card))
