"""Fit Deep3DFace on synthetic faces of the procedural model, then reconstruct held-out faces.

Runs on CPU in a few minutes: the configs are zoo/deep3d.yaml + zoo/data/synthetic.yaml + the CPU overlay
zoo/demo/deep3d-cpu.yaml (override any value with --set key=value, LightningCLI syntax, e.g.
--set trainer.max_steps=100). Prints the held-out vertex error (mm, after similarity alignment) and landmark
NME before and after the fit, and writes <output>/demo_grid.png (input | reconstruction overlay | shaded
mesh), <output>/metrics.json, the predicted meshes under <output>/predictions/ and the fitted weights as
<output>/deep3d_demo.ckpt (usable with `facezoo predict --ckpt_path`) with its model card
<output>/deep3d_demo.card.json. `facezoo zoo build deep3d.synthetic-demo` runs the same and checks the metrics
against the checkpoint index.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HELP = "fit Deep3DFace on synthetic faces (CPU, minutes) and show reconstructions of held-out faces"
CONFIGS = ("zoo/deep3d.yaml", "zoo/data/synthetic.yaml", "zoo/demo/deep3d-cpu.yaml")


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument(
        "--config", action="append", default=None, help="config files (default: the demo's three)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--num-images", type=int, default=8, help="faces in the PNG grid")


def evaluate(method, loader) -> dict[str, float]:
    """Mean held-out vertex error (mm, aligned) and landmark NME (fraction) of ``method`` over ``loader``."""
    import torch

    from facezoo.methods.base import vertex_error
    from facezoo.metrics import landmark_nme

    was_training = method.training
    method.eval()
    errs, nmes = [], []
    with torch.no_grad():
        for batch in loader:
            rec = method.reconstruct(batch)
            gt = batch["params"]["vertices"].reshape(rec.vertices.shape)
            errs.append(vertex_error(rec.vertices, gt, method._eval_mask(gt.shape[1])))
            nmes.append(landmark_nme(rec.landmarks2d, batch["landmarks68"].reshape(rec.landmarks2d.shape)))
    method.train(was_training)
    return {"vertex_error_mm": float(torch.cat(errs).mean()), "nme": float(torch.cat(nmes).mean())}


def execute(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("WANDB_MODE", "offline")
    import torch
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    import facezoo.callbacks  # noqa: F401
    import facezoo.datamodules  # noqa: F401
    import facezoo.methods  # noqa: F401
    from facezoo.callbacks import ReconstructionWriter
    from facezoo.callbacks.panels import grid, panels, save_png
    from facezoo.cli import hidden_argv
    from facezoo.commands._progress import LogProgress, interactive

    start = time.time()
    from facezoo.hub.configs import resolve_config

    out = Path(args.output)
    # ./zoo/X.yaml when the current folder has one (the checkout), else the packaged zoo's copy
    configs = [resolve_config(c) for c in (args.config or CONFIGS)]
    cli_args = [a for c in configs for a in ("--config", c)]
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"facezoo demo: --set expects KEY=VALUE, got {item!r}")
            return 2
        cli_args.append(f"--{key}={value}")
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(out)}}
    defaults = {"logger": logger, "enable_progress_bar": True, "default_root_dir": str(out)}
    if not interactive():  # `make demo > log`: a progress line every 30 s instead of one per step
        defaults["callbacks"] = [LogProgress(30.0)]
    with hidden_argv():  # the arguments are ours, not the command line's (no "args parameter" warning)
        cli = LightningCLI(
            LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
            run=False, trainer_defaults=defaults, save_config_callback=None, args=cli_args,
        )  # fmt: skip
    method, dm, trainer = cli.model, cli.datamodule, cli.trainer
    held_out = dm.test_dataloader()
    print(f"facezoo demo: {type(method).__name__} on {type(dm).__name__} ({method.morphable.name}), "
          f"{dm.image_size}px, {trainer.max_steps} steps")  # fmt: skip

    before = evaluate(method, held_out)
    print(
        f"  before fit: vertex error {before['vertex_error_mm']:.2f} mm, "
        f"landmark NME {100 * before['nme']:.2f}%"
    )
    t_fit = time.time()
    trainer.fit(method, dm)
    fit_s = time.time() - t_fit
    ckpt = out / "deep3d_demo.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)  # the full state; explicit, else Lightning logs a line
    after = evaluate(method, held_out)

    batch = next(iter(held_out))
    n = min(args.num_images, batch["image"].shape[0])
    method.eval()  # the fitted network as evaluated (BatchNorm's running statistics, any number of faces)
    with torch.no_grad():
        rec = method.reconstruct({"image": batch["image"][:n]}, render=True)
        picture = grid(panels(method, rec, batch["image"][:n], batch["landmarks68"][:n]))
    if picture.shape[-2] < 256 * n:  # small crops: enlarge (nearest) so the grid is readable
        factor = max(1, 256 // batch["image"].shape[-1])
        picture = torch.nn.functional.interpolate(picture[None], scale_factor=factor, mode="nearest")[0]
    grid_path = save_png(picture, out / "demo_grid.png")
    writer = ReconstructionWriter(str(out / "predictions"))
    subset = {k: batch[k][:n] for k in ("image", "landmarks68", "index")}
    writer.write_on_batch_end(trainer, method, rec, None, subset, 0, 0)

    ratio = after["vertex_error_mm"] / max(before["vertex_error_mm"], 1e-12)
    print("\n  held-out faces        before fit   after fit")
    print(f"  vertex error (mm)     {before['vertex_error_mm']:10.2f}   {after['vertex_error_mm']:9.2f}")
    print(f"  landmark NME (%)      {100 * before['nme']:10.2f}   {100 * after['nme']:9.2f}")
    print(f"  vertex error ratio after/before: {ratio:.2f} (the demo aims at <= 0.5)")
    print(
        f"  fit {fit_s:.0f} s, total {time.time() - start:.0f} s; grid: {grid_path}; "
        f"meshes: {out / 'predictions'}; checkpoint: {ckpt}"
    )
    metrics = {"before": before, "after": after, "ratio": ratio, "fit_seconds": fit_s,
               "total_seconds": time.time() - start, "steps": trainer.global_step}  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    from facezoo.hub.card import make_card, write_card

    data = {"class": f"{type(dm).__module__}.{type(dm).__name__}", "hyper_parameters": dict(dm.hparams)}
    card = make_card(ckpt, method=f"{type(method).__module__}.{type(method).__name__}",
                     hyper_parameters=dict(method.hparams), data=data, config=configs, metrics=after,
                     global_step=trainer.global_step, extra={"overrides": list(args.set)})  # fmt: skip
    write_card(ckpt, card)
    return 0
