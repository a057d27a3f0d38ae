"""``facezoo.load_pretrained``: a checkpoint by index name, local path or URL, as a ready LightningModule."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["load_pretrained", "resolve_checkpoint"]


def _is_url(text: str) -> bool:
    return re.match(r"(https?|file):", text) is not None


def resolve_checkpoint(
    spec: str | os.PathLike[str],
    sha256: str | None = None,
    index: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """The local file of ``spec``: an existing path (verified against ``sha256`` when given), a URL
    (downloaded once into the cache) or an index name (downloaded, or built by ``facezoo zoo build``).

    Raises:
        FileNotFoundError: nothing of that name; or an index entry built locally that was not built yet (the
            message gives the command).
        ValueError: sha256 mismatch (a downloaded file is removed).
        OSError: a failed download.
    """
    from facezoo.hub.download import download, verify_file
    from facezoo.hub.index import built_path, find_entry

    text = os.fspath(spec)
    if Path(text).expanduser().is_file():
        path = Path(text).expanduser()
        if sha256 is not None:
            verify_file(path, sha256, what=str(path))
        return path
    if _is_url(text):
        return download(text, sha256=sha256, progress=progress)
    entry = find_entry(text, index)
    if entry is None:
        raise FileNotFoundError(
            f"load_pretrained: {text!r} is no file, no http(s)/file: URL and no name in the checkpoint index "
            "(`facezoo zoo list` shows the names)"
        )
    if entry.url is not None:
        return download(entry.resolved_url(), sha256=sha256 or entry.sha256, progress=progress)
    path = built_path(entry.name)
    if not path.is_file():
        minutes = (entry.build or {}).get("minutes")
        took = f" (about {minutes} CPU minutes)" if minutes else ""
        raise FileNotFoundError(
            f"load_pretrained: {entry.name} is built on your machine, not downloaded: run "
            f"`facezoo zoo build {entry.name}`{took}; it writes {path}"
        )
    from facezoo.hub.card import read_card

    card = read_card(path)
    verify_file(path, sha256 or (card or {}).get("sha256"), what=str(path))
    return path


def load_pretrained(
    spec: str | os.PathLike[str],
    sha256: str | None = None,
    *,
    morphable_model: str | None = None,
    map_location: str = "cpu",
    index: str | Path | None = None,
    progress: bool = True,
):
    """A pretrained facezoo model, ready to run: the LightningModule in eval mode, morphable model rebuilt.

    Args:
        spec: a name of the checkpoint index (``facezoo zoo list``), a local checkpoint path, or an
            ``http(s)://`` / ``file:`` URL (downloaded once into ``$FACEZOO_HOME``, else the user's cache
            folder, with a progress bar, written atomically, resumed when interrupted).
        sha256: the expected sha256 (hex); an index entry brings its own. A mismatch removes a downloaded
            file and raises.
        morphable_model: replaces the checkpoint's morphable model spec (e.g. where you keep the converted
            ``bfm09_deep3d.h5``); by default the one it was trained with, relative to the current folder.
        map_location: device of the returned module.
        index: another index file (default: the packaged ``zoo/index.yaml``).
        progress: show the download's progress bar.

    Returns:
        The method (a :class:`facezoo.methods.FaceMethod`) in eval mode.

    Raises:
        FileNotFoundError: unknown name, missing file, a built entry not built yet, or a licensed morphable
            model file that is not there (the message says how to convert it).
        ValueError: sha256 mismatch, a file that is no facezoo checkpoint, or keys that do not fit.

    Example:
        >>> model = facezoo.load_pretrained("deep3d.synthetic-demo")  # doctest: +SKIP
        >>> rec = model.reconstruct({"image": images})                # doctest: +SKIP
    """
    from facezoo.hub.checkpoint import load_checkpoint_module

    method = None
    if not Path(os.fspath(spec)).expanduser().is_file() and not _is_url(os.fspath(spec)):
        from facezoo.hub.index import find_entry

        entry = find_entry(os.fspath(spec), index)
        method = entry.method if entry is not None else None
    path = resolve_checkpoint(spec, sha256, index=index, progress=progress)
    return load_checkpoint_module(
        path, morphable_model=morphable_model, method=method, map_location=map_location
    )
