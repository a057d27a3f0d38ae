"""facezoo's command line: one dispatcher, two kinds of subcommand.

* ``fit | validate | test | predict`` go to ``FaceZooCLI``, a LightningCLI in subclass mode for both the
  model and the data (``--model facezoo.methods.Deep3DFace``; ``--config a.yaml --config b.yaml`` merge).
* Every other subcommand (``model``, ``zoo``, ``prepare``, ...) is a plain argparse command living in its own
  module of :mod:`facezoo.commands`; modules there are discovered, so adding one needs no change here.

The same entry point is installed as ``facezoo``, as ``lightning`` (Lightning 2.x ships no such command,
and users type ``lightning fit --config zoo/deep3d.yaml``) and runs as ``python -m facezoo``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
# Everything a run writes (logs, checkpoints, the resolved config.yaml) goes under runs/, also with the logger
# off, never into the current directory.
TRAINER_DEFAULTS = {"enable_progress_bar": True, "default_root_dir": "runs"}


def _default_logger() -> dict:
    """CSV metrics always (no extra dependency, readable anywhere); TensorBoard via --trainer.logger."""
    return {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs"}}


def _lightning_cli(args: Sequence[str]) -> None:
    # wandb stays offline unless the user opted in explicitly (no network in tests or on air-gapped clusters).
    os.environ.setdefault("WANDB_MODE", "offline")
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    # Import our packages so that short class names (``--model Deep3DFace``) resolve.
    import facezoo.callbacks  # noqa: F401
    import facezoo.datamodules  # noqa: F401
    import facezoo.methods  # noqa: F401

    class FaceZooCLI(LightningCLI):
        """LightningCLI with facezoo's defaults (CSV logger, progress bar, overwrite-safe config saving)."""

        def add_arguments_to_parser(self, parser) -> None:
            # The method's input size and morphable model are the data's too (one value in the configs). A
            # link applies per class: a datamodule without the argument (Mixture) is left as it is.
            for key in ("image_size", "morphable_model"):
                parser.link_arguments(f"model.init_args.{key}", f"data.init_args.{key}")

    FaceZooCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS | {"logger": _default_logger()},
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": _prog()},
        args=list(args),
    )


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "facezoo"
    return "facezoo" if name in ("__main__.py", "-m", "-c", "") else name


def _usage() -> str:
    from facezoo.commands import discover

    lines = [
        f"usage: {_prog()} <command> [options]",
        "",
        "facezoo: 3D face reconstruction with morphable models (PyTorch Lightning model zoo).",
        "",
        "Lightning commands (LightningCLI; see `<command> --help`):",
        "  fit         train a method:  fit --config zoo/deep3d.yaml",
        "  validate    run the validation loop",
        "  test        evaluate a checkpoint:  test --config zoo/<method>.yaml --ckpt_path ...",
        "  predict     reconstruct faces and export them",
        "",
        "facezoo commands:",
    ]
    for name, command in sorted(discover().items()):
        lines.append(f"  {name:<11} {command.help}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``facezoo``, ``lightning`` and ``python -m facezoo``. Returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] in LIGHTNING_SUBCOMMANDS:
        _lightning_cli(args)
        return 0
    from facezoo.commands import discover

    commands = discover()
    if args[0] not in commands:
        print(f"{_prog()}: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return commands[args[0]].run(args[1:], prog=f"{_prog()} {args[0]}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
