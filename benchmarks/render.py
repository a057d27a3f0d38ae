"""Renderer speed: rasterize / interpolate fwd+bwd / antialias fwd+bwd / MeshRenderer fwd and fwd+bwd per
backend and device, with open3d's RaycastingScene as a peer on the same scene. Prints a table, writes
benchmarks/results/render.json.

    python benchmarks/render.py [--batch 8 64] [--threads 1 2] [--repeat 7] [--save]

Times are the minimum over ``--repeat`` runs after a warm-up (the least noisy statistic on a shared machine;
the median is in the JSON too). On an oversubscribed machine, OpenMP's spin-waiting makes PyTorch's
multi-threaded ops erratic, so this script sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment says
otherwise; the load average at the start is printed with the table (a 2-thread time only means something
when two cores are free).
"""

# ruff: noqa: B023  (the timed closures run inside the loop iteration that defines them)
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP runtime

import torch  # noqa: E402

from facezoo.geometry.cameras import WeakPerspective  # noqa: E402
from facezoo.render import MeshRenderer, antialias, interpolate, rasterize, use_kernels  # noqa: E402
from facezoo.render._runtime import _load  # noqa: E402
from facezoo.render.backends import BACKENDS  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def scene(n_vertices: int = 35000):
    """(vertices [V,3] mm, triangles [T,3], colours [V,3], uv [V,2] or None, description)."""
    try:
        from facezoo.morphable.procedural import procedural_model

        model = procedural_model(n_vertices=n_vertices, n_id=4, n_exp=4, n_tex=4)
        col = model.tex_mean if model.tex_mean is not None else torch.full_like(model.mean, 0.7)
        return model.mean.float(), model.triangles, col.float(), model.uv, "procedural_model(35000)"
    except Exception:  # the procedural model is written by another module; fall back to a cap grid
        k = int(math.sqrt(n_vertices))
        u = torch.linspace(-1, 1, k)
        y, x = torch.meshgrid(u, u, indexing="ij")
        z = torch.sqrt((1.3 - 0.5 * x**2 - 0.5 * y**2).clamp(min=0))
        v = torch.stack((75 * x, 95 * y, 60 * z), -1).reshape(-1, 3)
        idx = torch.arange(k * k).reshape(k, k)
        a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
        tri = torch.cat(
            (torch.stack((a, b, d), -1).reshape(-1, 3), torch.stack((a, d, c), -1).reshape(-1, 3))
        )
        uv = torch.stack(((x.reshape(-1) + 1) / 2, (y.reshape(-1) + 1) / 2), -1)
        return v, tri, torch.full_like(v, 0.7), uv, "ellipsoidal cap grid (35k)"


def camera(batch: int, size: int, vertices: torch.Tensor, yaw: float = 0.3):
    extent = float((vertices[:, :2].amax(0) - vertices[:, :2].amin(0)).max())
    c, s = math.cos(yaw), math.sin(yaw)
    rot = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])[None].repeat(batch, 1, 1)
    return WeakPerspective(torch.full((batch,), 0.85 * size / extent), rot, torch.full((batch, 2), size / 2))


REPEAT = 7


def _with_kernels(kernels: str, fn, *args, **kwargs):
    with use_kernels(kernels):
        return fn(*args, **kwargs)


