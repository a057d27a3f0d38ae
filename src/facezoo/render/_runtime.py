"""The render kernels' runtime: the one switch between the Warp and the pure-PyTorch kernels, Warp's lazy
loading (with a fallback that says why, once), and the one dispatch helper every Warp launcher uses.

The switch: the environment variable ``FACEZOO_RENDER_KERNELS`` = ``auto`` (default: Warp where it imports,
else PyTorch with one warning that gives the reason), ``warp`` (Warp or a RuntimeError with the reason) or
``torch`` (pure PyTorch everywhere); :func:`use_kernels` sets the same for a block of code (tests compare the
two). Every autograd Function reads the switch in its forward and keeps the choice for its backward.

Dispatch: on CUDA a launch runs on torch's current stream (real atomics). On CPU Warp runs a launch on the
calling thread and its atomics are plain read-modify-writes, so work is split over
``torch.get_num_threads()`` Python threads (ctypes releases the GIL during a launch) by batch item (or by
pixel range), each thread writing disjoint memory.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

#: the environment variable of the switch, and its values
ENV = "FACEZOO_RENDER_KERNELS"
MODES = ("auto", "warp", "torch")

_override: list[str] = []  # innermost use_kernels() last


def _mode() -> str:
    mode = _override[-1] if _override else os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{ENV} must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


@contextlib.contextmanager
def use_kernels(mode: str) -> Iterator[None]:
    """Use the ``"warp"``, ``"torch"`` or ``"auto"`` kernels inside the block (overrides the environment
    variable ``FACEZOO_RENDER_KERNELS``); also a decorator.

    Example:
        >>> with use_kernels("torch"):
        ...     active_kernels()
        'torch'
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    _override.append(mode)
    try:
        yield
    finally:
        _override.pop()


def active_kernels() -> str:
    """``"warp"`` or ``"torch"``: the kernels the render functions use now (the switch, resolved).

    Example:
        >>> active_kernels() in ("warp", "torch")
        True
    """
    return "torch" if warp_kernels() is None else "warp"


@contextlib.contextmanager
def _native_stderr_silenced(active: bool):
    """Silence C-level writes to stderr (file descriptor 2) inside the block. Warp's native library prints
    "Could not find or load the NVIDIA CUDA driver" on every CPU-only machine, from C, past Python's logging;
    we only silence it when torch sees no CUDA device either, so a real driver problem still shows."""
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class Kernels:
    """The ``warp`` module and the kernel modules, by stage (``raster``, ``interp``, ``silhouette``,
    ``normals``, ``shade``, ``visibility``)."""

    def __init__(self, wp, modules: dict[str, Any]) -> None:
        self.wp = wp
        self.__dict__.update(modules)


@functools.cache
def _load() -> tuple[Kernels | None, BaseException | None]:
    try:
        import warp as wp

        wp.config.quiet = True
        if hasattr(wp, "LOG_ERROR"):  # Warp >= 1.10: no greeting
            wp.config.log_level = wp.LOG_ERROR
        with _native_stderr_silenced(not torch.cuda.is_available()):
            wp.init()
        from facezoo.render.kernels import interp, normals, raster, shade, silhouette, visibility

        modules = {
            "raster": raster,
            "interp": interp,
            "silhouette": silhouette,
            "normals": normals,
            "shade": shade,
            "visibility": visibility,
        }
        for module in modules.values():  # compile (or load from Warp's cache) once, before any threads
            wp.load_module(module, device="cpu")
    except Exception as err:  # noqa: BLE001 - any failure to import/compile means: no Warp kernels
        return None, err
    return Kernels(wp, modules), None


@functools.cache
def _warn_fallback(reason: str) -> None:
    warnings.warn(
        f"facezoo.render: the Warp kernels are unavailable ({reason}); using the pure-PyTorch kernels "
        f"(same results, slower). Set {ENV}=torch to choose them explicitly.",
        RuntimeWarning,
        stacklevel=3,
    )


def warp_kernels() -> Kernels | None:
    """The loaded Warp kernels when the switch asks for them (``auto``: when Warp loads), else None."""
    mode = _mode()
    if mode == "torch":
        return None
    kernels, err = _load()
    if kernels is not None:
        return kernels
    reason = f"{type(err).__name__}: {err}"
    if mode == "warp":
        raise RuntimeError(f"{ENV}=warp but the Warp kernels cannot be loaded: {reason}") from err
    _warn_fallback(reason)
    return None


def loaded_kernels() -> Kernels:
    """The Warp kernels, for a launcher whose caller chose them (forward: :func:`use_warp`; backward: the
    choice its forward kept)."""
    kernels, err = _load()
    if kernels is None:
        raise RuntimeError(f"the Warp kernels cannot be loaded: {err}")
    return kernels


def use_warp(*tensors: torch.Tensor) -> bool:
    """Whether to run the Warp kernels on these tensors: the switch says so and all are float32/float64."""
    return all(t.dtype in (torch.float32, torch.float64) for t in tensors) and warp_kernels() is not None


