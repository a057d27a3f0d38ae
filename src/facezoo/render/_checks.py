"""Input validation shared by the render functions (errors name the argument, what was expected and what
came)."""

from __future__ import annotations

import torch


def check_tensor(
    name: str,
    x: object,
    *,
    ndim: int | None = None,
    last: int | None = None,
    dtypes: tuple[torch.dtype, ...] | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if last is not None and x.shape[-1] != last:
        raise ValueError(f"{name} must have size {last} in its last dimension, got shape {tuple(x.shape)}")
    if dtypes is not None and x.dtype not in dtypes:
        want = " or ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must be {want}, got {str(x.dtype).replace('torch.', '')}")
    if device is not None and x.device != device:
        raise ValueError(f"{name} must be on {device} (like the other inputs), got {x.device}")
    return x


def check_tri(tri: object, n_vertices: int, device: torch.device) -> torch.Tensor:
    tri = check_tensor("tri", tri, ndim=2, last=3, dtypes=(torch.int32, torch.int64), device=device)
    if tri.numel() and (int(tri.min()) < 0 or int(tri.max()) >= n_vertices):
        raise ValueError(
            f"tri indices must lie in [0, {n_vertices}), got range [{int(tri.min())}, {int(tri.max())}]"
        )
    return tri


def check_resolution(resolution: object) -> tuple[int, int]:
    try:
        height, width = (int(r) for r in resolution)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"resolution must be (H, W), got {resolution!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"resolution must be positive, got {(height, width)}")
    return height, width


def check_rast(rast: object, batch: int | None = None) -> torch.Tensor:
    rast = check_tensor("rast", rast, ndim=4, last=4, dtypes=(torch.float32, torch.float64))
    if batch is not None and rast.shape[0] != batch:
        raise ValueError(f"rast batch {rast.shape[0]} does not match the batch {batch} of the other inputs")
    return rast