def timeit(fn, repeat: int | None = None) -> tuple[float, float]:
    """(min, median) wall time of ``fn()`` in ms over ``repeat`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat or REPEAT):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return 1000 * times[0], 1000 * times[len(times) // 2]


def open3d_raycast(pos: torch.Tensor, tri: torch.Tensor, size: int) -> float | None:
    """open3d.t RaycastingScene on the same (orthographic, w = 1) clip-space scene, one scene per item."""
    try:
        import open3d as o3d
    except Exception:
        return None
    o3c = o3d.core
    ys = 1 - (2 * torch.arange(size) + 1) / size
    xs = (2 * torch.arange(size) + 1) / size - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    rays = torch.stack((gx, gy, torch.full_like(gx, -2.0), 0 * gx, 0 * gx, torch.ones_like(gx)), -1).numpy()
    tris = o3c.Tensor(tri.int().numpy().astype("uint32"))

    def run():
        for b in range(pos.shape[0]):
            sc = o3d.t.geometry.RaycastingScene()
            sc.add_triangles(o3c.Tensor(pos[b, :, :3].contiguous().numpy()), tris)
            sc.cast_rays(o3c.Tensor(rays))

    return timeit(run, 3)


def bench_backend(name, fn, pos, t, v, cam, colors, res, batch, device) -> dict:
    """Stage timings of one backend: rasterize, and for the differentiable backends interpolate fwd+bwd
    (gradients to attributes and positions), antialias fwd+bwd and the full MeshRenderer (SH shading,
    antialias; forward, and forward + backward with gradients to vertices, colours and lighting)."""
    row = {"backend": name}
    row["rasterize_ms"], row["rasterize_median_ms"] = timeit(fn)
    if name == "builtin/torch":
        return row
    backend = "builtin" if name.startswith("builtin") else name
    attr = colors.to(device)[None].expand(batch, -1, -1).contiguous().requires_grad_(True)

    def interp():
        p = pos.detach().requires_grad_(True)
        interpolate(attr, rasterize(p, t, res, backend=backend), t).sum().backward()

    rast = rasterize(pos, t, res, backend=backend)
    image = torch.rand(*rast.shape[:3], 4, device=device, requires_grad=True)

    def aa():
        p = pos.detach().requires_grad_(True)
        antialias(image, rast, p, t).sum().backward()

    renderer = MeshRenderer(res, backend=backend)
    light = torch.zeros(batch, 27, device=device)
    light[:, [0, 9, 18]] = 0.8
    col = colors.to(device)[None]

    def full():
        vv = v.detach().requires_grad_(True)
        c = col.detach().requires_grad_(True)
        g = light.detach().requires_grad_(True)
        renderer(vv, t, cam, colors=c, lighting=g).image.sum().backward()

    def forward():
        with torch.no_grad():
            renderer(v, t, cam, colors=col, lighting=light)

    row["interpolate_fwd_bwd_ms"], _ = timeit(interp)
    row["antialias_fwd_bwd_ms"], _ = timeit(aa)
    row["render_fwd_ms"], _ = timeit(forward)
    row["render_fwd_bwd_ms"], row["render_fwd_bwd_median_ms"] = timeit(full)
    return row


def main() -> None:
    global REPEAT
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=REPEAT)
    ap.add_argument("--save", action="store_true", help="write PNGs of the shaded face")
    args = ap.parse_args()
    REPEAT = args.repeat
    load = os.getloadavg()
    verts, tri, colors, uv, desc = scene()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    coverage = None
    for threads in args.threads:
        torch.set_num_threads(threads)
        for device in devices:
            for batch in args.batch:
                v = verts.to(device)[None].repeat(batch, 1, 1)
                cam = camera(batch, args.size, verts)
                cam = WeakPerspective(cam.scale.to(device), cam.rotation.to(device), cam.t2d.to(device))
                t = tri.to(device)
                res = (args.size, args.size)
                pos = cam.to_clip(v, res).contiguous()
                if coverage is None:
                    coverage = float((rasterize(pos[:1], t, res)[..., 3] > 0).float().mean())
                impls = [("builtin/warp", "warp")] if _load()[0] is not None else []
                impls.append(("builtin/torch", "torch"))
                entries = [
                    (n, (lambda i=i: _with_kernels(i, rasterize, pos, t, res, backend="builtin")), i)
                    for n, i in impls
                ]
                if BACKENDS["nvdiffrast"].available(pos.device):
                    entries.append(
                        ("nvdiffrast", lambda: rasterize(pos, t, res, backend="nvdiffrast"), "auto")
                    )
                for name, fn, kernels in entries:
                    if name == "builtin/torch" and batch > 8:
                        continue
                    with use_kernels(kernels):
                        row = bench_backend(name, fn, pos, t, v, cam, colors, res, batch, device)
                    rows.append({"device": device, "batch": batch, "threads": threads, **row})
                if device == "cpu":
                    o3 = open3d_raycast(pos.cpu(), tri, args.size)
                    if o3 is not None:
                        rows.append(
                            {
                                "device": "cpu",
                                "batch": batch,
                                "threads": threads,
                                "backend": "open3d RaycastingScene",
                                "rasterize_ms": o3[0],
                                "rasterize_median_ms": o3[1],
                            }
                        )
    # ratios against open3d per (threads, batch), same run
    for r in rows:
        peer = [
            o["rasterize_ms"]
            for o in rows
            if o["backend"].startswith("open3d") and o["batch"] == r["batch"] and o["threads"] == r["threads"]
        ]
        r["open3d_over_this"] = (
            round(peer[0] / r["rasterize_ms"], 2) if peer and r["device"] == "cpu" else None
        )
    header = f"scene: {desc}, {verts.shape[0]} vertices, {tri.shape[0]} triangles, {args.size}^2"
    header += f", {100 * coverage:.0f}% of pixels covered; min of {REPEAT} runs, ms"
    header += f"; load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    print(header)
    cols = [
        ("rasterize_ms", "raster"),
        ("interpolate_fwd_bwd_ms", "interp f+b"),
        ("antialias_fwd_bwd_ms", "aa f+b"),
        ("render_fwd_ms", "render f"),
        ("render_fwd_bwd_ms", "render f+b"),
    ]
    titles = "".join(f"{c[1]:>11}" for c in cols)
    print(f"{'device':6} {'thr':>3} {'batch':>5} {'backend':24}{titles}  o3d/this")
    for r in rows:
        vals = "".join(f"{r.get(k, float('nan')):11.1f}" for k, _ in cols)
        ratio = r["open3d_over_this"] if r["open3d_over_this"] is not None else ""
        print(f"{r['device']:6} {r['threads']:3d} {r['batch']:5d} {r['backend']:24}{vals}  {ratio:>8}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "scene": desc,
        "size": args.size,
        "coverage": coverage,
        "threads": args.threads,
        "repeat": REPEAT,
        "torch": torch.__version__,
        "machine": platform.processor(),
        "cpus": os.cpu_count(),
        "load_average_start": load[0],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    (RESULTS / "render.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    if args.save:
        save_pngs(verts, tri, colors, uv, args.size)


def save_pngs(verts, tri, colors, uv, size) -> None:
    from PIL import Image

    renderer = MeshRenderer((size, size))
    light = torch.zeros(1, 27)
    light[0, [0, 9, 18]] = 0.9
    light[0, [3, 12, 21]] = 0.3
    images = []
    for yaw in (0.0, 0.6):
        cam = camera(1, size, verts, yaw)
        images.append(
            renderer(verts[None], tri, cam, colors=colors[None], lighting=light, background=1.0).image
        )
    if uv is not None:
        ii, jj = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
        checker = (((ii // 16) + (jj // 16)) % 2).float()
        tex = torch.stack((0.4 + 0.5 * checker, 0.5 * torch.ones_like(checker), 0.9 - 0.5 * checker))[None]
        images.append(
            renderer(
                verts[None],
                tri,
                camera(1, size, verts, 0.3),
                texture=tex,
                uv=uv.float(),
                lighting=light,
                background=1.0,
            ).image
        )
    strip = torch.cat(images, -1)[0].clamp(0, 1).permute(1, 2, 0).detach()
    RESULTS.mkdir(parents=True, exist_ok=True)
    Image.fromarray((strip * 255).byte().numpy()).save(RESULTS / "render.png")
    print(f"wrote {RESULTS / 'render.png'}")


if __name__ == "__main__":
    main()
