"""MVF-Net on synthetic triplets: held-out vertex error against single-view Deep3DFace (+pool), with and
without the alignment loss, and the weight-free flow's endpoint error on a known flow.

    python benchmarks/mvfnet.py --threads 1   # ~17 min on one busy core; table + results/mvfnet.json
    python benchmarks/mvfnet.py --sup-steps 300 --self-steps 20 --single-steps 300     # a 2-minute smoke run

What runs (every model sees the same training triplets and is scored on the same held-out triplets):

1. Horn–Schunck flow (the weight-free estimator of L_align) on a textured image warped by a known smooth flow:
   the mean endpoint error (px) against the zero-flow error.
2. MVF-Net supervised pretraining (Eq. 6) on triplets (frontal, +yaw, -yaw) of the procedural model.
3. From (2), self-supervised training (Eq. 9) with L_align (v4: landmark + photo + align) and without it
   (v2: landmark + photo), the same steps and batches.
4. Deep3DFace R-Net trained on the triplets' single images with its own (self-supervised) hybrid loss and the
   CPU demo's settings, scored per image and with "+pool" (:class:`facezoo.methods.PooledSingleView`).

Vertex error: mm, mean per-vertex distance after a similarity alignment, over the model's front mask, averaged
over the held-out images (every row of a triplet carries its set's shape for MVF-Net and +pool). The problem
is CPU-sized (64 px, 1000 vertices, 4 identity / 2 expression components, short runs): the numbers compare the
methods on equal budgets here, they are not the paper's MICC numbers (1.220 / 1.228 mm).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from facezoo.datamodules.synthetic import SyntheticFaces

from facezoo.methods import Deep3DFace, MVFNet, PooledSingleView
from facezoo.methods.base import vertex_error
from facezoo.methods.views import flatten_views
from facezoo.nn import HornSchunckFlow
from facezoo.nn.flow_hs import backward_warp

OUT = Path(__file__).resolve().parent / "results" / "mvfnet.json"
MODEL = "procedural:1000:4:2:8"


def flow_epe(size: int = 64) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    tex = sum(
        F.interpolate(torch.rand(4, 3, r, r, generator=g), size=(size, size), mode="bicubic")
        for r in (4, 8, 16)
    )
    image2 = (tex / 3).clamp(0, 1)
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    truth = torch.stack(
        (2.0 + 1.5 * torch.sin(2 * torch.pi * ys / size), -1.0 + torch.cos(2 * torch.pi * xs / size))
    )
    truth = truth[None].expand(4, -1, -1, -1)
    image1 = backward_warp(image2, truth)
    with torch.no_grad():
        t = time.perf_counter()
        est = HornSchunckFlow()(image1, image2)
        secs = time.perf_counter() - t
    inner = (slice(None), slice(8, -8), slice(8, -8))
    return {
        "epe_px": float((est - truth).norm(dim=1)[inner].mean()),
        "zero_flow_epe_px": float(truth.norm(dim=1)[inner].mean()),
        "seconds_per_pair": secs / 4,
        "size": size,
    }


def held_out_error(method, loader) -> float:
    method.eval()
    errs = []
    with torch.no_grad():
        for batch in loader:
            rec = method.reconstruct(batch)
            gt = flatten_views(batch)["params"]["vertices"]
            errs.append(vertex_error(rec.vertices, gt.to(rec.vertices), method._eval_mask(gt.shape[1])))
    method.train()
    return float(torch.cat(errs).mean())


def train(method, batches, steps: int, label: str, flat: bool = False) -> float:
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=method.hparams.lr)
    method.train()
    t = time.perf_counter()
    for i in range(steps):
        batch = batches[i % len(batches)]
        terms = method.training_losses(flatten_views(batch) if flat else batch)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        if (i + 1) % max(1, steps // 5) == 0 or i + 1 == steps:
            shown = {k: round(float(v.detach()), 4) for k, v in terms.items()}
            print(f"  {label}: step {i + 1}/{steps} ({time.perf_counter() - t:.0f} s) {shown}", flush=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4, help="triplets per batch")
    ap.add_argument("--sup-steps", type=int, default=2500)
    ap.add_argument("--self-steps", type=int, default=100)
    ap.add_argument("--single-steps", type=int, default=2500)
    ap.add_argument("--test", type=int, default=24, help="held-out triplets")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:  # on a shared, loaded machine 1 thread avoids oversubscription (small ops slow 100x)
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    print("flow: Horn-Schunck endpoint error on a known smooth flow", flush=True)
    flow = flow_epe(args.size)
    print(f"  EPE {flow['epe_px']:.3f} px (zero flow: {flow['zero_flow_epe_px']:.3f} px)", flush=True)

    n_batches = max(args.sup_steps, args.single_steps) // 2 + 1  # each batch seen about twice
    dm = SyntheticFaces(
        MODEL, image_size=args.size, batch_size=args.batch, num_train=n_batches * args.batch,
        num_test=args.test, set_size=3, set_mode="multiview", yaw_range=35.0, pitch_range=5.0, roll_range=5.0,
        background="plain", light_scale=0.04,
    )  # fmt: skip
    print(f"rendering {n_batches * args.batch} training triplets ...", flush=True)
    batches = list(dm.train_dataloader())
    test = list(dm.test_dataloader())
    common = dict(morphable_model=MODEL, image_size=args.size)
    results: dict[str, dict] = {}

    payload = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        | {"model": MODEL},
        "results": results,
        "flow": flow,
    }

    def save() -> None:  # after every model, so that an interrupted run keeps what it measured
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload | {"seconds": time.perf_counter() - t0}, indent=2))

    mvf = MVFNet(**common, width_divisor=4, hidden=64, lr=1e-3)
    results["mean face"] = {"vertex_error_mm": held_out_error(mvf, test)}  # zero-initialised heads
    secs = train(mvf, batches, args.sup_steps, "MVF-Net supervised")
    results["MVF-Net supervised (v1)"] = {"vertex_error_mm": held_out_error(mvf, test), "train_s": secs}
    save()

    d3d_args = dict(
        **common, backbone="resnet18", backbone_kwargs={"width": 32}, w_lan=0.05, w_coef=0.01, lr=2e-3,
        output_scale={"angles": 0.1, "translation": 0.1, "id": 10.0, "exp": 10.0, "tex": 10.0, "light": 10.0},
    )  # fmt: skip
    d3d = Deep3DFace(**d3d_args)
    secs = train(d3d, batches, args.single_steps, "Deep3DFace (single images)", flat=True)
    results["Deep3DFace per image"] = {"vertex_error_mm": held_out_error(d3d, test), "train_s": secs}
    pooled = PooledSingleView("facezoo.methods.Deep3DFace", d3d_args)
    pooled.inner.load_state_dict(d3d.state_dict())
    results["Deep3DFace + pool"] = {"vertex_error_mm": held_out_error(pooled, test), "train_s": secs}
    save()

    for name, w_align in (
        ("MVF-Net self-sup. photo+align (v4)", 0.1),
        ("MVF-Net self-sup. photo only (v2)", 0.0),
    ):
        torch.manual_seed(1)
        selfsup = MVFNet(
            **common, width_divisor=4, hidden=64, lr=1e-4, stage="selfsupervised", self_w_align=w_align
        )
        selfsup.net.load_state_dict(copy.deepcopy(mvf.net.state_dict()))
        secs = train(selfsup, batches, args.self_steps, name)
        results[name] = {"vertex_error_mm": held_out_error(selfsup, test), "train_s": secs}
        save()

    print(f"\nHeld-out vertex error on {args.test} synthetic triplets ({args.size} px, {MODEL}; mm, aligned)")
    print(f"{'method':38s} {'error mm':>9s} {'train s':>8s}")
    for name, r in results.items():
        print(f"{name:38s} {r['vertex_error_mm']:9.3f} {r.get('train_s', 0.0):8.0f}")
    epe, zero = flow["epe_px"], flow["zero_flow_epe_px"]
    print(f"flow EPE (Horn-Schunck, {args.size} px): {epe:.3f} px (zero flow: {zero:.3f} px)")
    save()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
