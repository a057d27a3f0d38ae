"""The Deep3DFace configs through the real CLI, and the `facezoo demo` command on a tiny budget."""

import json

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


def test_demo_command_runs_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--output", str(out), "--num-images", "2", "--set", "trainer.max_steps=2"]
    for item in SMALL[:-1]:
        args += ["--set", item[2:]]
    args += ["--set", "data.init_args.num_train=4", "--set", "data.init_args.num_test=2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "vertex error (mm)" in printed and "landmark NME" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["before"]["vertex_error_mm"] > 0
    assert (out / "demo_grid.png").is_file() and len(list((out / "predictions").glob("*.obj"))) == 2
