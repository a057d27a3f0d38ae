"""The zoo's files from any folder: the user's folder first, then the copy shipped inside the package.

``zoo/`` (method configs, ``data/`` and ``demo/`` overlays, the checkpoint index) is installed as the package
``facezoo.zoo`` and read with :mod:`importlib.resources`. A config argument ``zoo/deep3d.yaml`` is looked up
relative to the current folder first (a user's edited copy, or the checkout), then in the packaged zoo, so the
README's commands work unchanged from any folder. Only the config file's own location changes: the relative
paths written *inside* a config (``models/bfm09_deep3d.h5``, ``data/300W_LP``) are plain strings and stay
relative to the user's folder.

Cheap to import (no torch): the command line resolves ``--config`` before it imports Lightning.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CONFIG_FLAGS",
    "ZOO_PREFIX",
    "description",
    "find_packaged",
    "packaged_configs",
    "resolve_config",
    "resolve_config_args",
    "zoo_root",
]

#: how config paths name the zoo (the repository's folder, and the README's commands)
ZOO_PREFIX = "zoo/"
#: LightningCLI's config-file options
CONFIG_FLAGS = ("--config", "-c")
_CONFIG_SUFFIXES = (".yaml", ".yml")


def zoo_root() -> Path:
    """The packaged zoo folder (``facezoo/zoo`` in an installed wheel, ``zoo/`` of the checkout in an editable
    install).

    An editable install made before ``zoo/`` was packaged has no ``facezoo.zoo``: the checkout's ``zoo/``
    beside ``src/`` is used then (``pip install -e .`` again makes it a package).

    Example:
        >>> (zoo_root() / "deep3d.yaml").is_file()
        True
    """
    from importlib.resources import files

    try:
        root = files("facezoo.zoo")
    except ModuleNotFoundError:
        import facezoo

        checkout = Path(facezoo.__file__).resolve().parents[2] / "zoo"
        if checkout.is_dir():
            return checkout
        raise FileNotFoundError(
            "facezoo's zoo is not installed (no package facezoo.zoo): reinstall facezoo (pip install .)"
        ) from None
    # An installed wheel unpacks to real files; a Traversable that is no path (a zip import) is not supported.
    path = Path(str(root))
    if not path.is_dir():
        raise FileNotFoundError(f"facezoo's packaged zoo is not a folder on disk ({root!r})")
    return path


def _packaged_name(value: str) -> str | None:
    """``zoo/data/synthetic.yaml`` -> ``data/synthetic.yaml``; None for paths outside ``zoo/``."""
    text = value[2:] if value.startswith("./") else value
    return text[len(ZOO_PREFIX) :] if text.startswith(ZOO_PREFIX) else None


def find_packaged(name: str) -> Path | None:
    """The packaged zoo file named ``name`` (``deep3d``, ``deep3d.yaml``, ``zoo/data/synthetic.yaml``,
    ``data/synthetic``), or None.

    Example:
        >>> find_packaged("data/synthetic").name
        'synthetic.yaml'
        >>> find_packaged("no-such-config") is None
        True
    """
    rel = _packaged_name(name) or name
    root = zoo_root()
    candidates = [rel] if rel.endswith(_CONFIG_SUFFIXES) else [rel + s for s in _CONFIG_SUFFIXES]
    for candidate in candidates:
        path = root / candidate
        if ".." not in Path(candidate).parts and path.is_file():
            return path
    return None


def resolve_config(value: str, cwd: str | Path | None = None) -> str:
    """Where the config argument ``value`` is read from: ``value`` itself when it names a file relative to
    ``cwd`` (default: the current folder) or an absolute one, else the packaged zoo's copy for ``zoo/...``
    paths (an absolute path).

    Values that are not YAML paths (LightningCLI also takes inline YAML after ``--config``) pass unchanged.

    Raises:
        FileNotFoundError: a ``.yaml`` path found neither relative to ``cwd`` nor in the packaged zoo; the one
            line names both places looked in.

    Example:
        >>> import tempfile
        >>> resolve_config("zoo/deep3d.yaml", cwd=tempfile.mkdtemp()).endswith("deep3d.yaml")
        True
    """
    here = Path.cwd() if cwd is None else Path(cwd)
    if "\n" in value or not value.endswith(_CONFIG_SUFFIXES):
        return value
    local = Path(value).expanduser()
    local = local if local.is_absolute() else here / local
    if local.is_file():
        return value
    rel = _packaged_name(value)
    if rel is None:
        raise FileNotFoundError(
            f"config {value}: no file {local} (the packaged zoo serves paths starting with {ZOO_PREFIX}; "
            "`facezoo zoo configs` lists them)"
        )
    packaged = find_packaged(rel)
    if packaged is None:
        raise FileNotFoundError(
            f"config {value}: found neither at {local} nor in the packaged zoo ({zoo_root() / rel}); "
            "`facezoo zoo configs` lists the packaged ones"
        )
    return str(packaged)


def resolve_config_args(args: list[str], cwd: str | Path | None = None) -> list[str]:
    """``args`` with every ``--config X`` / ``--config=X`` / ``-c X`` value passed through
    :func:`resolve_config` (everything else unchanged).

    Example:
        >>> import tempfile
        >>> out = resolve_config_args(["fit", "--config=zoo/deep3d.yaml", "--trainer.max_steps", "2"],
        ...                           cwd=tempfile.mkdtemp())
        >>> out[1].startswith("--config=/"), out[2:]
        (True, ['--trainer.max_steps', '2'])
    """
    out: list[str] = []
    expect = False
    for arg in args:
        if expect:
            out.append(resolve_config(arg, cwd))
            expect = False
            continue
        flag, sep, value = arg.partition("=")
        if flag in CONFIG_FLAGS and sep:
            out.append(f"{flag}={resolve_config(value, cwd)}")
        else:
            expect = arg in CONFIG_FLAGS
            out.append(arg)
    return out


def packaged_configs() -> list[tuple[str, Path]]:
    """The packaged configs as ``(name, path)``, names as the README writes them (``zoo/deep3d.yaml``),
    top-level configs first, then each subfolder's; the checkpoint index is not a config.

    Example:
        >>> names = [name for name, _ in packaged_configs()]
        >>> "zoo/deep3d.yaml" in names and "zoo/data/synthetic.yaml" in names
        True
    """
    root = zoo_root()
    found = [p for p in root.rglob("*") if p.suffix in _CONFIG_SUFFIXES and p.is_file()]
    found = [p for p in found if p.relative_to(root).as_posix() != "index.yaml"]
    found.sort(key=lambda p: (len(p.relative_to(root).parts) > 1, p.relative_to(root).as_posix()))
    return [(ZOO_PREFIX + p.relative_to(root).as_posix(), p) for p in found]


def description(text: str, width: int = 100) -> str:
    """A config's one-line description: the first sentence of its leading comment block, cut at ``width``.

    Example:
        >>> description("# Faces of the built-in model (e.g. for tests). More\\n# follows.\\nmodel: {}")
        'Faces of the built-in model (e.g. for tests).'
        >>> description("# A (Deng et al. 2019, Fig. 2). B follows.")
        'A (Deng et al. 2019, Fig. 2).'
        >>> description("model: {}")
        ''
    """
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        lines.append(stripped.lstrip("#").strip())
    block = " ".join(line for line in lines if line)
    first = block[: _first_sentence_end(block)]
    return first if len(first) <= width else first[: width - 3].rstrip() + "..."


def _first_sentence_end(text: str) -> int:
    """The end of the first sentence: a full stop outside parentheses followed by the end or by a capital
    (so ``e.g. the``, ``et al. 2019`` and ``deep3d.txt`` do not end it)."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "." and depth <= 0:
            rest = text[i + 1 :]
            if not rest.strip() or (rest[:1].isspace() and rest.lstrip()[:1].isupper()):
                return i + 1
    return len(text)
