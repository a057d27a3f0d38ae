"""MorphableModel speed: forward (and backward) for a batch on a Deep3DFace-sized model, against a plain
einsum, and canonical HDF5 save/load times. Prints a table, writes benchmarks/results/morphable.json.

    python benchmarks/morphable.py [--batch 64] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from facezoo.morphable import MorphableModel
from facezoo.morphable.hdf5 import load_model, save_model

RESULTS = Path(__file__).parent / "results"


def deep3d_sized_model() -> tuple[MorphableModel, str]:
    """The 35k-vertex procedural model with Deep3DFace's 80/64/80 components (else random, same size)."""
    try:
        from facezoo.morphable.procedural import procedural_model

        return procedural_model(
            n_vertices=35709, n_id=80, n_exp=64, n_tex=80
        ), "procedural_model(35709, 80/64/80)"
    except ImportError:
        return random_model(35709, 80, 64, 80), "random model (35709 vertices, 80/64/80): no procedural model"


def random_model(V: int, kid: int, kexp: int, ktex: int) -> MorphableModel:
    g = torch.Generator().manual_seed(0)
    return MorphableModel(
        mean=torch.randn(V, 3, generator=g) * 50,
        id_basis=torch.randn(V, 3, kid, generator=g) * 1e-2,
        exp_basis=torch.randn(V, 3, kexp, generator=g) * 1e-2,
        id_std=torch.rand(kid, generator=g) + 0.5,
        exp_std=torch.rand(kexp, generator=g) + 0.5,
        tex_mean=torch.rand(V, 3, generator=g),
        tex_basis=torch.randn(V, 3, ktex, generator=g) * 1e-2,
        triangles=torch.randint(0, V, (2 * V, 3), generator=g),
        landmarks68=torch.randint(0, V, (68,), generator=g),
    )


def timeit(fn, repeat: int = 10, sync=lambda: None) -> float:
    """Median wall time in ms (after one warm-up call)."""
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    times.sort()
    return 1e3 * times[len(times) // 2]


def bench_forward(model: MorphableModel, batch: int, device: str) -> dict[str, float]:
    model = model.to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a = torch.randn(batch, model.n_id, device=device)
    b = torch.randn(batch, model.n_exp, device=device)
    t = torch.randn(batch, model.n_tex, device=device)

    def naive():  # the textbook expression, for comparison
        return (
            model.mean
            + torch.einsum("vck,bk->bvc", model.id_basis, a * model.id_std)
            + torch.einsum("vck,bk->bvc", model.exp_basis, b * model.exp_std)
        )

    def fwd_bwd():
        x, y = a.clone().requires_grad_(), b.clone().requires_grad_()
        model(x, y).square().mean().backward()

    with torch.no_grad():
        out = {
            "forward_ms": timeit(lambda: model(a, b), sync=sync),
            "einsum_forward_ms": timeit(naive, sync=sync),
            "texture_ms": timeit(lambda: model.texture(t), sync=sync),
        }
    out["forward_backward_ms"] = timeit(fwd_bwd, sync=sync)
    return out


def bench_hdf5(model: MorphableModel) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.h5"
        t = time.perf_counter()
        save_model(model, path)
        save = time.perf_counter() - t
        load = timeit(lambda: load_model(path), repeat=5)
        size = path.stat().st_size
    return {"save_ms": 1e3 * save, "load_ms": load, "file_mb": size / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", type=Path, default=RESULTS / "morphable.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, desc = deep3d_sized_model()
    fwd = bench_forward(model, args.batch, args.device)
    io_small = bench_hdf5(model)
    bfm_like = random_model(53215, 199, 29, 199)
    io_bfm = bench_hdf5(bfm_like)

    rows = [
        (f"forward id+exp, batch {args.batch}", fwd["forward_ms"], "ms"),
        (f"einsum reference, batch {args.batch}", fwd["einsum_forward_ms"], "ms"),
        (f"forward+backward, batch {args.batch}", fwd["forward_backward_ms"], "ms"),
        (f"texture, batch {args.batch}", fwd["texture_ms"], "ms"),
        (f"HDF5 save ({io_small['file_mb']:.0f} MB)", io_small["save_ms"], "ms"),
        ("HDF5 load (35k, 80/64/80 + tex)", io_small["load_ms"], "ms"),
        (f"HDF5 load (53215, 199/29/199 + tex, {io_bfm['file_mb']:.0f} MB)", io_bfm["load_ms"], "ms"),
    ]
    print(f"model: {desc}; device {args.device}; torch threads {torch.get_num_threads()}")
    width = max(len(r[0]) for r in rows)
    for name, value, unit in rows:
        print(f"{name:<{width}}  {value:9.2f} {unit}")
    result = {
        "model": desc,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "forward": fwd,
        "hdf5_deep3d_sized": io_small,
        "hdf5_bfm_3ddfa_sized": io_bfm,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "note": "HDF5 load times are warm-cache reads (the file was just written)",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
