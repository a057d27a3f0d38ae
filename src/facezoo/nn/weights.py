"""Loading user-supplied pretrained weights into facezoo networks (never downloads anything)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["load_backbone_weights", "load_torch_file", "state_dict_mismatch"]

_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "net", "network")


def load_torch_file(path: str | os.PathLike[str], what: str = "checkpoint") -> object:
    """``torch.load`` a user-supplied file safely: never runs code, never loads a silently edited file.

    * ``weights_only=True``: a pickle that would call a function (a payload) is refused, not run;
    * the zip archive's CRC-32 of every member is checked (``zipfile.testzip``, about 1 GB/s) before
      loading: ``torch.load`` itself does not check them, so a checkpoint whose bytes were edited in place
      (weights changed, CRC stale) would load and silently change results;
    * missing, truncated or non-PyTorch files raise with the file's name.

    Args:
        path: the file (``torch.save`` output: ``.pt``/``.pth``/``.ckpt``).
        what: what the file is, for the messages (e.g. ``"--ckpt_path"``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: corrupt, truncated, edited in place, not a PyTorch file, or holding objects other than
            tensors and plain containers.

    Example:
        >>> import tempfile
        >>> f = tempfile.NamedTemporaryFile(suffix=".pt", delete=False).name
        >>> torch.save({"w": torch.ones(2)}, f)
        >>> load_torch_file(f)["w"]
        tensor([1., 1.])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file at {str(path)!r}")
    with open(path, "rb") as f:
        zip_magic = f.read(4) == b"PK\x03\x04"  # torch.save's format is a zip archive
    if zip_magic and not zipfile.is_zipfile(path):
        raise ValueError(
            f"{what}: {path} is a truncated or corrupt PyTorch file (its zip directory is missing)"
        )
    if zip_magic:
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            raise ValueError(f"{what}: {path} is a corrupt or truncated PyTorch file ({err})") from err
        if bad is not None:
            raise ValueError(
                f"{what}: {path} is corrupt or was edited in place: CRC-32 mismatch in {bad!r} "
                "(re-download or re-save it)"
            )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types (UnpicklingError, RuntimeError, EOFError...)
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        code = next((ln for ln in lines if "global" in ln.lower()), None)  # a GLOBAL: a function to call
        if code is not None:
            raise ValueError(
                f"{what}: {path} refers to Python code ({code}); facezoo loads user files with "
                "weights_only=True and never runs code from them"
            ) from err
        detail = next((ln for ln in lines if "Unsupported" in ln), lines[0] if lines else type(err).__name__)
        raise ValueError(
            f"{what}: {path} is not a PyTorch checkpoint, or is truncated ({type(err).__name__}: {detail})"
        ) from err


def state_dict_mismatch(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading into a module whose state dict is ``own``: the missing keys, the
    unexpected keys and the shape mismatches, one string each (empty when they match).

    Example:
        >>> state_dict_mismatch({"a": torch.zeros(2)}, {"a": torch.zeros(3), "b": torch.zeros(1)})
        ['missing keys (1): b', 'shape mismatches (1): a: file (2,) vs model (3,)']
    """
    # BatchNorm's counter is not a weight; old checkpoints (torchvision's) do not have it.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {_short(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {_short(unexpected)}")
    if mismatched:
        parts.append(f"shape mismatches ({len(mismatched)}): {_short(mismatched)}")
    return parts


def unwrap_state_dict(
    obj: object, what: str, expected: str = "a state dict", containers: Sequence[str] = _CONTAINER_KEYS
) -> dict[str, torch.Tensor]:
    """A flat ``{key: tensor}`` dict from a loaded checkpoint: a plain state dict, a module, or one wrapped
    under one of ``containers`` (Lightning's and NVlabs' PWC-Net ``.pth.tar`` ``state_dict``...); DDP's
    ``module.`` prefixes are stripped.

    Raises:
        ValueError: no such dict; the message names ``what`` and ``expected``.

    Example:
        >>> unwrap_state_dict({"net": {"module.w": torch.ones(1)}}, "file.pth")
        {'w': tensor([1.])}
    """
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in containers:
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
            f"{what}: expected {expected} (a mapping of parameter names to tensors); got {type(obj).__name__}"
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
            ``weights_only=True`` on the CPU after a CRC check (:func:`load_torch_file`), then copied to the
            module's device/dtype.
        exclude: key prefixes to skip on both sides (e.g. ``("fc.",)`` to keep a freshly initialised
            239-way head when loading an ImageNet ResNet-50); those parameters keep their initialisation.
        strict: when true (default) any missing or unexpected key, or a shape mismatch, raises.

    Returns:
        ``module`` (for chaining).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a loadable state dict (corrupt, edited in place, or holding code), or
            (strict) its keys/shapes do not match; the message lists the missing keys, the unexpected keys
            and the shape mismatches.

    Example:
        >>> net = facezoo.nn.build("resnet50", num_outputs=239)  # doctest: +SKIP
        >>> load_backbone_weights(net, "resnet50-imagenet.pth", exclude=("fc.",))  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_backbone_weights: no weights file at {path}")
    obj = load_torch_file(path, "load_backbone_weights")
    state = unwrap_state_dict(obj, f"load_backbone_weights: {path}")

    def keep(key: str) -> bool:
        return not any(key.startswith(p) for p in exclude)

    state = {k: v for k, v in state.items() if keep(k)}
    own = {k: v for k, v in module.state_dict().items() if keep(k)}
    problems = state_dict_mismatch(state, own)
    if strict and problems:
        raise ValueError(
            "; ".join([f"load_backbone_weights: {path} does not match {type(module).__name__}", *problems])
        )
    loadable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    module.load_state_dict(loadable, strict=False)
    return module
