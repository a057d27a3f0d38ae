"""Shards: labels edited in place are detected (crc32 per label array recorded by `facezoo prepare`), older
shards without the record warn, manifest entries cannot point outside the shard folder, a malformed manifest
is a ShardError naming it."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from facezoo.cli import main
from facezoo.data import ShardDataset, ShardError


@pytest.fixture
def shards(aflw_root, tmp_path):
    out = tmp_path / "shards"
    assert (
        main(["prepare", "aflw2000", "--root", str(aflw_root), "--out", str(out), "--image-size", "32"]) == 0
    )
    return out / "test"


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
def test_labels_edited_in_place_are_refused(shards, key, edit):
    _edit(shards, key, edit)  # same size, same keys: the quick checks pass
    ds = ShardDataset(shards, verify="quick")
    with pytest.raises(ShardError, match=rf"test-00000\.h5: labels \['{key}'\] do not match"):
        ds[0]


def test_unedited_shard_reads_and_matches_raw(shards, aflw_root):
    from facezoo.datamodules.aflw2000 import AFLW2000Dataset

    raw, shard = AFLW2000Dataset(aflw_root, image_size=32)[2], ShardDataset(shards)[2]
    np.testing.assert_allclose(shard["landmarks68"], raw["landmarks68"], rtol=0, atol=0)


def test_older_shards_without_label_checksums_warn(shards):
    manifest = json.loads((shards / "manifest.json").read_text())
    del manifest["shards"][0]["labels_crc32"]
    (shards / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="without label checksums; its labels are not verified"):
        sample = ShardDataset(shards)[0]
    assert sample["image"].shape == (3, 32, 32)


@pytest.mark.parametrize("entry", ["../../outside.h5", "../test/../../x.h5", "/etc/passwd"])
def test_manifest_paths_outside_the_folder_are_refused(shards, tmp_path, entry):
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["shards"][0]["file"] = entry
    (shards / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="points outside the shard folder"):
        ShardDataset(shards, verify="none")


def test_malformed_manifest_is_a_shard_error(shards):
    (shards / "manifest.json").write_text(json.dumps({"format": "facezoo-shards/1", "count": 3}))
    with pytest.raises(ShardError, match=r"manifest\.json: malformed manifest"):
        ShardDataset(shards)
