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


# -- the zoo ships inside the package and --config finds it from any folder (issue 19) ----------------------
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import site  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from facezoo.cli import main  # noqa: E402
from facezoo.hub.configs import find_packaged, packaged_configs, resolve_config, zoo_root  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ZOO_FILES = sorted(p.relative_to(REPO / "zoo").as_posix() for p in (REPO / "zoo").rglob("*.yaml"))


def test_packaged_zoo_holds_every_config_of_the_checkout():
    # the editable install maps facezoo.zoo onto the checkout's zoo/: the same files, read as package data
    root = zoo_root()
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.yaml")) == ZOO_FILES
    names = [name for name, _ in packaged_configs()]
    assert "zoo/index.yaml" not in names
    assert names == sorted(names, key=lambda n: (n.count("/") > 1, n))  # top-level configs first


def test_config_resolution_prefers_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # empty folder: the packaged copy, as an absolute path
    assert Path(resolve_config("zoo/deep3d.yaml")) == zoo_root() / "deep3d.yaml"
    assert Path(resolve_config("./zoo/data/synthetic.yaml")) == zoo_root() / "data" / "synthetic.yaml"
    # the user's own zoo/deep3d.yaml wins and stays the relative path typed
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "deep3d.yaml").write_text("seed_everything: 3\n")
    assert resolve_config("zoo/deep3d.yaml") == "zoo/deep3d.yaml"
    # inline YAML and other options pass through
    assert resolve_config("{trainer: {max_steps: 2}}") == "{trainer: {max_steps: 2}}"


def test_missing_config_is_one_line_naming_both_places(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", "zoo/nope.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(tmp_path / "zoo" / "nope.yaml") in err and str(zoo_root() / "nope.yaml") in err
    assert main(["fit", "--config=mine.yaml"]) == 2  # not a zoo path: the one place looked in is named
    assert str(tmp_path / "mine.yaml") in capsys.readouterr().err


def test_relative_paths_inside_configs_stay_relative_to_the_users_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):  # --print_config prints the parsed config and exits
        main(["fit", "--config", "zoo/deep3d.yaml", "--config", "zoo/data/300wlp.yaml", "--print_config"])
    printed = capsys.readouterr().out
    assert "morphable_model: models/bfm09_deep3d.h5" in printed  # not moved into the package folder
    assert "root: data/300W_LP" in printed


def test_zoo_configs_and_show(capsys):
    assert main(["zoo", "configs"]) == 0
    out = capsys.readouterr().out
    for rel in ZOO_FILES:
        assert (f"zoo/{rel}" in out) == (rel != "index.yaml")  # the checkpoint index is no config
    line = next(ln for ln in out.splitlines() if "zoo/data/synthetic.yaml" in ln)
    assert line.split("zoo/data/synthetic.yaml", 1)[1].strip().startswith("Synthetic faces of the built-in")
    assert main(["zoo", "show", "data/synthetic"]) == 0
    assert capsys.readouterr().out == (REPO / "zoo" / "data" / "synthetic.yaml").read_text()
    assert main(["zoo", "show", "zoo/deep3d.yaml", "--path"]) == 0
    assert Path(capsys.readouterr().out.strip()) == find_packaged("deep3d")
    assert main(["zoo", "show", "../setup"]) == 2  # nothing outside the zoo


def _setuptools_ok() -> bool:
    import setuptools

    return int(setuptools.__version__.split(".")[0]) >= 77


def _site_dirs() -> list[str]:
    """This interpreter's site folders (torch, lightning...), for the test venv to reuse."""
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


@pytest.mark.slow
def test_wheel_installs_and_runs_from_an_empty_folder(tmp_path):
    """Build the wheel, install it into a fresh venv that reuses this torch, and run the README's commands
    from an empty folder: --help, zoo configs, a 2-step fit of the zoo's configs and a tiny demo."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in ("src", "datamodules", "callbacks", "zoo"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    dist = tmp_path / "dist"
    # without build isolation (no index needed) when this environment's setuptools can build pyproject's
    # metadata; else pip's isolated build, as `make install` does
    isolation = ["--no-build-isolation", "--no-index"] if _setuptools_ok() else []
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", *isolation, "-q", "-w", str(dist), str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = dist.glob("facezoo-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for rel in ZOO_FILES:
        assert f"facezoo/zoo/{rel}" in names
    assert not any(n.split("/")[0] in ("zoo", "datamodules", "callbacks") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # reuse this torch/lightning: their folders after the venv's own (a plain path list: no .pth inside them
    # runs, so this checkout's editable facezoo stays out)
    (Path(purelib) / "_parent_site.pth").write_text("\n".join(_site_dirs()) + "\n")
    subprocess.run(
        [*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["WANDB_MODE"] = "offline"
    facezoo = str(venv / "bin" / "facezoo")

    def run(*args, timeout=300):
        done = subprocess.run(args, cwd=empty, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        return done.stdout

    where = run(str(python), "-c", "import facezoo.hub.configs as c; print(c.zoo_root())").strip()
    assert where.startswith(purelib) and where.endswith("facezoo/zoo")  # the wheel's copy, not the checkout
    assert "facezoo commands:" in run(facezoo, "--help")
    configs = run(facezoo, "zoo", "configs")
    assert "zoo/deep3d.yaml" in configs and "zoo/demo/deep3d-cpu.yaml" in configs
    assert "deep3d.synthetic-demo" in run(facezoo, "zoo", "list")  # the packaged checkpoint index
    run(
        facezoo, "fit", "--config", "zoo/deep3d.yaml", "--config", "zoo/data/synthetic.yaml",
        "--trainer.max_steps", "2", "--trainer.num_sanity_val_steps", "0", "--data.init_args.batch_size", "2",
    )  # fmt: skip
    saved = list(empty.glob("runs/lightning_logs/version_0/config.yaml"))
    assert saved, sorted(str(p.relative_to(empty)) for p in empty.rglob("*"))
    assert "morphable_model: procedural" in saved[0].read_text()
    # the demo, tiny, writes under ./runs/demo of the empty folder
    tiny = {
        "trainer.max_steps": 2, "model.init_args.morphable_model": "procedural:600:4:2:8",
        "data.init_args.morphable_model": "procedural:600:4:2:8", "model.init_args.image_size": 32,
        "data.init_args.image_size": 32, "model.init_args.backbone_kwargs": "{width: 8}",
        "data.init_args.batch_size": 8, "data.init_args.num_train": 64, "data.init_args.num_test": 8,
    }  # fmt: skip
    run(facezoo, "demo", "--num-images", "1", *[a for k, v in tiny.items() for a in ("--set", f"{k}={v}")])
    metrics = json.loads((empty / "runs" / "demo" / "metrics.json").read_text())
    assert metrics["steps"] == 2
    ckpt = empty / "runs" / "demo" / "deep3d_demo.ckpt"
    card = json.loads(ckpt.with_name("deep3d_demo.card.json").read_text())
    assert card["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert card["metrics"] == metrics["after"]
