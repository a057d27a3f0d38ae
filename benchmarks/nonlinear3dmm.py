"""Representation power of the nonlinear 3DMM on synthetic faces (Tran et al. 2019, §4.2: Table 1, Fig. 8).

    python benchmarks/nonlinear3dmm.py           # table, JSON benchmarks/results/nonlinear3dmm.json,
                                                 # picture runs/bench/nonlinear3dmm.png
    python benchmarks/nonlinear3dmm.py --quick   # a smoke run (numbers meaningless)

Four decoder variants of :class:`facezoo.methods.NonlinearFace3DMM` are trained the same way on synthetic
faces of the procedural model (supervised pretraining, then the unsupervised stage): global-local with
proxies (the paper's model), global-local without proxies, global pathway only with and without proxies.
Then, as the paper measures representation power, on held-out faces:

- **texture** (Table 1): f_A and L are fitted by gradient descent (Adam), starting from the encoder's
  estimate, so that the decoded albedo rendered on the *known* geometry (ground-truth mesh and camera)
  reproduces the image; the score is the l2,1 error (:func:`facezoo.metrics.photometric_error`) over the
  visible face pixels;
- **shape** (Fig. 8): f_S is fitted to the ground-truth mesh (mean vertex distance / 10 mm + mean normal
  cosine distance), starting from the encoder's estimate; the score is the NME, the mean per-vertex distance
  divided by the outer-eye-corner (inter-ocular) distance.

The linear model "of the same size" is the morphable model's own bases truncated to the latent size
(texture: the first l_A texture components; shape: the first l_S/2 identity and l_S/2 expression
components), fitted the same way from zero. The synthetic faces are *generated* by the full linear model
(80/64/80 components), so the linear baseline is the true generator truncated: a much stronger baseline here
than the BFM is on in-the-wild faces in the paper, and short CPU training leaves the decoders far from
converged.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from facezoo.datamodules.synthetic import SyntheticFaces

from facezoo.geometry.mesh import vertex_normals
from facezoo.methods import NonlinearFace3DMM
from facezoo.metrics import photometric_error

OUT = Path(__file__).resolve().parent / "results" / "nonlinear3dmm.json"
PNG = Path("runs/bench/nonlinear3dmm.png")
VARIANTS = {
    "GL + proxy": dict(local_pathway=True, proxies=True),
    "GL": dict(local_pathway=True, proxies=False),
    "global + proxy": dict(local_pathway=False, proxies=True),
    "global": dict(local_pathway=False, proxies=False),
}


def tiny_args(args) -> dict:
    return dict(
        morphable_model=args.model, image_size=args.image, uv_size=tuple(args.uv), shape_dim=args.latent,
        albedo_dim=args.latent, encoder_channels=(16, 16, 32, 32, 32, 32, 48, 48, 48, 64, 64, 64, 64),
        decoder_channels=(64, 64, 48, 32, 24, 16), local_channels=(32, 24, 16, 16), fusion_channels=16,
        lr=args.lr,
    )  # fmt: skip


def train(method: NonlinearFace3DMM, batches, steps: int, label: str) -> dict[str, float]:
    opt = torch.optim.Adam(method.parameters(), lr=method.hparams.lr)
    method.train()
    terms = {}
    for i in range(steps):
        terms = method.training_losses(next(batches))
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        if (i + 1) % max(1, steps // 4) == 0:
            print(f"  {label} step {i + 1}/{steps}: loss {float(terms['total']):.4f}", flush=True)
    return {k: float(v.detach()) for k, v in terms.items()}


def train_variant(name: str, args, dm: SyntheticFaces) -> tuple[NonlinearFace3DMM, dict]:
    torch.manual_seed(0)
    kw = {**tiny_args(args), **VARIANTS[name]}
    loader = dm.train_dataloader()
    batches = itertools.cycle(loader)
    t = time.perf_counter()
    pre = NonlinearFace3DMM(stage="pretrain", **kw)
    train(pre, batches, args.pretrain_steps, f"{name} pretrain")
    uns = _unsupervised_from(pre, kw)
    last = train(uns, batches, args.unsup_steps, f"{name} unsupervised")
    return uns.eval(), {"train_s": time.perf_counter() - t, "last_terms": last}


def _unsupervised_from(pre: NonlinearFace3DMM, kw: dict) -> NonlinearFace3DMM:
    import warnings

    with warnings.catch_warnings():  # weights handed over in memory rather than through a checkpoint file
        warnings.simplefilter("ignore")
        uns = NonlinearFace3DMM(stage="unsupervised", **kw)
    uns.load_state_dict(pre.state_dict())
    return uns


def fit_texture(render, init: list[torch.Tensor], images, mask, steps: int, lr: float) -> torch.Tensor:
    """Adam on the leaves ``init`` of ``render(*leaves) -> image``; returns the per-image l2,1 after the
    fit."""
    leaves = [x.detach().clone().requires_grad_(True) for x in init]
    opt = torch.optim.Adam(leaves, lr=lr)
    for _ in range(steps):
        loss = photometric_error(render(*leaves), images, mask).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = render(*leaves)
        return photometric_error(out, images, mask), out


def fit_shape(decode, init: torch.Tensor, target: torch.Tensor, tri, steps: int, lr: float):
    """Adam on the latent of ``decode(latent) -> [B,V,3]`` against ``target`` (mean vertex distance / 10 mm +
    mean normal cosine distance); returns the per-mesh NME (inter-ocular) and the fitted vertices."""
    latent = init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([latent], lr=lr)
    n_target = vertex_normals(target, tri)
    for _ in range(steps):
        v = decode(latent)
        loss = (v - target).norm(dim=-1).mean() / 10.0
        loss = loss + (1 - F.cosine_similarity(vertex_normals(v, tri), n_target, dim=-1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        v = decode(latent)
    return v, (v - target).norm(dim=-1).mean(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="procedural:600")
    ap.add_argument("--image", type=int, default=32)
    ap.add_argument("--uv", type=int, nargs=2, default=(32, 40))
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--pretrain-steps", type=int, default=60)
    ap.add_argument("--unsup-steps", type=int, default=20)
    ap.add_argument("--fit-steps", type=int, default=40)
    ap.add_argument("--n-eval", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--png", default=str(PNG))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    if args.quick:
        args.pretrain_steps, args.unsup_steps, args.fit_steps, args.n_eval = 2, 2, 2, 2
    torch.set_num_threads(args.threads)
    dm = SyntheticFaces(
        args.model, image_size=args.image, batch_size=args.batch, num_train=512, num_test=args.n_eval,
        occluder_prob=0.0, yaw_range=30.0,
    )  # fmt: skip
    test = dm.dataset("test").__getitems__(list(range(args.n_eval)))
    from facezoo.data.sample import collate

    test = collate(test)
    images, mask = test["image"], test["mask"]
    p = test["params"]
    gt, cam = p["vertices"], dm.camera(p["angles"], p["translation"])
    model = dm.model
    tri = model.triangles
    lm = model.landmarks68
    iod = (gt[:, lm[36]] - gt[:, lm[45]]).norm(dim=-1)
    rows, pictures = {}, {}
    # linear model of the same size
    k = args.latent
    t0 = time.perf_counter()
    probe = NonlinearFace3DMM(**tiny_args(args))  # only for its renderer (same image size)

    def render_linear(tex, light):
        coef = torch.cat((tex, tex.new_zeros(tex.shape[0], model.n_tex - k)), -1)
        colours = model.texture(coef).clamp(0, 1)
        return probe.renderer(gt, tri, cam, colors=colours, lighting=light, antialias=False).image

    light0 = torch.zeros(args.n_eval, 27)
    light0[:, 0::9] = 0.8
    l21, tex_img = fit_texture(render_linear, [torch.zeros(args.n_eval, k), light0], images, mask,
                               args.fit_steps, 0.05)  # fmt: skip

    def linear_shape(c):
        h = k // 2
        ident = torch.cat((c[:, :h], c.new_zeros(c.shape[0], model.n_id - h)), -1)
        exp = torch.cat((c[:, h:], c.new_zeros(c.shape[0], model.n_exp - (k - h))), -1)
        return model(ident, exp)

    v_lin, dist = fit_shape(linear_shape, torch.zeros(args.n_eval, k), gt, tri, args.fit_steps, 0.05)
    rows[f"linear ({k} tex / {k // 2}+{k // 2} shape comps)"] = {
        "l21": float(l21.mean()), "nme": float((dist / iod).mean()), "fit_s": time.perf_counter() - t0,
    }  # fmt: skip
    pictures["linear"] = (tex_img, v_lin)
    for name in args.variants:
        method, info = train_variant(name, args, dm)
        t0 = time.perf_counter()
        with torch.no_grad():
            codes = method.encode(images)

        def render_nl(f_a, light, _m=method):
            return _m.render(gt, _m.decode_albedo(f_a), cam, light, aa=False).image

        l21, tex_img = fit_texture(
            render_nl, [codes["tex"], codes["light"]], images, mask, args.fit_steps, 0.02
        )
        v_nl, dist = fit_shape(
            lambda f, _m=method: _m.vertices_from_uv(_m.decode_shape(f)), codes["id"], gt, tri,
            args.fit_steps, 0.02,
        )  # fmt: skip
        rows[name] = {"l21": float(l21.mean()), "nme": float((dist / iod).mean()),
                      "fit_s": time.perf_counter() - t0, **info}  # fmt: skip
        pictures[name] = (tex_img, v_nl)
    print(
        f"\nRepresentation power on {args.n_eval} held-out synthetic faces ({args.model}, {args.image}px, "
        f"UV {args.uv[0]}x{args.uv[1]}, latent {k}; {args.pretrain_steps}+{args.unsup_steps} training steps)"
    )
    print(f"{'model':<40} {'texture l2,1':>12} {'shape NME':>10} {'train s':>8}")
    for name, r in rows.items():
        print(f"{name:<40} {r['l21']:>12.4f} {r['nme']:>10.4f} {r.get('train_s', 0.0):>8.0f}")
    print("paper (AFLW2000-3D / BFM scans): linear 0.1287 / 0.0241, GL 0.0386, GL + proxy 0.0363 / 0.0139")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": rows}, indent=2, default=str))
    print(f"wrote {out}")
    _picture(args, images, gt, cam, tri, probe, pictures)


def _picture(args, images, gt, cam, tri, probe, pictures) -> None:
    """Rows: faces; columns: input, then per model its texture fit (on the true geometry) and its shape fit
    (shaded grey under frontal light)."""
    from facezoo.callbacks.panels import save_png

    n = min(4, images.shape[0])
    light = torch.zeros(n, 27)
    light[:, 0::9], light[:, 3::9] = 0.7, 0.4  # ambient + a light from the front
    cols = [images[:n]]
    with torch.no_grad():
        for tex_img, verts in pictures.values():
            cols.append(tex_img[:n].clamp(0, 1))
            grey = torch.full_like(verts[:n], 0.7)
            cols.append(
                probe.renderer(verts[:n], tri, cam[:n], colors=grey, lighting=light).image.clamp(0, 1)
            )
    grid = torch.cat([torch.cat(list(c), dim=1) for c in cols], dim=2)
    path = save_png(grid, args.png)
    print(f"wrote {path} (columns: input, then texture fit | shape fit for: {', '.join(pictures)})")


if __name__ == "__main__":
    main()
