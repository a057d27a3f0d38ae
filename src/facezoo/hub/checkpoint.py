"""facezoo checkpoints as files: read one into its LightningModule, write slim (inference) copies atomically.

A facezoo checkpoint is a Lightning checkpoint: ``state_dict`` and ``hyper_parameters`` (the method's init
arguments; LightningCLI adds ``_class_path``). The morphable model is never in it: it is rebuilt from the
``morphable_model`` argument (a procedural spec, or a converted ``.h5`` the user is licensed to hold).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

__all__ = ["SLIM_KEYS", "build_module", "is_training_file", "load_checkpoint_module", "save_atomic", "slim"]

#: what an inference checkpoint keeps (the optimiser and loop states are training-only)
SLIM_KEYS = ("state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch", "global_step", "facezoo")
#: init arguments that name training-time input files (besides every ``*_weights`` and ``*_checkpoint``: a
#: backbone's initialisation, an earlier stage, a loss network); their content is in the state dict or only
#: needed by a training loss, so a loaded checkpoint does not look for them on this machine
_TRAINING_FILES = ("skin_classifier",)


def is_training_file(argument: str) -> bool:
    """Whether the init argument ``argument`` names a training-time file (see ``_TRAINING_FILES``).

    Example:
        >>> [is_training_file(k) for k in ("vmn_checkpoint", "flow_weights", "morphable_model")]
        [True, True, False]
    """
    return argument.endswith(("_weights", "_checkpoint")) or argument in _TRAINING_FILES


def slim(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The inference part of a Lightning checkpoint (weights, hyper-parameters, step; no optimiser state).

    Example:
        >>> sorted(slim({"state_dict": {}, "optimizer_states": [{}], "global_step": 3}))
        ['global_step', 'state_dict']
    """
    return {k: ckpt[k] for k in SLIM_KEYS if k in ckpt}


def save_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to ``<path>.tmp`` then rename: the final name only ever holds a complete file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def _method_class(ckpt: dict[str, Any], what: str, method: str | None):
    from facezoo import methods

    hp = ckpt.get("hyper_parameters") or {}
    class_path = hp.get("_class_path") if isinstance(hp, dict) else None
    if class_path is None and method is not None:
        class_path = method if "." in method else f"facezoo.methods.{method}"
    if class_path is None:
        raise ValueError(
            f"{what}: the checkpoint does not say which method it is (no hyper_parameters._class_path); "
            "give method=..."
        )
    if not isinstance(class_path, str) or not class_path.startswith("facezoo."):
        # a file names the class; only facezoo's own modules are imported for it
        raise ValueError(f"{what}: {class_path!r} is not a facezoo method (FaceMethod)")
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{what}: unknown method class {class_path!r}") from err
    if not (isinstance(cls, type) and issubclass(cls, methods.FaceMethod)):
        raise ValueError(f"{what}: {class_path} is not a facezoo method (FaceMethod)")
    return cls


def build_module(
    ckpt: dict[str, Any], what: str, morphable_model: str | None = None, method: str | None = None
):
    """Instantiate the method a checkpoint describes (its hyper-parameters), without its weights.

    ``morphable_model`` replaces the saved one (e.g. the path of your converted ``.h5``); the init arguments
    naming training-time files (:func:`is_training_file`: ``backbone_weights``, ``rnet_checkpoint``,
    ``vmn_checkpoint``, ``skin_classifier``...) are set to None: the state dict holds what they initialised.
    """
    cls = _method_class(ckpt, what, method)
    hp = dict(ckpt.get("hyper_parameters") or {})
    kwargs = {k: v for k, v in hp.items() if not k.startswith("_")}
    for key in kwargs:
        if is_training_file(key):
            kwargs[key] = None
    if morphable_model is not None:
        kwargs["morphable_model"] = morphable_model
    try:
        return cls(**kwargs)
    except FileNotFoundError as err:  # the licensed model file: the message says how to convert it
        raise FileNotFoundError(f"{what}: {err}") from err


def load_checkpoint_module(
    path: str | os.PathLike[str],
    morphable_model: str | None = None,
    method: str | None = None,
    map_location: str = "cpu",
):
    """The LightningModule saved in ``path``, in eval mode, weights loaded with strict keys.

    Read with ``weights_only=True`` after a CRC check (:func:`facezoo.nn.weights.load_torch_file`): a file
    that would run code is refused.

    Raises:
        FileNotFoundError: no file, or the morphable model file it needs is missing (the message says how to
            convert it, or to pass ``morphable_model``).
        ValueError: not a facezoo/Lightning checkpoint, or its keys/shapes do not match its method.
    """
    from facezoo.nn.weights import load_torch_file, state_dict_mismatch

    what = f"checkpoint {path}"
    ckpt = load_torch_file(path, what)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(
            f"{what}: not a facezoo checkpoint (no 'state_dict'); officially released weights are converted "
            "first (`facezoo zoo import deep3d-official FILE -o OUT.ckpt`)"
        )
    module = build_module(ckpt, what, morphable_model, method)
    problems = state_dict_mismatch(ckpt["state_dict"], module.state_dict())
    if problems:
        raise ValueError(f"{what}: does not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(ckpt["state_dict"], strict=False)  # strictness checked above (num_batches_tracked)
    return module.to(map_location).eval()
