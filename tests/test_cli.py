"""The command line: entry points, dispatch and the zoo configs."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facezoo.cli import main

REPO = Path(__file__).resolve().parents[1]
ZOO_CONFIGS = sorted(p for p in (REPO / "zoo").glob("*.yaml") if p.name != "index.yaml")
DATA_OVERLAYS = sorted((REPO / "zoo" / "data").glob("*.yaml"))


@pytest.mark.parametrize(
    "command",
    [["facezoo", "--help"], ["lightning", "--help"], [sys.executable, "-m", "facezoo", "--help"]],
    ids=["facezoo", "lightning", "python-m"],
)
def test_entry_points_list_lightning_subcommands(command):
    if command[0] != sys.executable:
        exe = Path(sys.executable).parent / command[0]
        if not exe.exists():
            exe = shutil.which(command[0])
        assert exe, f"console script {command[0]!r} is not installed"
        command = [str(exe)] + command[1:]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    for sub in ("fit", "validate", "test", "predict"):
        assert f"\n  {sub} " in out


def test_unknown_command_fails(capsys):
    assert main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


def test_lightning_subcommand_help_reaches_lightningcli(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--trainer" in out and "--model" in out and "--data" in out


@pytest.mark.parametrize("config", ZOO_CONFIGS, ids=[p.stem for p in ZOO_CONFIGS])
def test_zoo_config_parses(config, capsys):
    """Every zoo/*.yaml is a complete LightningCLI config (so configs never rot)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "class_path" in printed and "trainer:" in printed


@pytest.mark.parametrize("overlay", DATA_OVERLAYS, ids=[p.stem for p in DATA_OVERLAYS])
def test_data_overlay_parses_with_a_method_config(overlay, capsys):
    """Every zoo/data/*.yaml overlay composes with a method config and names a real datamodule class."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ZOO_CONFIGS[0]), "--config", str(overlay), "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "facezoo.datamodules." in printed
