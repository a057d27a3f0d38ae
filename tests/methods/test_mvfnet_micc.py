"""MVF-Net and a "+pool" single-view baseline on MICC triplets through `facezoo test` (the MICC protocol)."""

from __future__ import annotations

import json

import pytest
from test_protocol_micc import MODEL, micc_root  # noqa: F401 (the fixture: two subjects, closed-form RMSE)

from facezoo.cli import main

COMMON = [
    "--data=facezoo.datamodules.MICC", "--data.image_size=48", "--data.batch_size=2", "--data.num_workers=0",
    "--data.group=subject", "--data.frames_per_subject=3", "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
]  # fmt: skip


@pytest.mark.parametrize(
    "model",
    [
        ["--model=facezoo.methods.MVFNet", f"--model.morphable_model={MODEL}", "--model.image_size=48",
         "--model.width_divisor=16", "--model.hidden=16"],
        ["--model=facezoo.methods.PooledSingleView", "--model.method=facezoo.methods.Deep3DFace",
         f"--model.method_args={{morphable_model: '{MODEL}', backbone: resnet18, "
         "backbone_kwargs: {width: 8}, image_size: 48}"],
    ],
    ids=["mvfnet", "deep3d+pool"],
)  # fmt: skip
def test_micc_triplets(model, micc_root, tmp_path, capsys):  # noqa: F811
    """Each video's frames as one triplet (``image [B,3,3,H,W]``); untrained networks regress (nearly) the
    mean face, so the fixture's closed-form RMSEs come back: ~0 for scan 1, the off-surface pairs' for 2."""
    root, ref = micc_root
    main(["test", *model, *COMMON, f"--data.root={root}", f"--trainer.default_root_dir={tmp_path}"])
    assert "MICC Florence RMSE" in capsys.readouterr().out
    results = json.loads((tmp_path / "test_results.json").read_text())
    seq = {(r["subject"], r["video"]): r for r in results["sequences"]}
    assert seq[(1, "Indoor-Cooperative")]["frames"] == 3
    assert seq[(1, "Indoor-Cooperative")]["rmse"] < 0.02
    assert seq[(2, "Indoor-Cooperative")]["rmse"] == pytest.approx(ref["rmse2"], rel=0.05)
