"""What staged training needs: reading an earlier stage's checkpoint safely, loading sub-networks from it
strictly, and freezing sub-networks (BatchNorm included).

A checkpoint is read with ``torch.load(..., weights_only=True)``: only tensors and plain containers
(dict, list, str, numbers) are unpickled, so a file with a pickled payload is refused before anything in it
runs. Lightning checkpoints are plain in that sense (``state_dict``, ``hyper_parameters`` of init
arguments, loop and optimizer states).

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    >>> load_submodules({"net.0.weight": torch.eye(2), "net.0.bias": torch.zeros(2),
    ...                  "net.1.weight": torch.ones(2), "net.1.bias": torch.zeros(2),
    ...                  "net.1.running_mean": torch.zeros(2), "net.1.running_var": torch.ones(2),
    ...                  "net.1.num_batches_tracked": torch.tensor(0)}, {"net": net}, source="demo")
    >>> freeze(net).training, any(p.requires_grad for p in net.parameters())
    (False, False)
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


def read_checkpoint(path: str | Path, argument: str = "checkpoint") -> dict[str, Any]:
    """The content of a checkpoint file (a ``dict``), read without running code.

    Args:
        path: a Lightning ``.ckpt`` or a ``torch.save`` file of a dict (e.g. ``{"state_dict": ...}``).
        argument: the init argument that named the file (for error messages).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a torch checkpoint, holds objects that need code to be rebuilt (refused:
            unpickling them could run arbitrary code), or is not a dict.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{argument}: no file at {str(path)!r}")
    try:
        content = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found is None:  # not a pickle torch understands (a text file, a truncated file...)
            raise ValueError(f"{argument}: {p} is not a readable torch checkpoint") from None
        raise ValueError(
            f"{argument}: {p} holds an object that needs code to be rebuilt ({found.group(1)}), refused "
            "(loading it could run code); save plain weights instead, e.g. torch.save({'state_dict': ...})"
        ) from None
    except Exception as err:  # truncated zip, ...: name the file, not the zip reader's internals
        raise ValueError(
            f"{argument}: {p} is not a readable torch checkpoint ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(content, Mapping):
        raise ValueError(
            f"{argument}: {p} holds a {type(content).__name__}, expected a dict with 'state_dict'"
        )
    return dict(content)


def load_submodules(
    state: Mapping[str, Tensor], modules: Mapping[str, nn.Module], source: str = "checkpoint"
) -> None:
    """Load ``modules[name]`` from the ``<name>.*`` entries of ``state``, strictly.

    Every key the module expects must be there and nothing else under its prefix (keys under other prefixes
    are ignored: they belong to other sub-networks of the earlier stage).

    Raises:
        ValueError: naming ``source``, the prefix, and the missing / unexpected keys or the shape mismatch.
    """
    for name, module in modules.items():
        prefix = f"{name}."
        sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not sub:
            raise ValueError(f"{source}: no '{prefix}*' weights in it (keys: {_few(state)})")
        expected = module.state_dict()
        missing = sorted(set(expected) - set(sub))
        unexpected = sorted(set(sub) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"{source}: '{prefix}*' weights do not match {type(module).__name__}: missing "
                f"{_few(missing)}, unexpected {_few(unexpected)} (another architecture or config?)"
            )
        shapes = [
            f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}"
            for k, v in sub.items()
            if isinstance(v, Tensor) and v.shape != expected[k].shape
        ]
        if shapes:
            raise ValueError(f"{source}: '{prefix}*' shapes differ (file vs model): {_few(shapes)}")
        module.load_state_dict(sub, strict=True)


def freeze(module: nn.Module) -> nn.Module:
    """Stop ``module`` from learning: no gradients, eval mode (BatchNorm statistics fixed, dropout off).

    Eval mode alone does not survive a later ``.train()`` of the parent; :class:`FaceMethod` keeps the
    modules it froze (:meth:`FaceMethod.freeze`) in eval whenever it is put in training mode.
    """
    module.requires_grad_(False)
    return module.eval()


def _few(items, n: int = 6) -> str:
    items = list(items)
    more = f" ... (+{len(items) - n})" if len(items) > n else ""
    return "[" + ", ".join(str(i) for i in items[:n]) + "]" + more
