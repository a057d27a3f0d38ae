"""Checkpoints and weights: edited in place (stale zip CRC), truncated, text, bare weights or another
module's checkpoint given as --ckpt_path end in one `error:` line naming the file (exit 2), never in
PytorchStreamReader / KeyError / state-dict dumps; a good checkpoint still tests."""

from __future__ import annotations

import struct
import zipfile

import pytest
import torch
from _reliability import TINY_METHOD, aflw_test_args

from facezoo.cli import main


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A checkpoint written by `facezoo fit` (one step on synthetic faces), as users get them."""
    root = tmp_path_factory.mktemp("fit")
    assert (
        main(
            [
                "fit",
                *TINY_METHOD,
                "--data=facezoo.datamodules.synthetic.SyntheticFaces",
                "--data.morphable_model=procedural:600",
                "--data.image_size=48",
                "--data.num_train=2",
                "--data.num_val=2",
                "--data.batch_size=2",
                "--trainer.max_steps=1",
                "--trainer.limit_val_batches=0",
                "--trainer.logger=false",
                f"--trainer.default_root_dir={root}",
            ]
        )
        == 0
    )
    (path,) = (root / "checkpoints").glob("*.ckpt")
    return path


def _edit_first_float(src, dst, value=5000.0):
    """Overwrite the first float of the largest stored tensor in place (zip CRC left stale)."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start : start + 4] = struct.pack("<f", value)
    dst.write_bytes(bytes(data))


def _run_test(aflw_root, tmp_path, ckpt_path, capsys):
    rc = main(aflw_test_args(aflw_root, tmp_path, f"--ckpt_path={ckpt_path}"))
    captured = capsys.readouterr()
    return rc, captured.err


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    for noise in ("PytorchStreamReader", "KeyError", "Missing key(s) in state_dict", "Unexpected key(s)"):
        assert noise not in err, noise
    return lines[0]


def test_torch_load_alone_does_not_see_an_in_place_edit(ckpt, tmp_path):
    """Why the CRC check exists: torch.load returns the edited weights without a word."""
    from facezoo.nn.weights import load_torch_file

    _edit_first_float(ckpt, tmp_path / "edited.ckpt")
    edited = torch.load(tmp_path / "edited.ckpt", weights_only=True)["state_dict"]
    good = torch.load(ckpt, weights_only=True)["state_dict"]
    assert any((edited[k] != good[k]).any() for k in good if good[k].is_floating_point())
    with pytest.raises(ValueError, match=r"edited\.ckpt is corrupt or was edited in place: CRC-32 mismatch"):
        load_torch_file(tmp_path / "edited.ckpt")


def test_ckpt_edited_in_place(ckpt, aflw_root, tmp_path, capsys):
    _edit_first_float(ckpt, tmp_path / "edited.ckpt")
    rc, err = _run_test(aflw_root, tmp_path, tmp_path / "edited.ckpt", capsys)
    assert rc == 2 and "edited.ckpt is corrupt or was edited in place" in _one_error_line(err)


def test_ckpt_truncated(ckpt, aflw_root, tmp_path, capsys):
    (tmp_path / "cut.ckpt").write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    rc, err = _run_test(aflw_root, tmp_path, tmp_path / "cut.ckpt", capsys)
    assert rc == 2 and "cut.ckpt" in _one_error_line(err)


def test_ckpt_text_file(aflw_root, tmp_path, capsys):
    (tmp_path / "notes.ckpt").write_text("these are not weights\n")
    rc, err = _run_test(aflw_root, tmp_path, tmp_path / "notes.ckpt", capsys)
    assert rc == 2 and "notes.ckpt is not a PyTorch checkpoint" in _one_error_line(err)


def test_ckpt_missing(aflw_root, tmp_path, capsys):
    rc, err = _run_test(aflw_root, tmp_path, tmp_path / "absent.ckpt", capsys)
    assert rc == 2 and "--ckpt_path: no file at" in _one_error_line(err)


def test_ckpt_bare_weights(ckpt, aflw_root, tmp_path, capsys):
    torch.save(torch.load(ckpt, weights_only=True)["state_dict"], tmp_path / "weights.pth")
    rc, err = _run_test(aflw_root, tmp_path, tmp_path / "weights.pth", capsys)
    assert rc == 2 and "weights.pth is not a Lightning checkpoint" in _one_error_line(err)


def test_ckpt_of_another_module(aflw_root, tmp_path, capsys):
    from lightning.pytorch import LightningModule, Trainer

    class Other(LightningModule):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(3, 2)

    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(Other())
    trainer.save_checkpoint(tmp_path / "other.ckpt")
    rc, err = _run_test(aflw_root, tmp_path, tmp_path / "other.ckpt", capsys)
    line = _one_error_line(err)
    assert rc == 2 and "other.ckpt does not fit Deep3DFace" in line
    assert "unexpected keys (2): head.bias, head.weight" in line and "missing keys" in line


def test_good_ckpt_still_tests(ckpt, aflw_root, tmp_path, capsys):
    rc, err = _run_test(aflw_root, tmp_path, ckpt, capsys)
    assert rc == 0 and (tmp_path / "test_results.json").is_file()


def test_weights_file_edited_in_place(tmp_path):
    import facezoo.nn as fnn

    net = fnn.build("resnet18", width=8, num_outputs=3)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    _edit_first_float(tmp_path / "w.pth", tmp_path / "w_edited.pth")
    with pytest.raises(ValueError, match=r"w_edited\.pth is corrupt or was edited in place"):
        fnn.load_backbone_weights(net, tmp_path / "w_edited.pth")
    fnn.load_backbone_weights(net, tmp_path / "w.pth")  # the original loads
