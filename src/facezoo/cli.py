"""facezoo's command line: one dispatcher, two kinds of subcommand.

* ``fit | validate | test | predict`` go to ``FaceZooCLI``, a LightningCLI in subclass mode for both the
  model and the data (``--model facezoo.methods.Deep3DFace``; ``--config a.yaml --config b.yaml`` merge).
* Every other subcommand (``model``, ``zoo``, ``prepare``, ...) is a plain argparse command living in its own
  module of :mod:`facezoo.commands`; modules there are discovered, so adding one needs no change here.

The same entry point is installed as ``facezoo``, as ``lightning`` (Lightning 2.x ships no such command,
and users type ``lightning fit --config zoo/deep3d.yaml``) and runs as ``python -m facezoo``.

One convention for bad input, every command: a user error (a missing or malformed file, a bad value) prints
``<prog> <command>: error: <message naming the thing>`` on stderr and exits with status 2; the traceback is
printed only with ``--debug`` (anywhere on the command line). Programming errors keep their traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
DEBUG_FLAG = "--debug"
USER_ERROR_EXIT = 2
# Everything a run writes (logs, checkpoints, the resolved config.yaml) goes under runs/, also with the logger
# off, never into the current directory.
TRAINER_DEFAULTS = {"enable_progress_bar": True, "default_root_dir": "runs"}


def _default_logger() -> dict:
    """CSV metrics always (no extra dependency, readable anywhere); TensorBoard via --trainer.logger."""
    return {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs"}}


def _lightning_cli(args: Sequence[str], from_command_line: bool = False) -> None:
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

        def before_instantiate_classes(self) -> None:
            _logger_follows_root_dir(self.config[self.subcommand]["trainer"])

        def _instantiate_trainer(self, config, callbacks):
            add_log_progress(config)
            return super()._instantiate_trainer(config, callbacks)

        def _parse_ckpt_path(self) -> None:
            # Lightning reads the checkpoint's hyper-parameters here, first: check the file before it does
            sub = self.config.get("subcommand")
            path = self.config[sub].get("ckpt_path") if sub else None
            self._ckpt = read_ckpt_path(path) if path is not None else None
            super()._parse_ckpt_path()

        def _check_ckpt_path(self) -> None:
            if self._ckpt is not None:
                check_ckpt_fits(self._ckpt, self.config_init[self.subcommand]["ckpt_path"], self.model)
                self._ckpt = None  # Lightning loads it again to restore; do not hold two copies

        def add_arguments_to_parser(self, parser) -> None:
            # The method's input size and morphable model are the data's too (one value in the configs). A
            # link applies per class: a datamodule without the argument (Mixture) is left as it is.
            for key in ("image_size", "morphable_model"):
                parser.link_arguments(f"model.init_args.{key}", f"data.init_args.{key}")

        before_fit = before_validate = before_test = before_predict = _check_ckpt_path

    kwargs = dict(
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS | {"logger": _default_logger()},
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": _prog()},
    )
    if from_command_line:  # LightningCLI reads sys.argv itself, as it expects
        FaceZooCLI(LightningModule, LightningDataModule, **kwargs)
        return
    # From Python (tests, notebooks): hand LightningCLI the arguments and hide the caller's own sys.argv,
    # which it would otherwise report as a mix of both.
    with hidden_argv():
        FaceZooCLI(LightningModule, LightningDataModule, args=list(args), **kwargs)


@contextlib.contextmanager
def hidden_argv():
    """``sys.argv`` reduced to the program name while LightningCLI is given explicit ``args`` (it warns
    when it sees both)."""
    saved = sys.argv
    sys.argv = sys.argv[:1]
    try:
        yield
    finally:
        sys.argv = saved


def _logger_follows_root_dir(trainer: dict) -> None:
    """``--trainer.default_root_dir X`` moves facezoo's default CSV logger to ``X`` as well (Lightning's own
    loggers follow the root dir; ours has an explicit ``save_dir`` that would otherwise stay ``runs``)."""
    root, logger = trainer.get("default_root_dir"), trainer.get("logger")
    default = _default_logger()
    if not root or root == TRAINER_DEFAULTS["default_root_dir"] or logger is None:
        return
    get = logger.get if isinstance(logger, dict) else lambda key: getattr(logger, key, None)
    class_path, init = get("class_path"), get("init_args")
    if class_path != default["class_path"] or init is None:
        return
    save_dir = init.get("save_dir") if isinstance(init, dict) else getattr(init, "save_dir", None)
    if save_dir == default["init_args"]["save_dir"]:
        if isinstance(init, dict):
            init["save_dir"] = root
        else:
            init.save_dir = root


def add_log_progress(config: dict, interval: float = 30.0) -> None:
    """Without a terminal (a log file, CI, SLURM), replace Lightning's per-step tqdm bar by
    :class:`~facezoo.commands._progress.LogProgress` (a line every ``interval`` s), unless progress is off
    or the config brings its own progress bar."""
    from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

    from facezoo.commands._progress import LogProgress, interactive

    if interactive() or not config.get("enable_progress_bar", True):
        return
    callbacks = config.get("callbacks") or []
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    if not any(isinstance(c, ProgressBar) for c in callbacks):
        config["callbacks"] = [*callbacks, LogProgress(interval)]


_SPECIAL_CKPT = ("last", "best", "hpc", "registry")


def read_ckpt_path(path) -> dict | None:
    """Load a ``--ckpt_path`` safely (:func:`facezoo.nn.weights.load_torch_file`: never runs code, CRC
    checked) and check that it is a Lightning checkpoint: a missing, truncated or edited-in-place file, a
    text file or a bare weights file gets one error naming it, instead of ``PytorchStreamReader`` or
    ``KeyError`` deep inside Lightning. The special values Lightning accepts for ``fit`` (``"last"``,
    ``"best"``, ``"hpc"``, ``"registry[:...]"``) pass through (returns None)."""
    from facezoo.nn.weights import load_torch_file

    if str(path) in _SPECIAL_CKPT or str(path).startswith("registry:"):
        return None
    ckpt = load_torch_file(path, "--ckpt_path")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(
            f"--ckpt_path: {path} is not a Lightning checkpoint (no 'state_dict' entry); network weights "
            "(.pth) go to the method's *_weights argument instead"
        )
    return ckpt


def check_ckpt_fits(ckpt: dict, path, model) -> None:
    """Refuse another module's checkpoint, naming the keys that do not match (instead of Lightning's dump
    of both state dicts)."""
    from facezoo.nn.weights import state_dict_mismatch

    problems = state_dict_mismatch(ckpt["state_dict"], model.state_dict())
    if problems:
        hp = ckpt.get("hyper_parameters") or {}
        origin = f" (saved from {hp['_class_path']})" if isinstance(hp, dict) and "_class_path" in hp else ""
        raise ValueError(
            f"--ckpt_path: {path}{origin} does not fit {type(model).__name__}: " + "; ".join(problems)
        )


def user_error(err: BaseException) -> str | None:
    """The message to print for a user error (bad input), or None for a programming error.

    Errors that jsonargparse wraps while instantiating a class (``Does not validate against any of the Union
    subtypes...``) are unwrapped to the error the class raised.
    """
    from PIL import Image

    from facezoo.data.shards import ShardError

    while err.__cause__ is not None and _raised_in(err, "jsonargparse"):
        err = err.__cause__
    if isinstance(err, SystemExit):
        return err.code if isinstance(err.code, str) else None
    kinds = (OSError, ValueError, ShardError, Image.DecompressionBombError)
    if isinstance(err, kinds) and str(err):
        return _from_worker(str(err))
    return None


def _from_worker(message: str) -> str:
    """A DataLoader worker's error comes back as "Caught X in DataLoader worker process N. Original
    Traceback ...": keep its last line, the error itself, without the type name."""
    if "Original Traceback" not in message:
        return message
    last = [ln for ln in message.strip().splitlines() if ln.strip()][-1].strip()
    name, sep, rest = last.partition(": ")
    return rest if sep and name.replace(".", "").replace("_", "").isalnum() else last


