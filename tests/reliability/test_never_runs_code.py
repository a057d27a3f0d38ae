"""Every file a user points to loads without running code: a pickle payload that would create a file is
refused, the file never appears and the error names the file (weights, --ckpt_path, skin models, model files,
.mat labels, shards and manifests)."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
import torch
from _reliability import aflw_test_args

from facezoo.cli import main


def _torch_file_with(payload: bytes, path) -> None:
    """A torch.save zip whose data.pkl is ``payload`` (what a malicious checkpoint looks like)."""
    torch.save({"w": torch.ones(2)}, path)
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            data = payload if info.filename.endswith("data.pkl") else src.read(info)
            dst.writestr(info, data)
    path.write_bytes(buf.getvalue())


def test_backbone_weights_payload_is_refused(tmp_path, payload):
    import facezoo.nn as fnn

    pickled, marker = payload
    path = tmp_path / "resnet.pth"
    _torch_file_with(pickled, path)
    with pytest.raises(ValueError, match=r"resnet\.pth refers to Python code"):
        fnn.load_backbone_weights(fnn.build("resnet18", width=8, num_outputs=3), path)
    assert not marker.exists()


def test_ckpt_path_payload_is_refused(aflw_root, tmp_path, payload, capsys):
    pickled, marker = payload
    ckpt = tmp_path / "evil.ckpt"
    _torch_file_with(pickled, ckpt)
    rc = main(aflw_test_args(aflw_root, tmp_path, f"--ckpt_path={ckpt}"))
    err = capsys.readouterr().err
    assert rc == 2 and "evil.ckpt" in err and "Python code" in err and "Traceback" not in err
    assert not marker.exists()


def test_skin_model_payload_is_refused(tmp_path, payload, capsys):
    pickled, marker = payload
    params = tmp_path / "skin.npz"
    with zipfile.ZipFile(params, "w") as z:  # an .npz whose "format" array is a pickled object array
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        z.writestr("format.npy", buf.getvalue() + pickled)
    image = tmp_path / "face.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    rc = main(["skin", "apply", str(image), "-o", str(tmp_path / "out"), "--params", str(params)])
    err = capsys.readouterr().err
    assert rc == 2 and "skin.npz" in err and "Traceback" not in err
    assert not marker.exists()


def test_model_file_payload_is_refused(tmp_path, payload, capsys):
    import h5py

    from facezoo.morphable.hdf5 import save_model
    from facezoo.morphable.procedural import procedural_model

    pickled, marker = payload
    path = save_model(procedural_model(n_vertices=600, n_id=2, n_exp=2, n_tex=2), tmp_path / "m.h5")
    with h5py.File(path, "r+") as f:  # the mean replaced by the pickle's bytes (opaque)
        del f["mean"]
        f.create_dataset("mean", data=np.void(pickled))
    assert main(["model", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "m.h5" in err and "Traceback" not in err
    assert not marker.exists()


def test_mat_label_payload_is_refused(aflw_root, payload):
    from facezoo.datamodules.aflw2000 import AFLW2000Dataset

    from facezoo.data import BadSampleError

    pickled, marker = payload
    (aflw_root / "image00001.mat").write_bytes(pickled)
    ds = AFLW2000Dataset(aflw_root, image_size=32)
    with pytest.raises(BadSampleError, match=r"image00001\.mat"):
        ds[1]
    assert not marker.exists()


def test_shard_file_replaced_by_a_payload_is_refused(aflw_shards, payload):
    from facezoo.data import ShardDataset, ShardError

    pickled, marker = payload
    folder = aflw_shards
    shard = folder / "test-00000.h5"
    manifest = json.loads((folder / "manifest.json").read_text())
    shard.write_bytes(pickled)
    manifest["shards"][0]["bytes"] = shard.stat().st_size  # sizes agree: only the content is foreign
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=r"test-00000\.h5: unreadable shard"):
        ShardDataset(folder)
    assert not marker.exists()


def test_manifest_entry_to_a_payload_outside_the_folder_is_refused(aflw_shards, tmp_path, payload):
    from facezoo.data import ShardDataset, ShardError

    pickled, marker = payload
    folder = aflw_shards
    (tmp_path / "outside.h5").write_bytes(pickled)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["shards"][0]["file"] = "../../outside.h5"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for verify in ("none", "quick"):
        with pytest.raises(ShardError, match=r"'\.\./\.\./outside\.h5' points outside the shard folder"):
            ShardDataset(folder, verify=verify)
    assert not marker.exists()


def _bfm_mean_sources(folder, shared):
    """3DDFA's real mean-model files (u_shp/u_exp, keypoints, tri) copied from ../shared/data."""
    folder.mkdir()
    for name in ("u_shp.npy", "u_exp.npy", "keypoints_sim.npy", "tri.mat"):
        shutil.copy(shared / "bfm_parts" / "3ddfa_v1" / name, folder / name)


@pytest.mark.parametrize("target", ["u_shp.npy", "tri.mat"])
def test_model_convert_source_payloads_are_refused(shared_data, tmp_path, payload, capsys, target):
    pickled, marker = payload
    src = tmp_path / "3ddfa"
    _bfm_mean_sources(src, shared_data)
    if target.endswith(".npy"):  # an object array: np.save pickles it
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        (src / target).write_bytes(header.getvalue() + pickled)
    else:
        (src / target).write_bytes(pickled)
    out = tmp_path / "m.h5"
    assert main(["model", "convert", str(src), "--format", "bfm-3ddfa-mean", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{src / target}: cannot read" in err and "Traceback" not in err
    assert not marker.exists() and not out.exists()


def test_ict_npz_with_a_pickled_array_is_refused(tmp_path, payload, capsys):
    pickled, marker = payload
    path = tmp_path / "ict.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("neutral.npy", header.getvalue() + pickled)
    (tmp_path / "vertex_indices.json").write_text(json.dumps({"idx_to_landmark_verts": list(range(68))}))
    assert main(["model", "convert", str(path), "--format", "ict", "-o", str(tmp_path / "m.h5")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: cannot read as an .npz" in err and not marker.exists()
