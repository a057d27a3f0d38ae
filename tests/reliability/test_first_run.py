"""The first run explains itself: a missing morphable model gives a few lines (what is missing, the convert
command and its sources, the built-in overlay), no jsonargparse dump; the logger honours
--trainer.default_root_dir; a non-interactive log gets a progress line every N seconds, not one per step;
the CLI calls LightningCLI without its "args parameter" warning; `facezoo test` prints the logged units."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

from _reliability import TINY_METHOD, aflw_test_args

from facezoo.cli import main

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC = [
    "--data=facezoo.datamodules.synthetic.SyntheticFaces",
    "--data.morphable_model=procedural:600",
    "--data.image_size=48",
    "--data.num_train=8",
    "--data.num_val=2",
    "--data.batch_size=2",
]


def test_first_run_without_the_model_file_explains_itself(tmp_path):
    exe = Path(sys.executable).parent / "lightning"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "facezoo"]
    run = subprocess.run(
        [*command, "fit", "--config", str(REPO / "zoo" / "deep3d.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    err = run.stderr
    assert run.returncode == 2, err
    assert "Traceback" not in err and "Does not validate" not in err and "Namespace(" not in err
    assert "args parameter is intended" not in err + run.stdout  # LightningCLI called as it expects
    message = err[err.index("error:") :].strip().splitlines()
    assert len(message) <= 5, message
    text = "\n".join(message)
    assert "morphable_model: no file at 'models/bfm09_deep3d.h5'" in text
    assert "facezoo model convert <SRC> --format bfm-deep3d -o models/bfm09_deep3d.h5" in text
    assert "01_MorphableModel.mat" in text and "--config zoo/data/synthetic.yaml" in text
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.ckpt"))


def test_default_root_dir_moves_the_default_logger(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "elsewhere"
    assert (
        main(
            [
                "fit",
                *TINY_METHOD,
                *SYNTHETIC,
                "--trainer.max_steps=1",
                "--trainer.limit_val_batches=0",
                f"--trainer.default_root_dir={root}",
            ]
        )
        == 0
    )
    assert list(root.rglob("lightning_logs/version_0/hparams.yaml")) and list(root.rglob("*.ckpt"))
    assert not (tmp_path / "runs").exists()  # nothing left in the default place


def test_non_interactive_log_is_rate_limited(tmp_path, capfd):
    assert (
        main(
            [
                "fit",
                *TINY_METHOD,
                *SYNTHETIC,
                "--trainer.max_steps=12",
                "--trainer.limit_val_batches=0",
                "--trainer.logger=false",
                "--trainer.enable_checkpointing=false",
                f"--trainer.default_root_dir={tmp_path}",
            ]
        )
        == 0
    )
    captured = capfd.readouterr()
    log = captured.out + captured.err
    assert "\r" not in log  # no tqdm redraws
    progress = [ln for ln in log.splitlines() if re.search(r"\bstep\b|it/s", ln)]
    assert 1 <= len(progress) <= 2, progress  # 12 steps in seconds: the final line (+ at most one)
    assert "fit done: step 12" in log


def test_log_progress_interval():
    import io

    from facezoo.commands._progress import LogProgress

    class _Trainer:
        is_global_zero, current_epoch, global_step, max_steps = True, 0, 0, 100
        progress_bar_metrics: dict = {}

    stream = io.StringIO()
    bar = LogProgress(interval=3600.0, stream=stream)
    bar.get_metrics = lambda trainer, module: {"loss": 0.5}
    bar._trainer = _Trainer()
    bar.on_train_start(_Trainer(), None)
    for step in range(100):
        _Trainer.global_step = step + 1
        bar.on_train_batch_end(_Trainer(), None, None, None, step)
    bar.on_train_end(_Trainer(), None)
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[-1]]  # only the final line
    assert stream.getvalue().startswith("fit done: step 100") and "loss=0.5" in stream.getvalue()


def test_no_args_parameter_warning_from_python(tmp_path, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            main(["fit", *TINY_METHOD, *SYNTHETIC, "--print_config"])
        except SystemExit as exit_info:
            assert exit_info.code == 0
    assert not [w for w in caught if "args parameter is intended" in str(w.message)]


def test_test_table_prints_the_logged_values_and_their_unit(aflw_root, tmp_path, capsys):
    main(aflw_test_args(aflw_root, tmp_path))
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "test_results.json").read_text())["metrics"]
    assert "NME: fraction" in out and "x100 = %" in out
    header, _, row = [ln for ln in out.splitlines() if ln.startswith("|")][:3]
    cells = dict(zip([c.strip() for c in header.split("|")[1:-1]], [c.strip() for c in row.split("|")[1:-1]]))
    for key in ("nme", "nme_0_30", "nme_balanced"):
        assert float(cells[key]) == round(metrics[key], 4), key  # the table's number is the logged one
