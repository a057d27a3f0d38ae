"""The installed package exposes the design card's layout."""

import importlib
import importlib.util
import subprocess
import sys


def test_mapped_namespaces_import():
    for name in ("facezoo.datamodules", "facezoo.callbacks"):
        module = importlib.import_module(name)
        assert module.__name__ == name


def test_no_top_level_datamodules_or_callbacks(tmp_path):
    # From a directory outside the checkout, the top-level folders must not be importable.
    code = "import importlib.util as u; print(u.find_spec('datamodules'), u.find_spec('callbacks'))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["None", "None"]


def test_import_is_cheap(tmp_path):
    # `import facezoo` must not drag in torch, lightning or open3d (fast `--help`, no side effects).
    code = (
        "import sys, facezoo; print(sorted(m for m in ('torch', 'lightning', 'open3d') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
