"""SIR on synthetic identities (CPU, minutes): does the SIR term make shape parameters recognisable?

    python benchmarks/sir.py                  # table printed, JSON in benchmarks/results/sir.json
    python benchmarks/sir.py --steps 400      # longer fits

Two fits of the same small SIR network from the same initialisation on the same batches: rendered identities
(``SyntheticIdentities``: P x K identity groups, half of the identities with 3D labels (landmarks), the others
with identity labels only), ``stage: mixed`` with the SIR term (CosFace + weighted centre loss + KL, Eq. 17)
and without it (``w_sir = 0``: landmarks and the photometric terms only, Eq. 9 without ``L_SIR``). Then, on
identities held out from training:

* **verification**: LFW-style 10-fold accuracy (``facezoo.metrics.verification_accuracy``) of pairs of images
  of the same / of different held-out identities, with the Euclidean and the cosine distance between the
  regressed shape parameters and between the neutral shapes' vertices (SIR Tables II-IV);
* **shape RMSE per frame** (SIR Table V's protocol on rendered data): for each image of a held-out identity
  (poses and expressions vary) the neutral shape ``model(id)`` is compared with the identity's true neutral
  shape by :func:`facezoo.metrics.mesh_rmse` (95 mm crop around the nose tip, ICP with isotropic scale,
  point-to-plane RMSE, mm); mean and spread (std) over the frames of each identity.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from facezoo.datamodules import SyntheticIdentities

from facezoo.methods import SIR
from facezoo.metrics import mesh_rmse
from facezoo.metrics.verification import verification_accuracy

OUT = Path(__file__).resolve().parent / "results" / "sir.json"
MODEL = "procedural:1000:8:4:8"
SIZE = 48
NET = dict(
    morphable_model=MODEL, image_size=SIZE, depth=4, channels=(16, 32, 32, 64), hidden=64, albedo_dim=16,
    uv_size=32, albedo_channels=(32, 32, 16, 16, 8, 8), albedo_fusion=8, confnet_nf=16, confnet_zdim=16,
    stage="mixed", renderer_backend="builtin",
)  # fmt: skip
FACES = dict(morphable_model=MODEL, image_size=SIZE, yaw_range=30.0, pitch_range=10.0, roll_range=5.0,
             exp_scale=0.7, background="plain", renderer_backend="builtin")  # fmt: skip


def fit(method: SIR, batches: list[dict], lr: float) -> float:
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=lr)
    method.train()
    t = time.perf_counter()
    for i, batch in enumerate(batches):
        opt.zero_grad()
        terms = method.training_losses(batch)
        terms["total"].backward()
        opt.step()
        if i % 50 == 0 or i == len(batches) - 1:
            print(f"  step {i:4d}  " + "  ".join(f"{k} {float(v):.3f}" for k, v in terms.items()), flush=True)
    return time.perf_counter() - t


@torch.no_grad()
def regress(method: SIR, images: torch.Tensor) -> torch.Tensor:
    method.eval()
    return torch.cat([method.net.encode(chunk)["id"] for chunk in images.split(64)])


def verification(method: SIR, dm: SyntheticIdentities, n_folds: int = 10) -> dict[str, float]:
    """Same pairs (images 0, 1 of identity i) and different pairs (image 2 of i, image 3 of i + 1), LFW order:
    per fold ``p`` same pairs then ``p`` different ones."""
    ds = dm.dataset("val")
    k, n = dm.images_per_identity, len(ds) // dm.images_per_identity
    images = torch.stack([s["image"] for s in ds.__getitems__(list(range(len(ds))))])
    ids = regress(method, images)
    model = method.morphable
    verts = (model(ids, None) - model.mean).flatten(1)
    p = n // n_folds
    a, b, same = [], [], []
    for f in range(n_folds):
        for i in range(f * p, (f + 1) * p):
            a.append(i * k), b.append(i * k + 1), same.append(True)
        for i in range(f * p, (f + 1) * p):
            a.append(i * k + 2), b.append(((i + 1) % n) * k + 3), same.append(False)
    same_t = torch.tensor(same)
    out = {}
    for name, emb in (("params", ids), ("vertices", verts)):
        for d in ("euclidean", "cosine"):
            acc, std = verification_accuracy(emb[a].double(), emb[b].double(), same_t, d, n_folds)
            out[f"{name}_{d}"], out[f"{name}_{d}_std"] = float(acc), float(std)
    return out


def shape_rmse(method: SIR, dm: SyntheticIdentities) -> dict[str, list[float]]:
    """Per-frame Florence-style RMSE (mm) of the neutral shape against the true one, per held-out identity."""
    ds = dm.dataset("test")
    k = dm.images_per_identity
    model = method.morphable
    per_identity = []
    for ident in range(len(ds) // k):
        samples = ds.__getitems__(list(range(ident * k, (ident + 1) * k)))
        ids = regress(method, torch.stack([s["image"] for s in samples]))
        truth = model(samples[0]["params"]["id"][None], None)[0]
        nose = truth[model.landmarks68[30]]
        tri = model.triangles
        errs = []
        for pred in model(ids, None):
            lm = model.landmarks(pred[None])[0]
            errs.append(float(mesh_rmse(pred, tri, truth, nose, pred_landmarks=lm,
                                        target_landmarks=model.landmarks(truth[None])[0])))  # fmt: skip
        per_identity.append(errs)
    return {"per_identity": per_identity}


def mean_face_rmse(method: SIR, dm: SyntheticIdentities) -> float:
    """The reference: the RMSE (mm) of the model's mean face (every coefficient 0) against the held-out
    identities."""
    model = method.morphable
    ds = dm.dataset("test")
    errs = []
    for ident in range(len(ds) // dm.images_per_identity):
        truth = model(ds[ident * dm.images_per_identity]["params"]["id"][None], None)[0]
        lm = model.landmarks(model.mean[None])[0]
        errs.append(
            float(
                mesh_rmse(
                    model.mean,
                    model.triangles,
                    truth,
                    truth[model.landmarks68[30]],
                    pred_landmarks=lm,
                    target_landmarks=model.landmarks(truth[None])[0],
                )
            )
        )
    return sum(errs) / len(errs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--identities", type=int, default=48, help="training identities")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--held-out", type=int, default=40, help="held-out identities for verification")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    train = SyntheticIdentities(**FACES, num_identities=args.identities, images_per_identity=4,
                                labelled_fraction=0.5, p=4, k=4, num_val=args.held_out,
                                seed=args.seed)  # fmt: skip
    held = SyntheticIdentities(
        **FACES, num_identities=1, images_per_identity=12, num_test=3, seed=args.seed + 7
    )
    t = time.perf_counter()
    loader = train.train_dataloader()
    batches = []
    epoch = 0
    while len(batches) < args.steps:
        loader.sampler.set_epoch(epoch)
        batches.extend(loader)
        epoch += 1
    batches = batches[: args.steps]
    print(f"rendered {len(batches)} batches of {train.batch_size} in {time.perf_counter() - t:.0f} s")
    results: dict[str, dict] = {}
    mean_face = mean_face_rmse(SIR(**NET, num_identities=args.identities), held)
    init = None
    for name, w_sir in (("with SIR", 1.0), ("without SIR", 0.0)):
        torch.manual_seed(args.seed)
        method = SIR(**NET, num_identities=args.identities, w_sir=w_sir)
        if init is None:
            init = {k: v.clone() for k, v in method.state_dict().items()}
        method.load_state_dict(init)  # the same start for both
        print(f"{name}: fitting {args.steps} steps")
        seconds = fit(method, batches, args.lr)
        ver = verification(method, train)
        rmse = shape_rmse(method, held)
        frames = torch.tensor(rmse["per_identity"])
        results[name] = {"fit_s": seconds, "verification": ver, "rmse_mm": rmse,
                         "rmse_mean": float(frames.mean()),
                         "rmse_frame_std": float(frames.std(1).mean())}  # fmt: skip
    rows = [
        "| run | params eucl. acc % | params cos. acc % | vertices eucl. acc % | vertices cos. acc % | "
        "shape RMSE mm (mean) | RMSE spread over frames (std, mm) | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        v = r["verification"]
        cells = [f"{100 * v[k]:.1f} ± {100 * v[k + '_std']:.1f}"
                 for k in ("params_euclidean", "params_cosine", "vertices_euclidean",
                           "vertices_cosine")]  # fmt: skip
        rows.append(f"| {name} | " + " | ".join(cells)
                    + f" | {r['rmse_mean']:.2f} | {r['rmse_frame_std']:.2f}"
                    + f" | {r['fit_s']:.0f} |")  # fmt: skip
    table = "\n".join(rows)
    print(f"\nSIR on synthetic identities: {args.steps} steps, {args.identities} training identities, "
          f"{args.held_out} held-out identities ({2 * args.held_out} pairs), RMSE on 3 held-out identities "
          "x 12 "
          f"frames; the mean face's RMSE: {mean_face:.2f} mm\n"
          f"{table}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                    "mean_face_rmse": mean_face,
                                    "table": table}, indent=1))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
