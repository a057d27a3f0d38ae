"""load_pretrained: by local path, URL and index name; strict keys, eval mode, morphable model rebuilt."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml

import facezoo
from facezoo.hub.download import file_sha256
from facezoo.hub.index import built_path


def _same_outputs(a, b):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ra, rb = a.reconstruct({"image": x}), b.reconstruct({"image": x})
    return torch.equal(ra.vertices, rb.vertices) and torch.equal(ra.landmarks2d, rb.landmarks2d)


def test_local_path_gives_the_saved_module_in_eval_mode(tiny_checkpoint):
    path, saved = tiny_checkpoint
    model = facezoo.load_pretrained(path)
    assert type(model).__name__ == "Deep3DFace" and not model.training
    assert model.morphable.n_vertices == 600 and model.morphable.n_id == 4  # rebuilt from the spec
    for key, value in saved.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert _same_outputs(model, saved)


def test_training_only_state_is_not_needed(tiny_checkpoint, tmp_path):
    path, saved = tiny_checkpoint
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["backbone_weights"] = "/nowhere/resnet.pth"  # the trainer's machine's file
    ckpt["hyper_parameters"]["skin_classifier"] = "/nowhere/skin.npz"
    torch.save(ckpt, tmp_path / "moved.ckpt")
    assert _same_outputs(facezoo.load_pretrained(tmp_path / "moved.ckpt"), saved)


def test_strict_keys_and_code_free_loading(tiny_checkpoint, tmp_path):
    path, _ = tiny_checkpoint
    ckpt = torch.load(path, weights_only=True)
    del ckpt["state_dict"]["rnet.fc.bias"]
    ckpt["state_dict"]["rnet.extra"] = torch.zeros(1)
    torch.save(ckpt, tmp_path / "bad.ckpt")
    with pytest.raises(
        ValueError, match=r"missing keys \(1\): rnet.fc.bias.*unexpected keys \(1\): rnet.extra"
    ):
        facezoo.load_pretrained(tmp_path / "bad.ckpt")
    torch.save({"net_recon": {"fc.weight": torch.zeros(1)}}, tmp_path / "epoch_20.pth")
    with pytest.raises(ValueError, match="zoo import deep3d-official"):
        facezoo.load_pretrained(tmp_path / "epoch_20.pth")  # a release that was not converted
    torch.save({"state_dict": {}, "hyper_parameters": {"fn": print}}, tmp_path / "code.ckpt")
    with pytest.raises(ValueError, match="never runs code"):
        facezoo.load_pretrained(tmp_path / "code.ckpt")


def test_missing_licensed_model_names_the_conversion(tiny_checkpoint, tmp_path, monkeypatch):
    path, saved = tiny_checkpoint
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["morphable_model"] = "models/bfm09_deep3d.h5"
    torch.save(ckpt, tmp_path / "bfm.ckpt")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="models/bfm09_deep3d.h5") as err:
        facezoo.load_pretrained(tmp_path / "bfm.ckpt")
    assert "facezoo model convert" in str(err.value) and "--format bfm-deep3d" in str(err.value)
    # the user's copy of the model, given explicitly
    model = facezoo.load_pretrained(tmp_path / "bfm.ckpt", morphable_model="procedural:600:4:2:8")
    assert _same_outputs(model, saved)


def test_url_and_sha256(tiny_checkpoint, http_server, facezoo_home):
    path, saved = tiny_checkpoint
    data = path.read_bytes()
    sha = file_sha256(path)
    url = http_server.add(f"tiny-{sha[:8]}.ckpt", data)
    assert _same_outputs(facezoo.load_pretrained(url, sha256=sha, progress=False), saved)
    assert (facezoo_home / "checkpoints" / f"tiny-{sha[:8]}.ckpt").is_file()
    with pytest.raises(ValueError, match="sha256 mismatch"):
        facezoo.load_pretrained(path, sha256="0" * 64)  # a local file is checked too


def _index(tmp_path, **entry):
    base = {
        "name": "deep3d.tiny", "method": "Deep3DFace",
        "config": ["zoo/deep3d.yaml", "zoo/data/synthetic.yaml"],
        "synthetic": True, "trained_on": "nothing (random weights)", "licence": "Apache-2.0",
        "metrics": {"nme": {"value": 0.5, "tolerance": 0.5, "dataset": "x", "protocol": "y"}},
    }  # fmt: skip
    path = tmp_path / "index.yaml"
    path.write_text(yaml.safe_dump({"checkpoints": [base | entry]}))
    return path


def test_index_name_with_a_relative_url(tiny_checkpoint, tmp_path, facezoo_home):
    path, saved = tiny_checkpoint
    sha = file_sha256(path)
    (tmp_path / "files").mkdir()
    shutil.copy(path, tmp_path / "files" / f"deep3d.tiny-{sha[:8]}.ckpt")
    index = _index(tmp_path, url=f"files/deep3d.tiny-{sha[:8]}.ckpt", sha256=sha)
    model = facezoo.load_pretrained("deep3d.tiny", index=index, progress=False)
    assert _same_outputs(model, saved)
    with pytest.raises(FileNotFoundError, match="zoo list"):
        facezoo.load_pretrained("deep3d.nothing", index=index)


def test_built_entry_before_and_after_building(tiny_checkpoint, tmp_path, facezoo_home):
    path, saved = tiny_checkpoint
    index = _index(tmp_path, url=None, build={"command": "demo", "minutes": 4})
    with pytest.raises(FileNotFoundError, match="facezoo zoo build deep3d.tiny`.*about 4 CPU minutes"):
        facezoo.load_pretrained("deep3d.tiny", index=index)
    built = built_path("deep3d.tiny")
    built.parent.mkdir(parents=True)
    shutil.copy(path, built)
    assert _same_outputs(facezoo.load_pretrained("deep3d.tiny", index=index), saved)
