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


def test_prepare_micc_without_decoder_names_the_package(tmp_path, monkeypatch, capsys):
    """Without PyAV (simulated: ``import av`` fails) the command says which package to install (one
    ``error:`` line, exit status 2)."""
    import sys

    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    assert main(["prepare", "micc", "--root", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "pip install av" in err


def _write_video(path, colours, size=32):
    """A tiny lossless video (FFV1) whose frame i is the solid colour ``colours[i]``."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv444p"
        for c in colours:
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), c, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_prepare_micc_extracts_every_nth_frame(tmp_path, capsys):
    """MICC layout subject_NN/Video/<type>/<video>: frames land in out/subject_NN/<type>/frameNNNNN.jpg,
    every 2nd frame kept, with the decoded colours of those frames."""
    pytest.importorskip("av")
    import numpy as np
    from PIL import Image

    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200)]
    _write_video(tmp_path / "MICC" / "subject_01" / "Video" / "Indoor-Cooperative" / "v.avi", colours)
    _write_video(tmp_path / "MICC" / "subject_02" / "Video" / "Outdoor" / "v.avi", colours[:2])
    out = tmp_path / "frames"
    assert main(["prepare", "micc", "--root", str(tmp_path / "MICC"), "--out", str(out), "--every", "2"]) == 0
    assert (
        "wrote 4 frames" in capsys.readouterr().out
    )  # frames 0, 2, 4 of the first video, frame 0 of the second
    first = sorted(p.name for p in (out / "subject_01" / "Indoor-Cooperative").iterdir())
    assert first == ["frame00000.jpg", "frame00002.jpg", "frame00004.jpg"]
    assert [p.name for p in (out / "subject_02" / "Outdoor").iterdir()] == ["frame00000.jpg"]
    for name, colour in zip(first, colours[::2]):
        pixels = np.asarray(Image.open(out / "subject_01" / "Indoor-Cooperative" / name), dtype=float)
        assert np.abs(pixels.mean((0, 1)) - colour).max() < 8  # JPEG + YUV round trip
    assert main(["prepare", "micc", "--root", str(tmp_path / "frames"), "--out", str(tmp_path / "g")]) == 2
    assert "no videos" in capsys.readouterr().err