# ---------------------------------------------------------------------------------------------------------
# launching

#: stands for the batch index ``b`` in the named arguments given to :func:`launch_items`
BATCH = object()


def kernel_args(kernel, named: dict[str, Any]) -> list:
    """The positional argument list of a Warp ``kernel`` from its arguments by name (all, no other)."""
    names = [a.label for a in kernel.adj.args]
    if set(named) != set(names):
        missing, extra = set(names) - set(named), set(named) - set(names)
        raise TypeError(f"{kernel.key}: missing arguments {sorted(missing)}, unknown {sorted(extra)}")
    return [named[n] for n in names]


def launch(kernel, dim: int, device, **named) -> None:
    """``wp.launch`` with the kernel's arguments by name."""
    wp = loaded_kernels().wp
    wp.launch(kernel, dim=dim, inputs=kernel_args(kernel, named), device=device)


def warp_device(device: torch.device):
    """(warp device, context manager) for launches on ``device`` (CUDA: on torch's current stream)."""
    wp = loaded_kernels().wp
    if device.type == "cuda":  # pragma: no cover - needs CUDA
        return wp.device_from_torch(device), wp.ScopedStream(wp.stream_from_torch(device))
    return "cpu", contextlib.nullcontext()


def threads(device: torch.device) -> int:
    """How many host threads share a job on ``device`` (1 on CUDA: one stream runs everything)."""
    return 1 if device.type == "cuda" else max(1, torch.get_num_threads())


@functools.cache
def _pool(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=n, thread_name_prefix="facezoo-render")


def item_chunks(batch: int, device: torch.device) -> list[tuple[int, int]]:
    """Contiguous batch ranges, one per host thread (one range on CUDA)."""
    if batch <= 0:
        return []
    n = max(1, min(threads(device), batch))
    step = -(-batch // n)
    return [(b0, min(batch, b0 + step)) for b0 in range(0, batch, step)]


def dispatch(run: Callable[[Any], None], jobs: Sequence, work: int, device: torch.device) -> None:
    """Run ``run(job)`` for every job inside ``device``'s launch context: on CUDA in order on this thread; on
    CPU on a pool of threads (one job each) unless there is one job or little ``work`` (elements touched)."""
    _, ctx = warp_device(device)

    def body(job) -> None:
        with ctx:
            run(job)

    if device.type == "cuda" or len(jobs) == 1 or work < 50000:
        for job in jobs:
            body(job)
    else:
        list(_pool(len(jobs)).map(body, jobs))


def launch_items(
    launches: list[tuple[Any, int, dict]] | Callable[[int], list[tuple[Any, int, dict]]],
    batch: int,
    work: int,
    device: torch.device,
) -> None:
    """Run the launches ``[(kernel, dim, named arguments)]`` in order for every batch item, with the item's
    index where an argument is :data:`BATCH`. The batch ranges of :func:`item_chunks` go to :func:`dispatch`;
    ``launches`` may be a function of the range's index (e.g. for per-thread gradient buffers). Each launch is
    packed once per range (Warp takes ~0.1 ms to pack a launch of many arguments; patching ``b`` and
    launching again takes a few microseconds)."""
    wp = loaded_kernels().wp
    wdev, _ = warp_device(device)

    def run(job: tuple[int, tuple[int, int]]) -> None:
        j, (b0, b1) = job
        cmds = []
        for kernel, dim, named in launches(j) if callable(launches) else launches:
            args = kernel_args(kernel, named)
            at = next(i for i, x in enumerate(args) if x is BATCH)
            args[at] = b0
            cmds.append((wp.launch(kernel, dim=dim, inputs=args, device=wdev, record_cmd=True), at))
        for b in range(b0, b1):
            for cmd, at in cmds:
                if b != b0:
                    cmd.set_param_at_index(at, b)
                cmd.launch()

    dispatch(run, list(enumerate(item_chunks(batch, device))), work, device)


def pixel_spans(device: torch.device, height: int, width: int) -> tuple[int, int]:
    """(pixels per thread, threads per batch item) of the per-pixel kernels: a row per thread on CPU (no
    index division per pixel), one pixel per thread on CUDA."""
    span = 1 if device.type == "cuda" else width
    return span, -(-height * width // span)


def sum_buffers(buffers: list[torch.Tensor]) -> torch.Tensor:
    """The sum of per-thread gradient buffers (the same tensor listed twice counts once)."""
    out = buffers[0]
    for extra in buffers[1:]:
        if extra is not buffers[0]:
            out = out + extra
    return out


def per_thread_buffers(like: torch.Tensor, n: int, shared: bool, want: bool) -> list[torch.Tensor]:
    """Gradient buffers for ``n`` jobs: one zero tensor per job where jobs add into the same rows
    (``shared``), else one tensor for all; a dummy row when the gradient is not wanted."""
    if not want:
        return [like.new_zeros(1, like.shape[1])] * n
    if not shared or n == 1:
        return [torch.zeros_like(like)] * n
    return [torch.zeros_like(like) for _ in range(n)]
