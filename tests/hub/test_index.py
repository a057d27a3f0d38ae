"""The checkpoint index: the packaged one validates; every malformed field is named with its entry."""

from __future__ import annotations

import pytest
import yaml

from facezoo.hub.index import BUILDERS, load_index

SHA = "ab" * 32
GOOD = {
    "name": "deep3d.test", "method": "Deep3DFace", "config": ["zoo/deep3d.yaml", "zoo/data/synthetic.yaml"],
    "url": f"weights/deep3d.test-{SHA[:8]}.ckpt", "sha256": SHA, "synthetic": True, "trained_on": "faces",
    "licence": "Apache-2.0",
    "metrics": {"nme": {"value": 0.01, "tolerance": 0.002, "dataset": "synthetic", "protocol": "68 points"}},
}  # fmt: skip


def write(tmp_path, *entries):
    path = tmp_path / "index.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "checkpoints": list(entries)}))
    return path


def test_packaged_index_validates_and_its_entries_are_reproducible():
    entries = load_index()
    assert entries, "the packaged index lists the demo's checkpoint"
    for e in entries:
        # only what exists: a downloadable file with its hash, or a recipe that `zoo build` runs
        assert (e.url is not None and e.sha256) or (e.build and e.build["command"] in BUILDERS)
        assert all("tolerance" in m and m["tolerance"] > 0 for m in e.metrics.values())
    demo = next(e for e in entries if e.name == "deep3d.synthetic-demo")
    assert demo.synthetic and demo.url is None
    assert demo.config == ("zoo/deep3d.yaml", "zoo/data/synthetic.yaml", "zoo/demo/deep3d-cpu.yaml")


def test_a_good_entry_and_its_relative_url(tmp_path):
    (entry,) = load_index(write(tmp_path, GOOD))
    assert entry.resolved_url() == str(tmp_path / "weights" / f"deep3d.test-{SHA[:8]}.ckpt")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("name", "Deep3D", "field 'name'"),
        ("sha256", "abc", "field 'sha256'"),
        ("url", f"weights/deep3d.test-{'cd' * 4}.ckpt", "carrying -abababab"),
        ("config", ["zoo/nope.yaml"], "not found"),
        ("synthetic", "yes", "field 'synthetic'"),
        ("metrics", {"nme": {"value": -1, "dataset": "x", "protocol": "y"}}, "nme.value"),
        ("metrics", {"nme": {"value": 1, "dataset": "x"}}, "nme.protocol"),
        ("licence", "", "field 'licence'"),
        ("colour", "red", "unknown field"),
    ],
)
def test_bad_fields_are_named_with_their_entry(tmp_path, field, value, match):
    path = write(tmp_path, GOOD | {field: value})
    with pytest.raises(ValueError, match=match) as err:
        load_index(path)
    assert str(path) in str(err.value)
    if field != "name":
        assert "'deep3d.test'" in str(err.value)


def test_entry_without_url_needs_a_recipe_and_no_hash(tmp_path):
    with pytest.raises(ValueError, match="field 'build'"):
        load_index(write(tmp_path, GOOD | {"url": None, "sha256": None}))
    with pytest.raises(ValueError, match="field 'sha256'"):
        load_index(write(tmp_path, GOOD | {"url": None, "build": {"command": "demo"}}))
    (entry,) = load_index(write(tmp_path, GOOD | {"url": None, "sha256": None, "build": {"command": "demo"}}))
    assert entry.resolved_url() is None


def test_duplicate_names_and_malformed_files(tmp_path):
    with pytest.raises(ValueError, match="used twice"):
        load_index(write(tmp_path, GOOD, GOOD))
    bad = tmp_path / "bad.yaml"
    bad.write_text("checkpoints: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_index(bad)
    with pytest.raises(FileNotFoundError, match="no file"):
        load_index(tmp_path / "missing.yaml")
