"""Result tables and JSON files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facezoo.metrics import LandmarkNME, format_table, write_json


def test_single_row_table_from_a_metric_dict():
    out = {"nme_0_30": torch.tensor(0.02634), "nme_30_60": torch.tensor(0.0331), "nme_balanced": 0.03}
    table = format_table(out, scale=100, precision=2)
    lines = table.splitlines()
    assert lines[0].split("|")[1:-1] == [" method ", " nme_0_30 ", " nme_30_60 ", " nme_balanced "]
    assert set(lines[1]) <= {"|", "-"}
    assert [c.strip() for c in lines[2].split("|")[1:-1]] == ["", "2.63", "3.31", "3.00"]
    assert len({len(line) for line in lines}) == 1  # aligned


def test_multi_row_table_with_columns_nan_missing_and_counts():
    results = {
        "3DDFA": {"0-30": 0.0263, "30-60": 0.0342, "60-90": float("nan"), "n": 10},
        "ours": {"0-30": np.float32(0.025), "mean": torch.tensor(0.03)},
    }
    table = format_table(results, columns=["0-30", "60-90", "mean", "n"], precision=3, row_header="model")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()]
    assert rows[0] == ["model", "0-30", "60-90", "mean", "n"]
    assert rows[2] == ["3DDFA", "0.026", "-", "-", "10"]
    assert rows[3] == ["ours", "0.025", "-", "0.030", "-"]
    with pytest.raises(ValueError, match="results"):
        format_table({"a": {"x": 1.0}, "b": 2.0})
    with pytest.raises(ValueError, match="results"):
        format_table({})


def test_write_json_round_trip(tmp_path):
    m = LandmarkNME()
    gt = torch.rand(3, 68, 2) * 100
    m.update(gt + 1.0, gt, torch.tensor([5.0, 40.0, 70.0]))
    results = {"aflw2000": m.compute(), "meta": {"n": 3, "arr": np.arange(3), "name": "x"}}
    path = write_json(results, tmp_path / "deep" / "er" / "results.json")
    back = json.loads(path.read_text())
    assert back["meta"] == {"arr": [0, 1, 2], "n": 3, "name": "x"}
    for k, v in results["aflw2000"].items():
        assert back["aflw2000"][k] == pytest.approx(v.item())
    with pytest.raises(ValueError, match="results"):
        write_json([1, 2], tmp_path / "x.json")
