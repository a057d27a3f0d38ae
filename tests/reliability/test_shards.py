"""Shards: labels edited in place are detected (crc32 per label array recorded by `facezoo prepare`), older
shards without the record warn, manifest entries cannot point outside the shard folder, a malformed manifest
is a ShardError naming it."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from facezoo.data import ShardDataset, ShardError


def _edit(folder, key, fn):
    with h5py.File(folder / "test-00000.h5", "r+") as f:
        data = f[key][()]
        f[key][...] = fn(data)


@pytest.mark.parametrize(
    ("key", "edit"),
    [
        ("landmarks68", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, np.nan, a)),
        ("params/pose", lambda a: a + np.float32(5000.0)),
        ("yaw", lambda a: -a),
    ],
    ids=["nan-landmark", "pose-5000px", "yaw-sign"],
)
def test_labels_edited_in_place_are_refused(aflw_shards, key, edit):
    _edit(aflw_shards, key, edit)  # same size, same keys: the quick checks pass
    ds = ShardDataset(aflw_shards, verify="quick")
    with pytest.raises(ShardError, match=rf"test-00000\.h5: labels \['{key}'\] do not match"):
        ds[0]


def test_unedited_shard_reads_and_matches_raw(aflw_shards, aflw_root):
    from facezoo.datamodules.aflw2000 import AFLW2000Dataset

    raw, shard = AFLW2000Dataset(aflw_root, image_size=32)[2], ShardDataset(aflw_shards)[2]
    np.testing.assert_allclose(shard["landmarks68"], raw["landmarks68"], rtol=0, atol=0)


def test_older_shards_without_label_checksums_warn(aflw_shards):
    manifest = json.loads((aflw_shards / "manifest.json").read_text())
    del manifest["shards"][0]["labels_crc32"]
    (aflw_shards / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="without label checksums; its labels are not verified"):
        sample = ShardDataset(aflw_shards)[0]
    assert sample["image"].shape == (3, 32, 32)


@pytest.mark.parametrize("entry", ["../../outside.h5", "../test/../../x.h5", "/etc/passwd"])
def test_manifest_paths_outside_the_folder_are_refused(aflw_shards, tmp_path, entry):
    manifest = json.loads((aflw_shards / "manifest.json").read_text())
    manifest["shards"][0]["file"] = entry
    (aflw_shards / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="points outside the shard folder"):
        ShardDataset(aflw_shards, verify="none")


def test_malformed_manifest_is_a_shard_error(aflw_shards):
    (aflw_shards / "manifest.json").write_text(json.dumps({"format": "facezoo-shards/1", "count": 3}))
    with pytest.raises(ShardError, match=r"manifest\.json: malformed manifest"):
        ShardDataset(aflw_shards)
