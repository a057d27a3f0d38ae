"""Loading user-supplied pretrained weights into facezoo networks (never downloads anything)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "net", "network")


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """A flat ``{key: tensor}`` dict from a checkpoint: plain state dicts, ``{"state_dict": ...}`` wrappers
    (Lightning, NVlabs' PWC-Net ``.pth.tar``) and DDP ``module.`` prefixes are accepted."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"load_backbone_weights: {path} does not hold a state dict (a mapping of parameter names to "
            f"tensors); got {type(obj).__name__}"
        )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _short(keys: Sequence[str], limit: int = 20) -> str:
    keys = sorted(keys)
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_backbone_weights(
    module: nn.Module,
    path: str | os.PathLike[str],
    *,
    exclude: Sequence[str] = (),
    strict: bool = True,
) -> nn.Module:
    """Load a state dict from ``path`` into ``module`` and check that every key matches.

    Key names are each architecture's reference names (torchvision for ResNet/VGG, insightface for
    IResNet, NVlabs for PWC-Net), so the released checkpoints load unchanged.

    Args:
        module: the network to fill (in place).
        path: a ``.pth``/``.pt``/``.pth.tar`` file saved with ``torch.save``: a state dict, or a dict holding
            one under ``state_dict``/``model``; ``module.`` prefixes (DDP) are stripped. Loaded with
            ``weights_only=True`` on the CPU, then copied to the module's device/dtype.
        exclude: key prefixes to skip on both sides (e.g. ``("fc.",)`` to keep a freshly initialised
            239-way head when loading an ImageNet ResNet-50); those parameters keep their initialisation.
        strict: when true (default) any missing or unexpected key, or a shape mismatch, raises.

    Returns:
        ``module`` (for chaining).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a loadable state dict, or (strict) its keys/shapes do not match; the
            message lists the missing keys, the unexpected keys and the shape mismatches.

    Example:
        >>> net = facezoo.nn.build("resnet50", num_outputs=239)
        >>> load_backbone_weights(net, "resnet50-imagenet.pth", exclude=("fc.",))
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_backbone_weights: no weights file at {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for non-checkpoint files
        raise ValueError(f"load_backbone_weights: {path} is not a PyTorch checkpoint ({err})") from err
    state = _unwrap(obj, path)

    def keep(key: str) -> bool:
        return not any(key.startswith(p) for p in exclude)

    state = {k: v for k, v in state.items() if keep(k)}
    own = {k: v for k, v in module.state_dict().items() if keep(k)}
    # BatchNorm's counter is not a weight; old checkpoints (torchvision's) do not have it.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if strict and (missing or unexpected or mismatched):
        parts = [f"load_backbone_weights: {path} does not match {type(module).__name__}"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_short(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches ({len(mismatched)}): {_short(mismatched)}")
        raise ValueError("; ".join(parts))
    loadable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    module.load_state_dict(loadable, strict=False)
    return module