def _raised_in(err: BaseException, package: str) -> bool:
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}{package}{os.sep}" in tb.tb_frame.f_code.co_filename


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
    """Entry point of ``facezoo``, ``lightning`` and ``python -m facezoo``. Returns the exit status.

    A user error prints one ``error:`` line (a few for the first-run hints) and returns 2; ``--debug`` shows
    the traceback instead.
    """
    from_command_line = argv is None
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args
    if debug:
        args = [a for a in args if a != DEBUG_FLAG]
        if from_command_line:
            sys.argv = [sys.argv[0], *args]
    try:
        return _dispatch(args, from_command_line)
    except (Exception, SystemExit) as err:
        message = None if debug else user_error(err)
        if message is None:
            raise
        where = f"{_prog()} {args[0]}" if args else _prog()
        print(f"{where}: error: {message}", file=sys.stderr)
        return USER_ERROR_EXIT


def _dispatch(args: list[str], from_command_line: bool) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] in LIGHTNING_SUBCOMMANDS:
        from facezoo.hub.configs import resolve_config_args

        # `--config zoo/X.yaml` works from any folder: ./zoo/X.yaml first, else the packaged zoo's copy
        args = resolve_config_args(args)
        if from_command_line:
            sys.argv = [sys.argv[0], *args]
        _lightning_cli(args, from_command_line)
        return 0
    from facezoo.commands import discover

    commands = discover()
    if args[0] not in commands:
        print(f"{_prog()}: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return commands[args[0]].run(args[1:], prog=f"{_prog()} {args[0]}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
