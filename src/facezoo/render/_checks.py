"""Input validation shared by the render functions: errors name the argument, what was expected and what came
(dtype, shape, device).

The kernels index vertex and triangle arrays with the values in ``tri`` and in rast's id channel without
bounds checks, so those ranges are checked here, at the public boundary: once per ``tri`` tensor (memoised
while it is unmodified, see ``facezoo.render._cache``) and with one reduction over the covered ids of a rast.
"""

from __future__ import annotations

import torch

from facezoo.render._cache import cached


def describe(x: torch.Tensor) -> str:
    """``"float32 [2,3,4] on cpu"``: what a tensor is, for error messages."""
    shape = ",".join(str(s) for s in x.shape)
    return f"{str(x.dtype).replace('torch.', '')} [{shape}] on {x.device}"


def check_tensor(
    name: str,
    x: object,
    *,
    ndim: int | None = None,
    last: int | None = None,
    dtypes: tuple[torch.dtype, ...] | None = None,
    device: torch.device | None = None,
    want: str | None = None,
) -> torch.Tensor:
    """``x`` if it is a tensor of the given rank, last dimension, dtype and device; ``want`` (e.g.
    ``"[B,V,3]"``) is named in the shape errors."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{' ' + want if want else ''}, got {type(x).__name__}")
    expected = want or f"{ndim} dimensions"
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {expected}, got {describe(x)}")
    if last is not None and x.shape[-1] != last:
        raise ValueError(
            f"{name} must be {want or f'of size {last} in its last dimension'}, got {describe(x)}"
        )
    if dtypes is not None and x.dtype not in dtypes:
        allowed = " or ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must be {allowed}, got {describe(x)}")
    if device is not None and x.device != device:
        raise ValueError(f"{name} must be on {device} (like the other inputs), got {describe(x)}")
    return x


def _index_range(tri: torch.Tensor) -> tuple[int, int]:
    if tri.numel() == 0:
        return 0, -1
    lo, hi = torch.aminmax(tri)
    return int(lo), int(hi)


def check_tri(tri: object, n_vertices: int, device: torch.device, name: str = "tri") -> torch.Tensor:
    """``tri [T,3]`` int32/int64 on ``device`` with every index in ``[0, n_vertices)`` (the range is
    memoised per tensor)."""
    tri = check_tensor(
        name, tri, ndim=2, last=3, dtypes=(torch.int32, torch.int64), device=device, want="[T,3]"
    )
    lo, hi = cached(tri, "index_range", lambda t: torch.tensor(_index_range(t)))
    if tri.numel() and (int(lo) < 0 or int(hi) >= n_vertices):
        raise ValueError(
            f"{name} indices must lie in [0, {n_vertices}) ({n_vertices} vertices), got range "
            f"[{int(lo)}, {int(hi)}] ({describe(tri)})"
        )
    return tri


def check_resolution(resolution: object, name: str = "resolution") -> tuple[int, int]:
    """``(H, W)`` positive ints from a pair (an int ``S`` means ``(S, S)``)."""
    if isinstance(resolution, int) and not isinstance(resolution, bool):
        resolution = (resolution, resolution)
    try:
        height, width = (int(r) for r in resolution)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or (H, W), got {resolution!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"{name} must be positive, got {(height, width)}")
    return height, width


def check_rast(rast: object, batch: int | None = None) -> torch.Tensor:
    rast = check_tensor("rast", rast, ndim=4, last=4, dtypes=(torch.float32, torch.float64), want="[B,H,W,4]")
    if batch is not None and rast.shape[0] != batch:
        raise ValueError(f"rast batch {rast.shape[0]} does not match the batch {batch} of the other inputs")
    return rast


def check_rast_ids(rast: torch.Tensor, n_tri: int, covered_ids: torch.Tensor | None = None) -> None:
    """rast's triangle ids (channel 3: id + 1, 0 where empty) must name triangles of ``tri``: a rast made from
    other triangles would make the kernels read past its end. The kernels take triangle ``int(id) - 1`` where
    ``id > 0``, safe for every id below ``n_tri + 1``; as (u, v) lie in [0, 1] and z/w in [-1, 1], one
    reduction over the whole (contiguous) rast checks that (NaN fails). ``covered_ids``: the ids at the pixels
    the caller treats as covered (``id > 0``), which must also be at least 1."""
    if rast.numel() == 0:
        return
    hi = float(rast.detach().amax())
    lo = float(covered_ids.detach().amin()) if covered_ids is not None and covered_ids.numel() else 1.0
    if not (hi < n_tri + 1 and lo >= 1):
        ids = rast.detach()[..., 3]
        raise ValueError(
            f"rast's triangle ids (channel 3: id + 1, 0 where empty) must lie in [1, {n_tri}] for the "
            f"{n_tri} triangles of tri, got range [{float(ids.amin()):g}, {float(ids.amax()):g}] "
            f"({describe(rast)}): was rast made from other triangles?"
        )
