"""Deep3DFace speed: R-Net training throughput (images/s) and SyntheticFaces rendering (samples/s).

    python benchmarks/deep3d.py                 # throughput table, JSON in benchmarks/results/deep3d.json
    python benchmarks/deep3d.py --cnet          # also: C-Net aggregation vs plain averaging (a few minutes)
    python benchmarks/deep3d.py --cnet --skip-throughput --rnet-checkpoint runs/demo/deep3d_demo.ckpt

The --cnet experiment fits an R-Net briefly on single synthetic images (or loads one, with its model and face
ranges, from --rnet-checkpoint), then a C-Net (R-Net frozen) on image
sets of one identity (5 images, 30% of them occluded), and reports the held-out vertex error (mm, aligned) of
the aggregated shapes with C-Net confidences (Eq. 7) and with plain averaging.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from facezoo.datamodules.synthetic import SyntheticFaces

from facezoo.methods import Deep3DFace
from facezoo.methods.base import vertex_error
from facezoo.methods.stages import read_checkpoint
from facezoo.methods.views import flatten_views

OUT = Path(__file__).resolve().parent / "results" / "deep3d.json"
#: SyntheticFaces arguments that shape the face distribution (taken from an R-Net checkpoint's datamodule)
FACE_RANGES = ("yaw_range", "pitch_range", "roll_range", "id_scale", "exp_scale", "tex_scale", "light_scale",
               "shift_range", "depth_range", "background")  # fmt: skip


def train_throughput(method: Deep3DFace, batch: dict, steps: int) -> float:
    opt = method.configure_optimizers()
    method.train()

    def step() -> None:
        opt.zero_grad()
        method.training_losses(batch)["total"].backward()
        opt.step()

    step()  # warm-up (kernel compilation, allocator)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch["image"].shape[0] / (time.perf_counter() - t)


def data_throughput(dm: SyntheticFaces, n: int) -> float:
    ds = dm.dataset("train")
    ds.__getitems__([0])  # build model and renderer
    t = time.perf_counter()
    for start in range(1, n + 1, dm.batch_size):
        ds.__getitems__(list(range(start, min(start + dm.batch_size, n + 1))))
    return n / (time.perf_counter() - t)


def set_error(method: Deep3DFace, loader, aggregation: str) -> float:
    was_training = method.training
    method.eval()
    method.set_aggregation = aggregation
    errs = []
    with torch.no_grad():
        for batch in loader:
            rec = method.reconstruct(batch)  # one row per image (facezoo.methods.views)
            gt = flatten_views(batch)["params"]["vertices"]
            errs.append(vertex_error(rec.vertices, gt, method._eval_mask(gt.shape[1])))
    method.train(was_training)  # Lightning keeps a module's mode: a C-Net left in eval would train frozen BN
    return float(torch.cat(errs).mean())


def cnet_experiment(
    steps_rnet: int, steps_cnet: int, size: int, tmp: Path, spec: str, rnet_ckpt: str | None, lr: float
) -> dict:
    from lightning.pytorch import Trainer

    common = dict(morphable_model=spec, backbone="resnet18", backbone_kwargs={"width": 32}, image_size=size)
    kw = dict(enable_progress_bar=False, logger=False, enable_checkpointing=False, limit_val_batches=0)
    data: dict = {}
    if rnet_ckpt:  # e.g. `facezoo demo`'s checkpoint: its model and face distribution come with it
        rnet = Deep3DFace.load_from_checkpoint(rnet_ckpt, map_location="cpu", weights_only=True)
        common = {k: rnet.hparams[k] for k in (*common, "output_scale")}
        spec, size = common["morphable_model"], common["image_size"]
        saved = read_checkpoint(rnet_ckpt, "--rnet-checkpoint")
        data = {k: v for k, v in saved.get("datamodule_hyper_parameters", {}).items() if k in FACE_RANGES}
        ckpt = Path(rnet_ckpt)
    else:
        rnet = Deep3DFace(**common, w_lan=0.05, w_coef=0.01, lr=1e-3)
        single = SyntheticFaces(spec, image_size=size, batch_size=16, num_train=1024, occluder_prob=0.3)
        Trainer(max_steps=steps_rnet, **kw).fit(rnet, single)
        ckpt = tmp / "rnet.ckpt"
        torch.save({"state_dict": rnet.state_dict()}, ckpt)
    sets = dict(data, image_size=size, set_size=5, set_mode="identity", occluder_prob=0.3)
    train_sets = SyntheticFaces(spec, batch_size=4, num_train=256, **sets)
    test_sets = SyntheticFaces(spec, batch_size=4, num_test=32, seed=7, **sets)
    # Eq. 8 weights scaled like the R-Net's landmark weight (x31) so the short fit sees the landmark signal
    cnet = Deep3DFace(**common, stage="cnet", rnet_checkpoint=str(ckpt), lr=lr, cnet_w_lan=0.05)
    before = set_error(cnet, test_sets.test_dataloader(), "confidence")
    cnet.set_aggregation = "confidence"
    Trainer(max_steps=steps_cnet, **kw).fit(cnet, train_sets)
    return {
        "rnet": str(rnet_ckpt) if rnet_ckpt else f"{steps_rnet} steps",
        "cnet_steps": steps_cnet,
        "cnet_lr": lr,
        "image_size": size,
        "vertex_error_mm_mean_aggregation": set_error(cnet, test_sets.test_dataloader(), "mean"),
        "vertex_error_mm_cnet_aggregation": set_error(cnet, test_sets.test_dataloader(), "confidence"),
        "vertex_error_mm_cnet_at_init": before,
        "vertex_error_mm_single_image_rnet": set_error(
            rnet,
            SyntheticFaces(
                spec, batch_size=8, num_test=32, seed=7, image_size=size, **data
            ).test_dataloader(),
            "mean",
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--cnet", action="store_true", help="run the C-Net vs averaging experiment")
    parser.add_argument("--cnet-steps", type=int, nargs=2, default=(800, 300), metavar=("RNET", "CNET"))
    parser.add_argument("--model", default="procedural:1000:16:8:16", help="morphable model spec (--cnet)")
    parser.add_argument("--rnet-checkpoint", default=None, help="skip the R-Net fit (--cnet)")
    parser.add_argument("--cnet-lr", type=float, default=2e-4, help="C-Net Adam learning rate (paper: 2e-5)")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    configs = (
        []
        if args.skip_throughput
        else [(64, "resnet18", {"width": 32}, 1000, 16), (224, "resnet50", {}, 5000, 5)]
    )
    for size, backbone, kwargs, n_vert, batch_size in configs:
        spec = f"procedural:{n_vert}"
        dm = SyntheticFaces(spec, image_size=size, batch_size=batch_size, num_train=64)
        samples_s = data_throughput(dm, 32)
        batch = next(iter(dm.train_dataloader()))
        method = Deep3DFace(spec, backbone=backbone, backbone_kwargs=kwargs, image_size=size)
        img_s = train_throughput(method, batch, args.steps)
        row = {"image_size": size, "backbone": backbone, "vertices": dm.model.n_vertices, "batch": batch_size}
        rows.append({**row, "train_img_per_s": img_s, "data_samples_per_s": samples_s})
    print(
        f"{'size':>5} {'backbone':>9} {'vertices':>8} {'batch':>5} {'train img/s':>12} {'data samples/s':>15}"
    )
    for r in rows:
        print(f"{r['image_size']:>5} {r['backbone']:>9} {r['vertices']:>8} {r['batch']:>5} "
              f"{r['train_img_per_s']:>12.1f} {r['data_samples_per_s']:>15.1f}")  # fmt: skip
    # merge into earlier results so that a --skip-throughput or a throughput-only run keeps the other part
    result = json.loads(OUT.read_text()) if OUT.is_file() else {}
    result.update({"device": "cpu", "threads": torch.get_num_threads()})
    if rows:
        result["throughput"] = rows
    if args.cnet:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            result["cnet"] = cnet_experiment(
                *args.cnet_steps, size=64, tmp=Path(tmp), spec=args.model, rnet_ckpt=args.rnet_checkpoint,
                lr=args.cnet_lr,
            )  # fmt: skip
        print(json.dumps(result["cnet"], indent=2))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
