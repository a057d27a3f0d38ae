"""`facezoo test` on AFLW2000-3D: the protocol table (yaw buckets, mean of bucket means) and its JSON."""

import json

import pytest

from facezoo.cli import main


def test_facezoo_test_prints_bucket_table_and_writes_json(aflw_root, tmp_path, capsys):
    args = [
        "test",
        "--model=facezoo.methods.Deep3DFace",
        "--model.morphable_model=procedural:600",
        "--model.backbone=resnet18",
        "--model.backbone_kwargs={width: 8}",
        "--model.image_size=48",
        "--data=facezoo.datamodules.AFLW2000",
        f"--data.root={aflw_root}",
        "--data.image_size=48",
        "--data.batch_size=2",
        "--data.num_workers=0",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    main(args)
    out = capsys.readouterr().out
    assert "test results" in out
    for column in ("nme_0_30", "nme_30_60", "nme_60_90", "nme_balanced"):
        assert column in out  # the fixture has one face per yaw bucket (10, 45 and 80 degrees)

    results = json.loads((tmp_path / "test_results.json").read_text())["metrics"]
    buckets = [results[k] for k in ("nme_0_30", "nme_30_60", "nme_60_90")]
    assert results["nme_balanced"] == pytest.approx(sum(buckets) / 3)
    # one image per bucket: the mean of bucket means equals the per-image mean
    assert results["nme"] == pytest.approx(results["nme_balanced"])
