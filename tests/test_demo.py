"""The Deep3DFace configs through the real CLI, and the `facezoo demo` command on a tiny budget."""

import json

import pytest

from facezoo.cli import main

CONFIGS = ("zoo/deep3d.yaml", "zoo/data/synthetic.yaml", "zoo/demo/deep3d-cpu.yaml")
TINY = [arg for config in CONFIGS for arg in ("--config", config)]
SMALL = [
    "--model.init_args.morphable_model=procedural:600", "--data.init_args.morphable_model=procedural:600",
    "--model.init_args.image_size=40", "--data.init_args.image_size=40", "--data.init_args.batch_size=2",
    "--model.init_args.backbone_kwargs={width: 8}", "--trainer.logger=false",
]  # fmt: skip


def test_fast_dev_run_of_the_zoo_configs():
    assert main(["fit", *TINY, "--trainer.fast_dev_run", "2", *SMALL]) == 0


def test_predict_subcommand_writes_files(tmp_path):
    out = tmp_path / "pred"
    args = [
        "predict", *TINY, *SMALL, "--data.init_args.num_predict=2",
        "--trainer.callbacks+=facezoo.callbacks.ReconstructionWriter",
        f"--trainer.callbacks.output_dir={out}",
    ]  # fmt: skip
    assert main(args) == 0
    assert sorted(p.name for p in out.glob("*.obj")) == ["000000.obj", "000001.obj"]
    assert len(list(out.glob("*.png"))) == 2


def test_demo_command_fits_and_writes_its_outputs(tmp_path, capsys):
    """A 20-step demo on a tiny problem: metrics.json holds the documented fields with consistent values, the
    fit lowers its training loss, and the grid, meshes and checkpoint are written and readable.

    The held-out figures are not required to improve: 20 steps from the mean face do not reliably beat it (the
    vertex error halves only with the demo's full budget, zoo/demo/deep3d-cpu.yaml)."""
    import csv

    import torch
    from PIL import Image

    out = tmp_path / "demo"
    args = ["demo", "--output", str(out), "--num-images", "2", "--set", "trainer.max_steps=20"]
    for item in (*SMALL[:2], "--model.init_args.backbone_kwargs={width: 8}"):
        args += ["--set", item[2:]]
    for key, value in (("image_size", 32), ("batch_size", 8), ("num_train", 64), ("num_test", 8)):
        args += ["--set", f"data.init_args.{key}={value}"]
    args += ["--set", "model.init_args.image_size=32"]
    args += ["--set", "trainer.log_every_n_steps=1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "vertex error (mm)" in printed and "landmark NME" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"before", "after", "ratio", "fit_seconds", "total_seconds", "steps"}
    assert metrics["steps"] == 20
    for when in ("before", "after"):
        assert set(metrics[when]) == {"vertex_error_mm", "nme"}
        assert 0 < metrics[when]["vertex_error_mm"] < 100 and 0 < metrics[when]["nme"] < 1
    assert metrics["after"] != metrics["before"]  # the fitted weights were evaluated
    ratio = metrics["after"]["vertex_error_mm"] / metrics["before"]["vertex_error_mm"]
    assert metrics["ratio"] == pytest.approx(ratio)
    assert 0 < metrics["fit_seconds"] <= metrics["total_seconds"]
    # the printed table shows the same numbers as the JSON
    before, after = metrics["before"]["vertex_error_mm"], metrics["after"]["vertex_error_mm"]
    assert f"{before:10.2f}   {after:9.2f}" in printed
    # the fit lowers the training loss (last 5 steps against the first 5; 0.76 measured)
    with open(out / "lightning_logs" / "version_0" / "metrics.csv") as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert len(losses) == 20
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5])
    grid = Image.open(out / "demo_grid.png")
    assert grid.size[0] > 0 and grid.size[1] >= 2 * 32  # two faces, enlarged
    meshes = sorted((out / "predictions").glob("*.obj"))
    assert len(meshes) == 2
    vertex_lines = [line for line in meshes[0].read_text().splitlines() if line.startswith("v ")]
    assert len(vertex_lines) == 600  # procedural:600
    ckpt = torch.load(out / "deep3d_demo.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 20 and ckpt["state_dict"]
