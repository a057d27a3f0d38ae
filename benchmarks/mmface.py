"""MMFace on synthetic faces (CPU, minutes): held-out landmark NME and NME3D for the PMN pose, the ICP-refined
pose and the ground-truth pose (the paper's ablation rows MMFace-PMN / -ICP / -GT), before and after the three
training stages, and training throughput (images/s) per stage.

    python benchmarks/mmface.py                        # table, JSON in benchmarks/results/mmface.json
    python benchmarks/mmface.py --steps 600 400 200    # longer stages (vmn, pmn, joint)

A small problem so that it fits in minutes: the procedural model with 1000 vertices and 10 identity / 5
expression components, 64x64 crops, a 32^3 volume (ICP also on the volume resampled to 64^3), small
hourglasses and PMN; the stages run as the paper orders them (VMN alone, PMN alone on ground-truth volumes,
joint with Eq. 9's weights) with Adam (1e-3 here: a few hundred steps instead of 60 epochs).
NME: the AFLW2000-3D normalisation (sqrt(w h) of the ground-truth landmark box); NME3D: MMFace Eq. 11.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from facezoo.datamodules.synthetic import SyntheticFaces

from facezoo.data.sample import collate
from facezoo.geometry import image_space_points
from facezoo.methods import MMFace
from facezoo.methods.mmface_targets import ground_truth_camera
from facezoo.metrics import landmark_nme, nme3d

OUT = Path(__file__).resolve().parent / "results" / "mmface.json"


def evaluate(method: MMFace, batches: list[dict], refinement: str, icp_resolution: int | None = None) -> dict:
    method.eval()
    method.hparams.pose_refinement = refinement
    method.hparams.icp_resolution = icp_resolution
    nme, n3d = [], []
    t = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            rec = method.reconstruct(batch)
            cam = ground_truth_camera(batch, method.morphable, method.image_size)
            nme.append(landmark_nme(rec.landmarks2d, batch["landmarks68"]))
            gt = image_space_points(cam, batch["params"]["vertices"])
            n3d.append(nme3d(image_space_points(rec.camera, rec.vertices), gt))
    n = sum(len(b["image"]) for b in batches)
    return {"nme": float(torch.cat(nme).mean()), "nme3d": float(torch.cat(n3d).mean()),
            "ms_per_image": 1e3 * (time.perf_counter() - t) / n}  # fmt: skip


def train(method: MMFace, data: SyntheticFaces, steps: int, batch_size: int, lr: float, seed: int) -> float:
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=lr)
    ds = data.dataset("train")
    g = torch.Generator().manual_seed(seed)
    method.train()
    t, seen = time.perf_counter(), 0
    for step in range(steps):
        idx = torch.randint(0, len(ds), (batch_size,), generator=g).tolist()
        batch = collate(ds.__getitems__(idx))
        opt.zero_grad()
        terms = method.training_losses(batch)
        terms["total"].backward()
        opt.step()
        seen += batch_size
        if step % max(1, steps // 5) == 0 or step == steps - 1:
            shown = {k: f"{float(v.detach()):.4g}" for k, v in terms.items()}
            print(f"  [{method.stage}] step {step + 1}/{steps} {shown}", flush=True)
    return seen / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs=3, default=(300, 300, 150), metavar=("VMN", "PMN", "JOINT"))
    ap.add_argument("--model", default="procedural:1000:10:5:10")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--volume", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--num-train", type=int, default=1024)
    ap.add_argument("--num-test", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = SyntheticFaces(args.model, image_size=args.size, batch_size=16, num_train=args.num_train,
                          num_test=args.num_test, yaw_range=30.0, occluder_prob=0.0)  # fmt: skip
    test = [collate(data.dataset("test").__getitems__(list(range(i, min(i + 16, args.num_test)))))
            for i in range(0, args.num_test, 16)]  # fmt: skip
    t = time.perf_counter()
    data.dataset("train").__getitems__(list(range(args.num_train)))  # render (cached) once
    print(f"rendered {args.num_train} training faces in {time.perf_counter() - t:.1f} s")
    common = dict(morphable_model=args.model, image_size=args.size, volume_size=args.volume,
                  volume_depth=args.volume, hourglass={"features": 64, "depth": 2},
                  pmn={"channels": (16, 32, 32, 64, 64), "hidden": 128, "pool_size": 1})  # fmt: skip
    rows: dict[str, dict] = {}
    modes = [("PMN", "none", None), (f"ICP-{args.volume}", "icp", None),
             (f"ICP-{2 * args.volume}", "icp", 2 * args.volume), ("GT pose", "gt", None)]  # fmt: skip

    def measure(tag: str, method: MMFace) -> None:
        for name, mode, res in modes:
            rows[f"{tag} {name}"] = evaluate(method, test, mode, res)
            print(f"{tag} {name}: {rows[f'{tag} {name}']}", flush=True)

    fresh = MMFace(stage="joint", **common)
    measure("before", fresh)
    throughput = {}
    vmn = MMFace(stage="vmn", **common)
    throughput["vmn"] = train(vmn, data, args.steps[0], args.batch_size, args.lr, 1)
    pmn = MMFace(stage="pmn", **common)
    throughput["pmn"] = train(pmn, data, args.steps[1], args.batch_size, args.lr, 2)
    joint = MMFace(stage="joint", **common)
    joint.vmn.load_state_dict(vmn.vmn.state_dict())  # what vmn_checkpoint / pmn_checkpoint load
    joint.pmn.load_state_dict(pmn.pmn.state_dict())
    measure("stages", joint)
    throughput["joint"] = train(joint, data, args.steps[2], args.batch_size, args.lr * 0.1, 3)
    measure("after", joint)

    header = f"| {'model / pose':<22} | {'NME %':>7} | {'NME3D %':>7} | {'ms/img':>7} |"
    lines = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    for name, r in rows.items():
        lines.append(
            f"| {name:<22} | {100 * r['nme']:7.2f} | {100 * r['nme3d']:7.2f} | {r['ms_per_image']:7.1f} |"
        )
    print("\n" + "\n".join(lines))
    print("training images/s: " + ", ".join(f"{k} {v:.1f}" for k, v in throughput.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items() if k != "out"}
    result = {"config": config,
              "rows": rows, "train_images_per_s": throughput,
              "threads": torch.get_num_threads()}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
