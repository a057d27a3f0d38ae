"""One convention for user errors on every command: `<prog> <command>: error: <message naming the thing>`,
exit status 2, no traceback (the traceback only with --debug)."""

from __future__ import annotations

import numpy as np
import pytest
from _reliability import prepare_aflw, truncate
from PIL import Image

from facezoo.cli import main


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ": error: " in ln]  # (progress bars may precede it)
    assert "Traceback" not in err and len(lines) == 1 and err.rstrip().endswith(lines[0]), err
    return lines[0]


def test_prepare_missing_root(tmp_path, capsys):
    assert prepare_aflw(tmp_path / "nowhere", tmp_path / "out") == 2
    assert "prepare: error: --root (aflw2000) root" in _error_line(capsys)


def test_prepare_truncated_image(aflw_root, tmp_path, capsys):
    truncate(aflw_root / "image00002.jpg")
    assert prepare_aflw(aflw_root, tmp_path / "out") == 2
    assert f"{aflw_root / 'image00002.jpg'}: corrupt or truncated image" in _error_line(capsys)


@pytest.mark.parametrize("flag", ["--image-size", "--samples-per-shard", "--every"])
def test_prepare_non_positive_sizes(aflw_root, tmp_path, capsys, flag):
    args = ["prepare", "aflw2000", "--root", str(aflw_root), "--out", str(tmp_path / "o"), flag, "0"]
    assert main(args) == 2
    assert f"{flag}: expected a positive integer, got 0" in _error_line(capsys)


def test_prepare_image_over_the_pixel_limit(aflw_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 96 * 96 // 3)
    assert prepare_aflw(aflw_root, tmp_path / "out") == 2
    assert "image00000.jpg: image too large" in _error_line(capsys)


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_aflw(tmp_path / "nowhere", tmp_path / "out", "--debug")


def test_skin_fit_missing_images_folder(tmp_path, capsys):
    args = [
        "skin",
        "fit",
        "--images",
        str(tmp_path / "no"),
        "--masks",
        str(tmp_path),
        "-o",
        str(tmp_path / "s"),
    ]
    assert main(args) == 2
    assert "skin: error: --images" in _error_line(capsys)


def test_skin_apply_truncated_image(tmp_path, capsys):
    path = tmp_path / "face.jpg"
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(path)
    truncate(path, 200)
    assert main(["skin", "apply", str(path), "-o", str(tmp_path / "out")]) == 2
    assert f"{path}: corrupt or truncated image" in _error_line(capsys)


def test_skin_fit_truncated_mask(tmp_path, capsys):
    for folder in ("img", "mask"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path / folder / "a.png")
    truncate(tmp_path / "mask" / "a.png", 60)
    args = [
        "skin",
        "fit",
        "--images",
        str(tmp_path / "img"),
        "--masks",
        str(tmp_path / "mask"),
        "-o",
        str(tmp_path / "s.npz"),
    ]
    assert main(args) == 2
    assert "a.png: corrupt or truncated image" in _error_line(capsys)


def test_model_command_keeps_the_convention(tmp_path, capsys):
    assert main(["model", "info", str(tmp_path / "absent.h5")]) == 2
    assert "absent.h5: no such morphable-model file" in _error_line(capsys)


def test_lightning_command_user_error_is_one_line(tmp_path, capsys):
    rc = main(
        [
            "test",
            "--model=facezoo.methods.Deep3DFace",
            "--model.morphable_model=procedural:600",
            "--model.backbone=resnet18",
            "--model.image_size=48",
            "--data=facezoo.datamodules.AFLW2000",
            f"--data.root={tmp_path / 'no_aflw'}",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    err = capsys.readouterr().err  # (Lightning's log handler may report a closed pytest stream: not ours)
    assert rc == 2 and "test: error: AFLW2000-3D root" in err and "FileNotFoundError" not in err


def test_bad_sample_in_a_dataloader_worker_is_one_line(aflw_root, tmp_path, capsys):
    from _reliability import TINY_METHOD

    truncate(aflw_root / "image00001.jpg")
    rc = main(
        [
            "test",
            *TINY_METHOD,
            "--data=facezoo.datamodules.AFLW2000",
            f"--data.root={aflw_root}",
            "--data.image_size=48",
            "--data.num_workers=1",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ": error: " in ln)
    assert rc == 2 and line.endswith(
        f"test: error: {aflw_root / 'image00001.jpg'}: corrupt or truncated image (Truncated File Read)"
    )
    assert "Original Traceback" not in err


@pytest.mark.parametrize(("flag", "value"), [("--size", "0"), ("--sigma", "nan")])
def test_model_preview_bad_sizes(tmp_path, capsys, flag, value):
    assert main(["model", "preview", "procedural", "-o", str(tmp_path / "p.png"), flag, value]) == 2
    assert f"{flag}: expected" in _error_line(capsys)
    assert not (tmp_path / "p.png").exists()
