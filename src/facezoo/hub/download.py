"""Checkpoint files into the cache: once, verified, atomically, resumable.

The cache is ``$FACEZOO_HOME`` when set, else the user's cache folder (``$XDG_CACHE_HOME/facezoo``, else
``~/.cache/facezoo``; ``~/Library/Caches/facezoo`` on macOS, ``%LOCALAPPDATA%/facezoo`` on Windows);
checkpoints live in its ``checkpoints/`` folder under the file name of their URL (which carries
``-<sha256[:8]>`` as torch.hub's names do).

A download goes to ``<name>.part`` beside its destination and is renamed into place only after its sha256 was
checked, so a crash, a full disk or a killed process never leaves a file under the final name. A ``.part``
left by an interrupted transfer is resumed with an HTTP ``Range`` request; a server that ignores ranges (200
instead of 206) restarts it from byte 0. A wrong sha256 removes the file and raises. A file already in the
cache is verified and used without any network access (offline with a warm cache).

Nothing here runs unless a user asks for a download (``facezoo zoo download``, ``load_pretrained``): facezoo
fetches nothing by itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

__all__ = ["cache_dir", "download", "file_sha256", "filename_from_url", "hash_prefix", "verify_file"]

CHUNK = 1 << 20
#: torch.hub's convention: ``name-<first 8+ hex digits of the sha256>.ext``
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.")


def cache_dir() -> Path:
    """facezoo's cache folder (created on first use by the functions that write to it).

    Example:
        >>> import os; os.environ["FACEZOO_HOME"] = "/tmp/fz-doc"
        >>> str(cache_dir())
        '/tmp/fz-doc'
        >>> del os.environ["FACEZOO_HOME"]
    """
    home = os.environ.get("FACEZOO_HOME")
    if home:
        return Path(home).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "facezoo"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "facezoo"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facezoo"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, hex (read in 1 MiB chunks).

    Example:
        >>> import tempfile; f = tempfile.NamedTemporaryFile(delete=False); _ = f.write(b"abc"); f.close()
        >>> file_sha256(f.name)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_prefix(name: str) -> str | None:
    """The sha256 prefix a file name carries (``deep3d-1a2b3c4d.ckpt`` -> ``1a2b3c4d``), or None.

    Example:
        >>> hash_prefix("deep3d.demo-0123abcd.ckpt"), hash_prefix("epoch_20.pth")
        ('0123abcd', None)
    """
    match = _HASH_IN_NAME.search(Path(name).name)
    return match.group(1) if match else None


def filename_from_url(url: str) -> str:
    """The cache file name of ``url`` (its last path component).

    Example:
        >>> filename_from_url("https://example.org/zoo/deep3d-0123abcd.ckpt?x=1")
        'deep3d-0123abcd.ckpt'
    """
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name:
        raise ValueError(f"url {url!r}: names no file (expected .../<name>.ckpt)")
    return name


def _check_sha256(sha256: str | None, what: str) -> str | None:
    if sha256 is None:
        return None
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"{what}: sha256 must be 64 hex digits, got {sha256!r}")
    return sha256.lower()


def verify_file(path: str | os.PathLike[str], sha256: str | None, what: str = "checkpoint") -> str:
    """Check ``path`` against ``sha256`` (and, without one, against the prefix its name carries); return its
    actual sha256.

    Raises:
        ValueError: a mismatch (the message gives both digests). The file is left in place: the caller
            decides (the cache removes it).
    """
    expected = _check_sha256(sha256, what)
    actual = file_sha256(path)
    prefix = hash_prefix(str(path))
    if expected is not None and actual != expected:
        raise ValueError(f"{what}: sha256 mismatch for {path}: expected {expected}, got {actual}")
    if expected is None and prefix is not None and not actual.startswith(prefix):
        raise ValueError(
            f"{what}: sha256 mismatch for {path}: its name carries {prefix}, its content hashes to {actual}"
        )
    return actual


def download(
    url: str,
    dest: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` into ``dest`` (default: ``cache_dir()/checkpoints/<file name of url>``) unless a verified
    copy is there already; return ``dest``.

    Args:
        url: ``http(s)://...``, ``file:...`` or a local path (copied, verified the same way).
        dest: where the file goes.
        sha256: the expected sha256 (hex). Without it the sha256 prefix in the file name, when it carries one,
            is checked; a name without one is accepted (the digest is printed so it can be pinned).
        progress: a tqdm bar on stderr.
        timeout: seconds to wait for the server per request.

    Raises:
        ValueError: sha256 mismatch (the downloaded file is removed) or a bad ``sha256`` argument.
        OSError: the server or the file is unreachable, or the transfer was cut short (the partial file is
            kept as ``<dest>.part`` and the next call resumes it).
    """
    sha256 = _check_sha256(sha256, url)
    dest = Path(dest) if dest is not None else cache_dir() / "checkpoints" / filename_from_url(url)
    if dest.is_file():
        try:
            verify_file(dest, sha256, what=str(dest))
            return dest
        except ValueError:
            dest.unlink()  # a corrupt cached copy: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    scheme = urllib.parse.urlparse(url).scheme
    if scheme in ("http", "https"):
        _http_get(url, part, progress, timeout)
    else:
        source = (
            Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path)) if scheme == "file" else url
        )
        source = Path(source).expanduser()
        if not source.is_file():
            raise FileNotFoundError(f"{url}: no such file")
        shutil.copyfile(source, part)
    try:
        actual = verify_file(part, sha256, what=url)
    except ValueError:
        part.unlink()
        raise
    if sha256 is None and hash_prefix(dest.name) is None:
        print(f"facezoo: {dest.name}: sha256 {actual} (pin it with --sha256)", file=sys.stderr)
    os.replace(part, dest)  # atomic on one file system: the name appears only for a verified file
    return dest


def _http_get(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Download ``url`` into ``part``, resuming an existing partial file when the server allows it."""
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "facezoo"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # our partial file is no prefix the server knows: start again
            part.unlink()
            return _http_get(url, part, progress, timeout)
        raise OSError(f"{url}: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise OSError(f"{url}: cannot connect ({err.reason})") from err
    with response:
        resumed = have > 0 and response.status == 206 and _range_start(response) == have
        if not resumed:
            have = 0  # 200: the server sends the whole file; restart cleanly
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        received = have
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=part.name[: -len(".part")], disable=not progress, file=sys.stderr) as bar,
        ):  # fmt: skip
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, ValueError) as err:  # IncompleteRead, reset connection, timeout
                    raise OSError(
                        f"{url}: transfer interrupted after {received} bytes ({type(err).__name__}); run the "
                        f"same command again to resume ({part} is kept)"
                    ) from err
                if not block:
                    break
                out.write(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received != total:
        raise OSError(
            f"{url}: truncated download ({received} of {total} bytes); run the same command again to resume "
            f"({part} is kept)"
        )


def _range_start(response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None
