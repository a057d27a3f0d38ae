"""``on_bad_sample: skip`` drops a bad sample (never replaced by another, which would count that one twice),
counts it and reports it: in the loader, in ``facezoo test``'s table and ``test_results.json``, and in the
``facezoo prepare`` summary (the shard holds no duplicate)."""

from __future__ import annotations

import json
import shutil

import h5py
import pytest
import torch
from _reliability import aflw_test_args, prepare_aflw, truncate

from facezoo.cli import main
from facezoo.data import BadSampleError, FaceDataset, ReportingDataLoader, collate


class _Toy(FaceDataset):
    def __init__(self, bad, n=6):
        super().__init__("skip")
        self.items, self.bad = list(range(n)), bad

    def load(self, i):
        if i in self.bad:
            raise BadSampleError(f"f{i}.jpg", "broken")
        return {"image": torch.full((3, 2, 2), float(i))}


def test_skipped_sample_is_dropped_not_replaced():
    loader = ReportingDataLoader(_Toy({1}), batch_size=3, collate_fn=collate)
    with pytest.warns(UserWarning, match="skipped 1 bad samples"):
        batches = list(loader)
    seen = [int(i) for b in batches for i in b["index"]]
    assert seen == [0, 2, 3, 4, 5]  # each good sample exactly once, the bad one nowhere
    assert loader.skipped == ["f1.jpg: broken"] and batches[0]["skipped"] == ["f1.jpg: broken"]


def test_batch_of_only_bad_samples_holds_only_the_reasons():
    batch = collate([_Toy({0, 1})[0], _Toy({0, 1})[1]])
    assert batch == {"skipped": ["f0.jpg: broken", "f1.jpg: broken"]}


def _test(root, tmp_path, name, bad="skip"):
    out = tmp_path / name
    main(aflw_test_args(root, out, "--data.batch_size=2", f"--data.on_bad_sample={bad}"))
    return json.loads((out / "test_results.json").read_text())


def _aflw_skip_equals_good_alone(root, tmp_path, capsys, bad_index):
    images = sorted(root.glob("image*.jpg"))
    good = tmp_path / "good"
    good.mkdir()
    for i, image in enumerate(images):
        if i != bad_index:
            shutil.copy(image, good / image.name)
            shutil.copy(image.with_suffix(".mat"), good / image.with_suffix(".mat").name)
    truncate(images[bad_index])
    with_bad = _test(root, tmp_path, "with_bad")
    out = capsys.readouterr().out
    alone = _test(good, tmp_path, "alone")
    for key, value in alone["metrics"].items():
        assert with_bad["metrics"][key] == pytest.approx(value, rel=1e-6), key
    assert with_bad["metrics"]["skipped"] == 1 and with_bad["skipped"] == 1 and alone["skipped"] == 0
    assert with_bad["skipped_samples"][0].startswith(f"{images[bad_index]}: corrupt or truncated")
    assert f"skipped 1 bad sample (in no metric): {images[bad_index]}" in out


def test_aflw_test_with_a_truncated_jpeg_equals_the_good_images_alone(aflw_root, tmp_path, capsys):
    _aflw_skip_equals_good_alone(aflw_root, tmp_path, capsys, bad_index=1)


def test_aflw_test_real_samples_with_a_truncated_jpeg(shared_data, tmp_path, capsys):
    root = tmp_path / "aflw"
    shutil.copytree(shared_data / "aflw2000_3d", root)
    _aflw_skip_equals_good_alone(root, tmp_path, capsys, bad_index=3)


def test_prepare_skip_summary_and_no_duplicate_in_the_shard(aflw_root, tmp_path, capsys):
    bad = aflw_root / "image00001.jpg"
    truncate(bad)
    out = tmp_path / "shards"
    assert prepare_aflw(aflw_root, out, "--on-bad-sample", "skip") == 0
    printed = capsys.readouterr().out
    assert f"aflw2000/test: 2 samples, 1 skipped: {bad}: corrupt or truncated image" in printed
    with h5py.File(out / "test" / "test-00000.h5") as f:
        paths = [p.decode() for p in f["path"][()]]
    assert paths == [str(aflw_root / "image00000.jpg"), str(aflw_root / "image00002.jpg")]
    assert json.loads((out / "test" / "manifest.json").read_text())["count"] == 2
