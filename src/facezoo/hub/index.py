"""The checkpoint index (``zoo/index.yaml``, packaged as ``facezoo/zoo/index.yaml``): parsed and validated.

Each entry of ``checkpoints:``::

    name: deep3d.synthetic-demo        # <method>.<tag>, unique
    method: Deep3DFace                 # a class of facezoo.methods
    config: [zoo/deep3d.yaml, ...]     # the packaged configs it was trained with (zoo build uses them)
    url: https://.../deep3d.x-1a2b3c4d.ckpt   # http(s), file:, a path relative to the index; null: built
    sha256: <64 hex>                   # required with a url; the url's file name carries -<sha256[:8]>
    synthetic: true                    # trained on synthetic faces only
    trained_on: what it was trained on
    licence: the checkpoint's licence
    metrics:                           # what the checkpoint measures, with the dataset and protocol
      vertex_error_mm: {value: 1.17, tolerance: 0.15, dataset: ..., protocol: ...}
    build: {command: demo, minutes: 4} # how `facezoo zoo build` retrains it (required without a url)

An entry with ``url: null`` is built on the user's machine by ``facezoo zoo build NAME`` into
``<cache>/built/<name>.ckpt`` (see docs in the index file for why the demo's is not committed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BUILDERS", "IndexEntry", "built_path", "find_entry", "index_path", "load_index"]

NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.[a-z0-9][a-z0-9_.-]*")
SHA256 = re.compile(r"[0-9a-f]{64}")
#: how ``facezoo zoo build`` can retrain an entry
BUILDERS = ("demo",)
_FIELDS = (
    "name",
    "method",
    "config",
    "url",
    "sha256",
    "synthetic",
    "trained_on",
    "licence",
    "metrics",
    "build",
)
_METRIC_FIELDS = ("value", "tolerance", "dataset", "protocol")


@dataclass(frozen=True)
class IndexEntry:
    """One validated checkpoint entry (fields as in the module docstring)."""

    name: str
    method: str
    config: tuple[str, ...]
    url: str | None
    sha256: str | None
    synthetic: bool
    trained_on: str
    licence: str
    metrics: dict[str, dict[str, Any]]
    build: dict[str, Any] | None
    index: Path = field(compare=False)

    def resolved_url(self) -> str | None:
        """``url`` with a path relative to the index made absolute (http(s) and ``file:`` unchanged)."""
        if self.url is None or re.match(r"(https?|file):", self.url):
            return self.url
        return str((self.index.parent / self.url).resolve())


def index_path() -> Path:
    """The packaged index (``facezoo/zoo/index.yaml``)."""
    from facezoo.hub.configs import zoo_root

    return zoo_root() / "index.yaml"


def built_path(name: str) -> Path:
    """Where ``facezoo zoo build NAME`` writes the checkpoint (``<cache>/built/<name>.ckpt``)."""
    from facezoo.hub.download import cache_dir

    return cache_dir() / "built" / f"{name}.ckpt"


def load_index(path: str | Path | None = None) -> list[IndexEntry]:
    """Parse and validate an index file (default: the packaged one).

    Raises:
        FileNotFoundError: no index file.
        ValueError: malformed YAML or a bad entry; the message names the file, the entry and the field.

    Example:
        >>> [e.name for e in load_index()]
        ['deep3d.synthetic-demo']
    """
    import yaml

    path = Path(path) if path is not None else index_path()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint index: no file {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"checkpoint index {path}: not valid YAML ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("checkpoints"), list):
        raise ValueError(f"checkpoint index {path}: expected a mapping with a 'checkpoints' list")
    entries, seen = [], set()
    for number, raw in enumerate(data["checkpoints"]):
        entry = _entry(raw, number, path)
        if entry.name in seen:
            raise ValueError(f"checkpoint index {path}: entry {entry.name!r}: the name is used twice")
        seen.add(entry.name)
        entries.append(entry)
    return entries


def find_entry(name: str, path: str | Path | None = None) -> IndexEntry | None:
    """The entry called ``name``, or None."""
    return next((e for e in load_index(path) if e.name == name), None)


def _entry(raw: Any, number: int, path: Path) -> IndexEntry:
    label = f"#{number}"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        label = repr(raw["name"])

    def bad(name: str, expected: str) -> ValueError:
        got = raw.get(name) if isinstance(raw, dict) else raw
        return ValueError(
            f"checkpoint index {path}: entry {label}: field {name!r}: expected {expected}, got {got!r}"
        )

    if not isinstance(raw, dict):
        raise bad("entry", "a mapping")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ValueError(
            f"checkpoint index {path}: entry {label}: unknown field(s) {unknown}; expected {list(_FIELDS)}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise bad("name", "'<method>.<tag>' (lower case, digits, '-', '_', '.')")
    for text in ("method", "trained_on", "licence"):
        if not isinstance(raw.get(text), str) or not raw[text].strip():
            raise bad(text, "a non-empty string")
    if not isinstance(raw.get("synthetic"), bool):
        raise bad("synthetic", "true or false")
    config = raw.get("config")
    if not isinstance(config, list) or not config or not all(isinstance(c, str) for c in config):
        raise bad("config", "a non-empty list of zoo config paths")
    from facezoo.hub.configs import find_packaged

    missing = [c for c in config if find_packaged(c) is None]
    if missing:
        raise bad("config", f"packaged configs (not found: {missing})")
    url, sha256 = raw.get("url"), raw.get("sha256")
    if url is not None:
        if not isinstance(url, str) or not url:
            raise bad("url", "http(s)://..., file:... or a path relative to the index")
        if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
            raise bad("sha256", "64 lower-case hex digits (required with a url)")
        from facezoo.hub.download import filename_from_url, hash_prefix

        prefix = hash_prefix(filename_from_url(url) if "://" in url else Path(url).name)
        if prefix is None or not sha256.startswith(prefix):
            raise bad("url", f"a file name carrying -{sha256[:8]} (the sha256's first 8 hex digits)")
    elif sha256 is not None:
        raise bad("sha256", "null for an entry without a url (a built checkpoint's hash is its own)")
    build = raw.get("build")
    if build is not None and (not isinstance(build, dict) or build.get("command") not in BUILDERS):
        raise bad("build", f"a mapping with 'command' one of {list(BUILDERS)}")
    if url is None and build is None:
        raise bad("build", "how to build it (an entry without a url must say)")
    metrics = raw.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise bad("metrics", "a mapping of metric name to {value, tolerance, dataset, protocol}")
    for metric, spec in metrics.items():
        if not isinstance(spec, dict) or set(spec) - set(_METRIC_FIELDS) or "value" not in spec:
            raise bad("metrics", f"{metric}: a mapping with 'value' and some of {list(_METRIC_FIELDS)}")
        for key in ("value", "tolerance"):
            value = spec.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise bad("metrics", f"{metric}.{key}: a non-negative number")
        for key in ("dataset", "protocol"):
            if not isinstance(spec.get(key), str):
                raise bad("metrics", f"{metric}.{key}: a string")
    return IndexEntry(
        name=name, method=raw["method"], config=tuple(config), url=url, sha256=sha256,
        synthetic=raw["synthetic"], trained_on=raw["trained_on"], licence=raw["licence"],
        metrics={k: dict(v) for k, v in metrics.items()}, build=dict(build) if build else None, index=path,
    )  # fmt: skip
