import pytest
import torch
from facezoo.datamodules import AFLW2000, W300LP

from facezoo.cli import main


def test_prepare_shards_and_read_back(w300lp_root, aflw_root, tmp_path, capsys):
    out = tmp_path / "shards"
    assert (
        main(
            [
                "prepare",
                "w300lp",
                "--root",
                str(w300lp_root),
                "--out",
                str(out),
                "--image-size",
                "32",
                "--samples-per-shard",
                "4",
            ]
        )
        == 0
    )
    raw = W300LP(root=str(w300lp_root), image_size=32, num_workers=0, max_shift=0.0).dataset("train")
    shard = W300LP(shards=str(out), num_workers=0).dataset("train")
    assert len(shard) == len(raw) == 10
    a, b = raw[3], shard[3]
    torch.testing.assert_close(b["image"], a["image"], atol=1 / 255, rtol=0)
    torch.testing.assert_close(b["landmarks68"], a["landmarks68"])
    torch.testing.assert_close(b["params"]["pose"], a["params"]["pose"])
    assert b["identity"] == a["identity"] and b["path"] == a["path"]
    dm = W300LP(shards=str(out), batch_size=4, num_workers=2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert (
        main(
            [
                "prepare",
                "aflw2000",
                "--root",
                str(aflw_root),
                "--out",
                str(tmp_path / "a"),
                "--image-size",
                "32",
            ]
        )
        == 0
    )
    assert len(AFLW2000(shards=str(tmp_path / "a")).dataset("test")) == 3


def test_prepare_micc_without_decoder(tmp_path):
    pytest.importorskip("facezoo.commands.prepare")
    try:
        import av  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit, match="pip install av"):
            main(["prepare", "micc", "--root", str(tmp_path), "--out", str(tmp_path / "f")])
