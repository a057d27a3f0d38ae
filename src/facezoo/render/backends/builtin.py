"""The builtin rasterizer: Warp kernels where Warp imports, else the same algorithm in pure PyTorch; and
the host side of the other Warp kernels (interpolation, silhouette pairs, vertex normals).

Both rasterizers compute the same thing in float64 arithmetic (see ``_warp_kernels``): a z-buffer of packed
``(quantised z/w, triangle)`` int64 keys reduced with min, then a per-pixel resolve of the winning triangle's
perspective-correct barycentrics. Ties in depth go to the lower triangle index. rast comes back in the
dtype of ``pos``.

Warp compiles the kernels once per installation (float32 and float64 overloads; Warp's kernel cache keeps
them across processes) when the first render function runs. On CPU a Warp launch runs on the calling
thread: work is split over ``torch.get_num_threads()`` Python threads by batch item (or by pixel range),
each writing disjoint memory because Warp's CPU atomics are plain read-modify-writes. On CUDA the same
kernels run on torch's current stream with real atomics.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import torch

EMPTY_KEY = torch.iinfo(torch.int64).max
DEPTH_SCALE = 2147483648.0
_TRI_SHIFT = 4294967296


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


@functools.cache
def _warp():
    """The initialised ``warp`` module and our kernels, or None when Warp is not importable."""
    if os.environ.get("FACEZOO_NO_WARP"):
        return None
    try:
        import warp as wp

        wp.config.quiet = True
        if hasattr(wp, "LOG_ERROR"):  # Warp >= 1.10: no greeting
            wp.config.log_level = wp.LOG_ERROR
        with _native_stderr_silenced(not torch.cuda.is_available()):
            wp.init()
        from facezoo.render.backends import _warp_kernels as kernels

        wp.load_module(kernels, device="cpu")  # compile (or load from Warp's cache) once, before any threads
    except Exception:  # pragma: no cover - depends on the installation
        return None
    return wp, kernels


def warp_available() -> bool:
    """Whether the Warp kernels can be used."""
    return _warp() is not None


@functools.cache
def _pool(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=n, thread_name_prefix="facezoo-raster")


def _chunks(batch: int, n: int) -> list[tuple[int, int]]:
    n = max(1, min(n, batch))
    step = -(-batch // n)
    return [(b0, min(batch, b0 + step)) for b0 in range(0, batch, step)]


def _parallel(run, spans: list, work: int) -> None:
    """Run ``run(span)`` for every span: on CPU Warp executes a launch on the calling thread, so the spans go
    to a pool of ``torch.get_num_threads()`` threads (ctypes releases the GIL during a launch); small jobs
    (``work`` elements) stay on this thread."""
    if len(spans) == 1 or work < 50000:
        for span in spans:
            run(span)
    else:
        list(_pool(len(spans)).map(run, spans))


def _launch_ctx(device: torch.device):
    """(warp device, context manager) for launches on ``device`` (CUDA: on torch's current stream)."""
    wp, _ = _warp()
    if device.type == "cuda":  # pragma: no cover - needs CUDA
        return wp.device_from_torch(device), wp.ScopedStream(wp.stream_from_torch(device))
    return "cpu", contextlib.nullcontext()


#: stands for the batch index in the inputs given to :func:`_per_item`
_B = object()


def _per_item(launches: list, items: tuple[int, int], device) -> None:
    """Run the launches ``[(kernel, dim, inputs)]`` in order for every batch item b in ``range(*items)``, with
    b where ``inputs`` holds ``_B``. Each launch's arguments are packed once (Warp takes ~0.1 ms to pack a
    launch of many arguments; patching b and launching again takes a few microseconds)."""
    wp, _ = _warp()
    b0, b1 = items
    if b1 <= b0:
        return
    cmds = []
    for kernel, dim, inputs in launches:
        at = next(i for i, x in enumerate(inputs) if x is _B)
        args = list(inputs)
        args[at] = b0
        cmds.append((wp.launch(kernel, dim=dim, inputs=args, device=device, record_cmd=True), at))
    for b in range(b0, b1):
        for cmd, at in cmds:
            if b != b0:
                cmd.set_param_at_index(at, b)
            cmd.launch()


def _span(device: torch.device, width: int) -> int:
    """Pixels per thread of the per-pixel kernels: a row on CPU (no index division per pixel), 1 on CUDA."""
    return 1 if device.type == "cuda" else width


def rasterize_warp(pos: torch.Tensor, tri: torch.Tensor, height: int, width: int, cull: bool) -> torch.Tensor:
    """Warp implementation. ``pos [B,V,4]`` float32/float64 contiguous, ``tri [T,3]`` int32 contiguous ->
    rast ``[B,H,W,4]`` in pos's dtype (arithmetic in float64; see ``_warp_kernels``).

    One launch per batch item and pass; on CPU the batch is split across ``torch.get_num_threads()``
    threads, each owning its items' z-buffer rows (Warp's CPU atomics are not atomic).
    """
    wp, k = _warp()
    batch, n_vert = pos.shape[:2]
    n_tri = tri.shape[0]
    zbuf = torch.full((batch, height, width), EMPTY_KEY, dtype=torch.int64, device=pos.device)
    scr = torch.empty((batch, n_vert, 4), dtype=torch.float64, device=pos.device)
    out = torch.empty((batch, height, width, 4), dtype=pos.dtype, device=pos.device)
    wpos = wp.from_torch(pos)
    wscr = wp.from_torch(scr, dtype=wp.vec4d)
    wtri = wp.from_torch(tri, dtype=wp.vec3i)
    wz = wp.from_torch(zbuf)
    wout = wp.from_torch(out)
    orient = torch.empty((batch, n_tri), dtype=torch.int8, device=pos.device)
    wori = wp.from_torch(orient)
    device, ctx = _launch_ctx(pos.device)
    span = _span(pos.device, width)
    n_span = -(-height * width // span)

    def run(items: tuple[int, int]) -> None:
        with ctx:
            launches = [
                (k.project_kernel, n_vert, [wpos, height, width, _B, wscr]),
                (k.zbuffer_kernel, n_tri, [wpos, wscr, wtri, height, width, int(cull), _B, wz, wori]),
                (k.resolve_kernel, n_span, [wpos, wtri, wz, height, width, span, _B, wout]),
            ]
            _per_item(launches, items, device)

    if pos.device.type == "cuda":  # pragma: no cover - needs CUDA
        run((0, batch))
    else:
        _parallel(run, _chunks(batch, torch.get_num_threads()), batch * n_tri)
    # antialias needs the projected vertices and triangle orientations of the same positions again (not
    # stashed for inference tensors: they have no version counter to prove the data unchanged)
    if not (pos.is_inference() or tri.is_inference()):
        out._facezoo_raster_aux = (pos, pos._version, tri, tri._version, scr, orient)
    return out


def raster_aux(rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor):
    """``(scr [B,V,4] float64, orient [B,T] int8)`` that :func:`rasterize_warp` computed for ``rast`` when
    ``pos`` and ``tri`` hold the very data it rasterized (same storage, shape, strides and unmodified: the
    stash keeps that pos alive, so its memory cannot have been reused), else None."""
    aux = getattr(rast, "_facezoo_raster_aux", None)
    if aux is None or pos.is_inference() or tri.is_inference():
        return None
    p, p_version, t, t_version, scr, orient = aux
    same = (
        p.data_ptr() == pos.data_ptr()
        and p.shape == pos.shape
        and p.stride() == pos.stride()
        and p.dtype == pos.dtype
        and pos._version == p_version
        and t.data_ptr() == tri.data_ptr()
        and t.shape == tri.shape
        and tri._version == t_version
    )
    return (scr, orient) if same else None


def _pixel_ndc(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(height, device=device, dtype=torch.float64)
    cols = torch.arange(width, device=device, dtype=torch.float64)
    return 1.0 - (2 * rows + 1) / height, (2 * cols + 1) / width - 1.0


def rasterize_torch(
    pos: torch.Tensor, tri: torch.Tensor, height: int, width: int, cull: bool
) -> torch.Tensor:
    """Pure-PyTorch implementation of the same algorithm (fallback; also the reference the Warp kernels are
    tested against). Enumerates each triangle's pixel bounding box with ``repeat_interleave`` and reduces the
    packed keys with ``scatter_reduce(amin)``."""
    batch, n_vert, _ = pos.shape
    device = pos.device
    tri = tri.long()
    n_tri = tri.shape[0]
    v = pos[:, tri]  # [B,T,3,4]
    xyw = v[..., [0, 1, 3]]  # [B,T,3,3] homogeneous 2D vertices
    w = v[..., 3]
    n = torch.stack(
        [
            torch.linalg.cross(xyw[:, :, 1], xyw[:, :, 2]),
            torch.linalg.cross(xyw[:, :, 2], xyw[:, :, 0]),
            torch.linalg.cross(xyw[:, :, 0], xyw[:, :, 1]),
        ],
        dim=2,
    )  # [B,T,3(edge),3]
    det = (xyw[:, :, 0] * n[:, :, 0]).sum(-1)
    keep = (det != 0) & (w > 0).any(-1)
    if cull:
        keep &= det > 0
    all_front = (w > 0).all(-1)
    safe_w = torch.where(w > 0, w, torch.ones_like(w))
    xs = (v[..., 0] / safe_w + 1.0) * width * 0.5 - 0.5
    ys = (1.0 - v[..., 1] / safe_w) * height * 0.5 - 0.5
    # bounding boxes in pixel-index coordinates; full screen where a vertex is behind the eye
    c0 = torch.where(all_front, torch.ceil(xs.amin(-1) - 1e-9), 0.0).clamp(min=0.0, max=width)
    c1 = torch.where(all_front, torch.floor(xs.amax(-1) + 1e-9), width - 1.0).clamp(min=-1.0, max=width - 1.0)
    r0 = torch.where(all_front, torch.ceil(ys.amin(-1) - 1e-9), 0.0).clamp(min=0.0, max=height)
    r1 = torch.where(all_front, torch.floor(ys.amax(-1) + 1e-9), height - 1.0).clamp(
        min=-1.0, max=height - 1.0
    )
    bw = (c1 - c0 + 1).clamp(min=0).long()
    bh = (r1 - r0 + 1).clamp(min=0).long()
    count = torch.where(keep, bw * bh, 0).reshape(-1)
    zbuf = torch.full((batch * height * width,), EMPTY_KEY, dtype=torch.int64, device=device)
    total = int(count.sum())
    if total > 0:
        face = torch.repeat_interleave(torch.arange(batch * n_tri, device=device), count)
        start = torch.cumsum(count, 0) - count
        local = torch.arange(total, device=device) - start[face]
        bwf = bw.reshape(-1)[face]
        col = c0.reshape(-1)[face].long() + local % bwf
        row = r0.reshape(-1)[face].long() + local // bwf
        p = torch.stack(
            [
                (2 * col + 1) / width - 1.0,
                1.0 - (2 * row + 1) / height,
                torch.ones_like(col, dtype=torch.float64),
            ],
            dim=-1,
        )
        nf = n.reshape(batch * n_tri, 3, 3)[face] / det.reshape(-1)[face, None, None]
        lam = (nf * p[:, None, :]).sum(-1)  # [P,3]
        inside = (lam >= 0).all(-1) & (lam.sum(-1) > 0)
        zw = (lam * v[..., 2].reshape(batch * n_tri, 3)[face]).sum(-1)
        inside &= (zw >= -1.0) & (zw <= 1.0)
        b = face // n_tri
        t = face % n_tri
        q = ((zw * 0.5 + 0.5) * DEPTH_SCALE).long()
        key = q * _TRI_SHIFT + t
        pix = (b * height + row) * width + col
        zbuf.scatter_reduce_(0, pix[inside], key[inside], reduce="amin")
    return resolve_torch(pos, tri, zbuf.view(batch, height, width))


def resolve_torch(pos: torch.Tensor, tri: torch.Tensor, zbuf: torch.Tensor) -> torch.Tensor:
    """Per-pixel barycentrics of the winning triangles of a key z-buffer ``[B,H,W]`` -> rast ``[B,H,W,4]``."""
    batch, height, width = zbuf.shape
    covered = zbuf != EMPTY_KEY
    t = torch.where(covered, zbuf % _TRI_SHIFT, 0)
    b = torch.arange(batch, device=pos.device)[:, None, None].expand_as(t)
    v = pos[b[..., None], tri[t]]  # [B,H,W,3,4]
    xyw = v[..., [0, 1, 3]]
    ny, nx = _pixel_ndc(height, width, pos.device)
    p = torch.stack(
        torch.broadcast_tensors(
            nx[None, :], ny[:, None], torch.ones(1, 1, dtype=torch.float64, device=pos.device)
        ),
        -1,
    )
    p = p.expand(batch, height, width, 3)
    e = torch.stack(
        [
            (torch.linalg.cross(xyw[..., 1, :], xyw[..., 2, :]) * p).sum(-1),
            (torch.linalg.cross(xyw[..., 2, :], xyw[..., 0, :]) * p).sum(-1),
            (torch.linalg.cross(xyw[..., 0, :], xyw[..., 1, :]) * p).sum(-1),
        ],
        -1,
    )
    det = (xyw[..., 0, :] * torch.linalg.cross(xyw[..., 1, :], xyw[..., 2, :])).sum(-1)
    s = e.sum(-1)
    s = torch.where(covered, s, torch.ones_like(s))
    det = torch.where(covered, det, torch.ones_like(det))
    zw = (e * v[..., 2]).sum(-1) / det
    out = torch.stack([e[..., 0] / s, e[..., 1] / s, zw, (t + 1).double()], -1)
    return torch.where(covered[..., None], out, torch.zeros_like(out))


def barycentric_grad_warp(
    pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor, grad: torch.Tensor
) -> torch.Tensor:
    """Warp implementation of the rast -> pos_clip backward: a thread per run of pixels, adds into
    ``[B,V,4]`` float64 (on CPU each thread owns a batch chunk, so the adds never race). Returns float64."""
    wp, k = _warp()
    batch, height, width = rast.shape[:3]
    dtype = pos.dtype
    gpos = torch.zeros(pos.shape, dtype=torch.float64, device=pos.device)
    args = [
        wp.from_torch(pos.detach().contiguous()),
        wp.from_torch(tri.to(torch.int32).contiguous(), dtype=wp.vec3i),
        wp.from_torch(rast.detach().to(dtype).contiguous()),
        wp.from_torch(grad.to(dtype).contiguous()),
        height,
        width,
    ]
    wg = wp.from_torch(gpos)
    device, ctx = _launch_ctx(pos.device)
    span = _span(pos.device, width)
    n_span = -(-height * width // span)

    def run(items: tuple[int, int]) -> None:
        with ctx:
            _per_item([(k.bary_grad_kernel, n_span, [*args, span, _B, wg])], items, device)

    if pos.device.type == "cuda":  # pragma: no cover - needs CUDA
        run((0, batch))
    else:
        _parallel(run, _chunks(batch, torch.get_num_threads()), batch * height * width)
    return gpos


def barycentric_grad_packed_warp(
    pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor, pix: torch.Tensor, bounds: list[int], grad
) -> torch.Tensor:
    """d loss / d pos_clip ``[B,V,4]`` float64 from ``grad [P,2]`` = d loss / d (u, v) at the covered
    pixels ``pix`` (``bounds``: where each batch item starts, plus P) of ``rast [B,H,W,4]``."""
    wp, k = _warp()
    batch, height, width = rast.shape[:3]
    dtype = pos.dtype
    gpos = torch.zeros(pos.shape, dtype=torch.float64, device=pos.device)
    head = [
        wp.from_torch(pos.detach().contiguous()),
        wp.from_torch(tri, dtype=wp.vec3i),
        wp.from_torch(rast.detach().to(dtype).reshape(-1, 4).contiguous()),
    ]
    grad = grad.to(dtype).contiguous()
    wg = wp.from_torch(gpos)
    device, ctx = _launch_ctx(pos.device)

    def run(items: tuple[int, int]) -> None:
        with ctx:
            for b in range(*items):
                p0, p1 = bounds[b], bounds[b + 1]
                if p1 > p0:
                    wp.launch(
                        k.bary_grad_packed_kernel,
                        dim=p1 - p0,
                        inputs=[
                            *head,
                            wp.from_torch(pix[p0:p1]),
                            wp.from_torch(grad[p0:p1]),
                            height,
                            width,
                            b,
                            wg,
                        ],
                        device=device,
                    )

    if pos.device.type == "cuda":  # pragma: no cover - needs CUDA
        run((0, batch))
    else:
        _parallel(run, _chunks(batch, torch.get_num_threads()), pix.shape[0])
    return gpos


def silhouette_codes_warp(
    pos: torch.Tensor, tri: torch.Tensor, adj: torch.Tensor, rast: torch.Tensor
) -> torch.Tensor:
    """``[B,H,W,2]`` int8 silhouette pair codes (see ``_warp_kernels.silhouette_kernel``). ``tri`` and
    ``adj`` (edge neighbours, -1 on a boundary) ``[T,3]`` int32 contiguous."""
    wp, k = _warp()
    batch, height, width = rast.shape[:3]
    n_vert, n_tri = pos.shape[1], tri.shape[0]
    dtype = pos.dtype if pos.dtype in (torch.float32, torch.float64) else torch.float32
    code = torch.empty((batch, height, width, 2), dtype=torch.int8, device=pos.device)
    scr = torch.empty((batch, n_vert, 4), dtype=torch.float64, device=pos.device)
    orient = torch.empty((batch, n_tri), dtype=torch.int8, device=pos.device)
    flag = torch.empty((batch, n_tri), dtype=torch.int8, device=pos.device)
    wpos = wp.from_torch(pos.detach().to(dtype).contiguous())
    wscr = wp.from_torch(scr, dtype=wp.vec4d)
    wtri = wp.from_torch(tri, dtype=wp.vec3i)
    wadj = wp.from_torch(adj, dtype=wp.vec3i)
    wori, wflag = wp.from_torch(orient), wp.from_torch(flag)
    wrast = wp.from_torch(rast.detach().to(dtype).contiguous())
    wc = wp.from_torch(code)
    device, ctx = _launch_ctx(pos.device)
    span = _span(pos.device, width)
    n_span = -(-height * width // span)
    known = raster_aux(rast, pos, tri)
    if known is not None:
        wscr, wori = wp.from_torch(known[0], dtype=wp.vec4d), wp.from_torch(known[1])

    def run(items: tuple[int, int]) -> None:
        launches = []
        if known is None:
            launches += [
                (k.project_kernel, n_vert, [wpos, height, width, _B, wscr]),
                (k.tri_orientation_kernel, n_tri, [wscr, wtri, _B, wori]),
            ]
        launches += [
            (k.silhouette_flag_kernel, n_tri, [wadj, wori, _B, wflag]),
            (
                k.silhouette_kernel,
                n_span,
                [wscr, wtri, wadj, wori, wflag, wrast, height, width, span, _B, wc],
            ),
        ]
        with ctx:
            _per_item(launches, items, device)

    if pos.device.type == "cuda":  # pragma: no cover - needs CUDA
        run((0, batch))
    else:
        _parallel(run, _chunks(batch, torch.get_num_threads()), batch * height * width)
    return code


def _interp_jobs(bounds: list[int], n_vert: int, threads: int) -> list[list[tuple[int, int, int]]]:
    """Per thread, a list of ``(p0, p1, row offset)`` launches: per batch item when the attributes are per
    item (``n_vert`` > 0; whole items per thread, so the gradient rows never race), else an even split."""
    total = bounds[-1]
    if n_vert == 0:
        return [[(total * i // threads, total * (i + 1) // threads, 0)] for i in range(threads)]
    jobs: list[list[tuple[int, int, int]]] = [[] for _ in range(threads)]
    for b in range(len(bounds) - 1):
        owner = min(threads - 1, (bounds[b] + bounds[b + 1]) * threads // (2 * max(total, 1)))
        jobs[owner].append((bounds[b], bounds[b + 1], b * n_vert))
    return [j for j in jobs if j]


def interpolate_fwd_warp(
    attr: torch.Tensor,
    rast: torch.Tensor,
    pix: torch.Tensor,
    tri: torch.Tensor,
    bounds: list[int],
    n_vert: int,
    out: torch.Tensor,
    full: bool,
) -> torch.Tensor:
    """Interpolate ``attr [N,C]`` at the covered pixels ``pix [P]`` (int64 flat indices into ``rast
    [M,4]``, same dtype as attr; ``bounds`` = where each batch item starts, plus P) of triangles ``tri
    [T,3]`` int32 into ``out`` (``[M,C]`` zeros when ``full``, else ``[P,C]``). ``n_vert`` > 0: attr holds
    one block of ``n_vert`` rows per batch item."""
    wp, k = _warp()
    if pix.shape[0] == 0:
        return out
    device, ctx = _launch_ctx(attr.device)
    head = [wp.from_torch(attr), wp.from_torch(rast)]
    wtri = wp.from_torch(tri, dtype=wp.vec3i)

    def run(jobs: list[tuple[int, int, int]]) -> None:
        with ctx:
            for p0, p1, off in jobs:
                if p1 <= p0:
                    continue
                # packed output rows are the launch's thread ids: give each launch its slice of out
                dst = out if full else out[p0:p1]
                wp.launch(
                    k.interp_fwd_kernel,
                    dim=p1 - p0,
                    inputs=[*head, wp.from_torch(pix[p0:p1]), wtri, off, int(full), wp.from_torch(dst)],
                    device=device,
                )

    threads = 1 if attr.device.type == "cuda" else torch.get_num_threads()
    _parallel(run, _interp_jobs(bounds, n_vert, threads), pix.shape[0] * attr.shape[1])
    return out


def interpolate_bwd_warp(
    attr: torch.Tensor,
    rast: torch.Tensor,
    pix: torch.Tensor,
    tri: torch.Tensor,
    bounds: list[int],
    n_vert: int,
    grad: torch.Tensor,
    full: bool,
    want_attr: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients ``(grad_attr [N,C], grad_rast [M,4])`` of :func:`interpolate_fwd_warp` (grad_rast is zero
    but in its (u, v) channels at the covered pixels). On CPU, threads own whole batch items when the
    attributes are per item; shared attributes get one gradient buffer per thread, summed afterwards."""
    wp, k = _warp()
    grad_rast = torch.zeros(rast.shape, dtype=rast.dtype, device=rast.device)
    threads = 1 if attr.device.type == "cuda" else torch.get_num_threads()
    jobs = _interp_jobs(bounds, n_vert, threads)
    if not want_attr:
        buffers = [attr.new_zeros(1, attr.shape[1])] * len(jobs)
    elif n_vert > 0 or len(jobs) == 1:
        buffers = [torch.zeros_like(attr)] * len(jobs)
    else:
        buffers = [torch.zeros_like(attr) for _ in jobs]
    device, ctx = _launch_ctx(attr.device)
    head = [wp.from_torch(attr), wp.from_torch(rast)]
    wtri = wp.from_torch(tri, dtype=wp.vec3i)
    wgr = wp.from_torch(grad_rast)

    def run(item: tuple[int, list[tuple[int, int, int]]]) -> None:
        i, todo = item
        with ctx:
            for p0, p1, off in todo:
                if p1 <= p0:
                    continue
                g = grad if full else grad[p0:p1]
                wp.launch(
                    k.interp_bwd_kernel,
                    dim=p1 - p0,
                    inputs=[
                        *head,
                        wp.from_torch(pix[p0:p1]),
                        wtri,
                        off,
                        int(full),
                        wp.from_torch(g),
                        int(want_attr),
                        wp.from_torch(buffers[i]),
                        wgr,
                    ],
                    device=device,
                )

    _parallel(run, list(enumerate(jobs)), pix.shape[0] * attr.shape[1])
    grad_attr = buffers[0]
    for extra in buffers[1:]:
        if extra is not buffers[0]:
            grad_attr = grad_attr + extra
    return grad_attr, grad_rast


def vertex_normals_warp(verts: torch.Tensor, tri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(unit normals, summed normals)``, both ``[B,V,3]``: per vertex the sum m of its triangles'
    unnormalised normals and ``m / max(|m|, 1e-12)``. ``verts`` contiguous float32/float64, ``tri [T,3]``
    int32 contiguous. CPU threads own whole batch items (the atomic adds never race)."""
    wp, k = _warp()
    batch, n_vert = verts.shape[:2]
    summed = torch.zeros_like(verts)
    unit = torch.empty_like(verts)
    vec = wp.vec3d if verts.dtype == torch.float64 else wp.vec3f
    wv, wt = wp.from_torch(verts, dtype=vec), wp.from_torch(tri, dtype=wp.vec3i)
    ws, ws3, wu = wp.from_torch(summed), wp.from_torch(summed, dtype=vec), wp.from_torch(unit)
    device, ctx = _launch_ctx(verts.device)

    def run(items: tuple[int, int]) -> None:
        with ctx:
            launches = [
                (k.face_normal_sum_kernel, tri.shape[0], [wv, wt, _B, ws3]),
                (k.normalize_rows_kernel, n_vert, [ws, _B, wu]),
            ]
            _per_item(launches, items, device)

    if verts.device.type == "cuda":  # pragma: no cover - needs CUDA
        run((0, batch))
    else:
        _parallel(run, _chunks(batch, torch.get_num_threads()), batch * tri.shape[0])
    return unit, summed


def vertex_normals_bwd_warp(
    verts: torch.Tensor, tri: torch.Tensor, summed: torch.Tensor, grad: torch.Tensor
) -> torch.Tensor:
    """Gradient w.r.t. ``verts [B,V,3]`` of :func:`vertex_normals_warp`'s unit normals given theirs."""
    wp, k = _warp()
    batch, n_vert = verts.shape[:2]
    g_sum = torch.empty_like(verts)
    out = torch.zeros_like(verts)
    vec = wp.vec3d if verts.dtype == torch.float64 else wp.vec3f
    wv, wt, ws = wp.from_torch(verts, dtype=vec), wp.from_torch(tri, dtype=wp.vec3i), wp.from_torch(summed)
    wg = wp.from_torch(grad.to(verts.dtype).contiguous())
    wgs, wgs3, wo = wp.from_torch(g_sum), wp.from_torch(g_sum, dtype=vec), wp.from_torch(out, dtype=vec)
    device, ctx = _launch_ctx(verts.device)

    def run(items: tuple[int, int]) -> None:
        with ctx:
            launches = [
                (k.normalize_rows_bwd_kernel, n_vert, [ws, wg, _B, wgs]),
                (k.face_normal_sum_bwd_kernel, tri.shape[0], [wv, wt, wgs3, _B, wo]),
            ]
            _per_item(launches, items, device)

    if verts.device.type == "cuda":  # pragma: no cover - needs CUDA
        run((0, batch))
    else:
        _parallel(run, _chunks(batch, torch.get_num_threads()), batch * tri.shape[0])
    return out


def _item_spans(device: torch.device, height: int, width: int) -> tuple[int, int]:
    """(pixels per thread, threads per batch item) of the per-pixel kernels."""
    span = _span(device, width)
    return span, -(-height * width // span)


def shade_fwd_warp(
    rast: torch.Tensor,
    tri: torch.Tensor,
    albedo: torch.Tensor,
    alb_off: int,
    normals: torch.Tensor | None,
    vdepth: torch.Tensor,
    gamma: torch.Tensor | None,
    bg: torch.Tensor,
    out: torch.Tensor,
    depth: torch.Tensor,
) -> None:
    """Runs ``_warp_kernels.shade_fwd_kernel`` over ``rast [B,H,W,4]`` (all arrays of one float dtype,
    contiguous; ``normals [B*V,3]``/``gamma [B,3,9]`` None when unlit; background ``bg [1,C]`` or
    ``[B*H*W,C]``), writing ``out [B*H*W,C+1]`` and ``depth [B*H*W]``. CPU threads own whole items."""
    wp, k = _warp()
    batch, height, width = rast.shape[:3]
    n_vert = vdepth.shape[0] // batch
    lit = normals is not None
    if not lit:
        normals = vdepth.new_zeros(1, 3)
        gamma = vdepth.new_zeros(1, 3, 9)
    vec = wp.vec3d if vdepth.dtype == torch.float64 else wp.vec3f
    head = [
        wp.from_torch(rast.reshape(-1, 4)),
        wp.from_torch(tri, dtype=wp.vec3i),
        wp.from_torch(albedo),
        alb_off,
        wp.from_torch(albedo if albedo.shape[1] == 3 else normals, dtype=vec),  # vec3 rows when lit
        wp.from_torch(normals, dtype=vec),
        wp.from_torch(vdepth),
        wp.from_torch(gamma),
        int(lit),
        n_vert,
        height * width,
    ]
    tail = [wp.from_torch(bg), wp.from_torch(out), wp.from_torch(depth)]
    device, ctx = _launch_ctx(rast.device)
    span, n_span = _item_spans(rast.device, height, width)

    def run(items: tuple[int, int]) -> None:
        with ctx:
            _per_item([(k.shade_fwd_kernel, n_span, [*head, span, _B, *tail])], items, device)

    if rast.device.type == "cuda":  # pragma: no cover - needs CUDA
        run((0, batch))
    else:
        _parallel(run, _chunks(batch, torch.get_num_threads()), batch * height * width)


def shade_bwd_warp(
    pos: torch.Tensor,
    rast: torch.Tensor,
    tri: torch.Tensor,
    albedo: torch.Tensor,
    alb_off: int,
    normals: torch.Tensor | None,
    vdepth: torch.Tensor,
    gamma: torch.Tensor | None,
    gout: torch.Tensor,
    gdepth: torch.Tensor | None,
    want_albedo: bool,
    want_pos: bool,
):
    """Gradients ``(g_albedo, g_normals, g_vdepth, g_gamma, g_pos)`` of :func:`shade_fwd_warp` given those of
    ``out`` and ``depth`` (``gdepth`` None: the depth map is unused). None for unlit normals/gamma; g_albedo
    None unless wanted; g_gamma float64, g_pos in pos's dtype. Shared albedo (``alb_off`` 0) gets one
    gradient buffer per CPU thread, summed afterwards."""
    wp, k = _warp()
    batch, height, width = rast.shape[:3]
    n_vert = vdepth.shape[0] // batch
    lit = normals is not None
    if not lit:
        normals = vdepth.new_zeros(1, 3)
        gamma = vdepth.new_zeros(1, 3, 9)
    vec = wp.vec3d if vdepth.dtype == torch.float64 else wp.vec3f
    g_normals = torch.zeros_like(normals)
    g_vdepth = torch.zeros_like(vdepth)
    g_gamma = torch.zeros(gamma.shape, dtype=torch.float64, device=gamma.device)
    # position gradients accumulate in pos's dtype (float32 like nvdiffrast's; each vertex sums a few dozen
    # pixels' terms, each computed in float64)
    gpos = torch.zeros(pos.shape if want_pos else (1, 1, 4), dtype=pos.dtype, device=pos.device)
    cpu = rast.device.type != "cuda"
    jobs = _chunks(batch, torch.get_num_threads() if cpu else 1)
    if not want_albedo:
        buffers = [albedo.new_zeros(1, albedo.shape[1])] * len(jobs)
    elif alb_off > 0 or len(jobs) == 1:
        buffers = [torch.zeros_like(albedo)] * len(jobs)
    else:
        buffers = [torch.zeros_like(albedo) for _ in jobs]
    vec4 = wp.vec4d if pos.dtype == torch.float64 else wp.vec4f
    head = [
        wp.from_torch(pos, dtype=vec4),
        wp.from_torch(tri, dtype=wp.vec3i),
        wp.from_torch(rast.reshape(-1, 4)),
        wp.from_torch(albedo),
        alb_off,
        wp.from_torch(albedo if albedo.shape[1] == 3 else normals, dtype=vec),  # vec3 rows when lit
        wp.from_torch(normals, dtype=vec),
        wp.from_torch(vdepth),
        wp.from_torch(gamma),
        int(lit),
        n_vert,
        height,
        width,
    ]
    want_depth = gdepth is not None
    gdepth = gdepth if want_depth else vdepth.new_zeros(1)
    grads = [wp.from_torch(gout), wp.from_torch(gdepth), int(want_depth), int(want_albedo), int(want_pos)]
    tail = [
        wp.from_torch(g_normals, dtype=vec),
        wp.from_torch(g_vdepth),
        wp.from_torch(g_gamma),
        wp.from_torch(gpos, dtype=vec4),
    ]
    device, ctx = _launch_ctx(rast.device)
    span, n_span = _item_spans(rast.device, height, width)

    def run(job: tuple[int, tuple[int, int]]) -> None:
        j, items = job
        buf = buffers[j]
        wa = [wp.from_torch(buf), wp.from_torch(buf if buf.shape[1] == 3 else g_normals, dtype=vec)]
        with ctx:
            _per_item([(k.shade_bwd_kernel, n_span, [*head, span, _B, *grads, *wa, *tail])], items, device)

    if not cpu:  # pragma: no cover - needs CUDA
        run((0, (0, batch)))
    else:
        _parallel(run, list(enumerate(jobs)), batch * height * width)
    g_albedo = None
    if want_albedo:
        g_albedo = buffers[0]
        for extra in buffers[1:]:
            if extra is not buffers[0]:
                g_albedo = g_albedo + extra
    return g_albedo, (g_normals if lit else None), g_vdepth, (g_gamma if lit else None), gpos


def visibility_warp(
    pos: torch.Tensor, vdepth: torch.Tensor, depth: torch.Tensor, rast: torch.Tensor, tol: torch.Tensor
) -> torch.Tensor:
    """``[B,V]`` bool: ``renderer.vertex_visibility``'s rule in one Warp pass (``pos [B,V,4]``, ``vdepth
    [B,V]``, ``depth [B,H,W]``, ``rast [B,H,W,4]``, ``tol [B]``, all of pos's dtype, contiguous)."""
    wp, k = _warp()
    batch, n_vert = pos.shape[:2]
    out = torch.empty((batch, n_vert), dtype=torch.bool, device=pos.device)
    args = [wp.from_torch(x) for x in (pos, vdepth, depth, rast, tol)]
    wo = wp.from_torch(out, dtype=wp.bool)
    device, ctx = _launch_ctx(pos.device)
    with ctx:
        _per_item([(k.visibility_kernel, n_vert, [*args, _B, wo])], (0, batch), device)
    return out
