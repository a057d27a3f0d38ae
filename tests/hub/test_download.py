"""Downloads into the cache from a loopback HTTP server: once, verified, atomic, resumable, offline-safe."""

from __future__ import annotations

import hashlib
import os

import pytest

from facezoo.hub.download import cache_dir, download, hash_prefix

PAYLOAD = os.urandom(300_000)  # several 1 MiB-chunk-free reads; big enough to cut in the middle
SHA = hashlib.sha256(PAYLOAD).hexdigest()
NAME = f"model-{SHA[:8]}.ckpt"


def test_cache_dir_follows_facezoo_home_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEZOO_HOME", str(tmp_path / "fz"))
    assert cache_dir() == tmp_path / "fz"
    monkeypatch.delenv("FACEZOO_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert cache_dir() == tmp_path / "xdg" / "facezoo"


def test_download_once_then_cache_hit_and_offline(http_server, facezoo_home):
    url = http_server.add(NAME, PAYLOAD)
    path = download(url, sha256=SHA, progress=False)
    assert path == facezoo_home / "checkpoints" / NAME
    assert path.read_bytes() == PAYLOAD
    assert not path.with_name(NAME + ".part").exists()
    assert len(http_server.requests) == 1
    assert download(url, sha256=SHA, progress=False) == path  # cache hit: no second request
    assert len(http_server.requests) == 1
    http_server.stop()  # offline with a warm cache
    assert download(url, sha256=SHA, progress=False).read_bytes() == PAYLOAD


def test_cold_cache_offline_is_a_clear_error(http_server, facezoo_home):
    url = http_server.add(NAME, PAYLOAD)
    http_server.stop()
    with pytest.raises(OSError, match="cannot connect"):
        download(url, sha256=SHA, progress=False)
    assert not (facezoo_home / "checkpoints" / NAME).exists()


def test_sha256_mismatch_refuses_and_removes(http_server, facezoo_home):
    url = http_server.add(NAME, PAYLOAD)
    wrong = "0" * 64
    with pytest.raises(ValueError, match=f"expected {wrong}, got {SHA}"):
        download(url, sha256=wrong, progress=False)
    assert list((facezoo_home / "checkpoints").iterdir()) == []  # neither the file nor its .part


def test_name_prefix_is_checked_without_an_explicit_sha256(http_server, facezoo_home):
    url = http_server.add("model-deadbeef.ckpt", PAYLOAD)
    assert hash_prefix("model-deadbeef.ckpt") == "deadbeef" != SHA[:8]
    with pytest.raises(ValueError, match="carries deadbeef"):
        download(url, progress=False)
    assert list((facezoo_home / "checkpoints").iterdir()) == []
    assert download(http_server.add(NAME, PAYLOAD), progress=False).read_bytes() == PAYLOAD


def test_truncated_download_is_kept_as_part_and_resumed(http_server, facezoo_home):
    url = http_server.add(NAME, PAYLOAD, mode="cut")
    http_server.cut_at[f"/{NAME}"] = 100_000
    with pytest.raises(OSError, match="run the same command again to resume"):
        download(url, sha256=SHA, progress=False)
    final = facezoo_home / "checkpoints" / NAME
    part = final.with_name(NAME + ".part")
    assert not final.exists()  # never a partial file under the final name
    assert part.read_bytes() == PAYLOAD[:100_000]
    http_server.mode[f"/{NAME}"] = "ok"  # the connection is back
    assert download(url, sha256=SHA, progress=False).read_bytes() == PAYLOAD
    assert http_server.requests[-1] == (f"/{NAME}", "bytes=100000-")  # resumed, not restarted
    assert not part.exists()


def test_interrupted_twice_then_resumed(http_server, facezoo_home):
    url = http_server.add(NAME, PAYLOAD, mode="cut")
    for cut in (50_000, 200_000):
        http_server.cut_at[f"/{NAME}"] = cut
        with pytest.raises(OSError):
            download(url, sha256=SHA, progress=False)
    http_server.mode[f"/{NAME}"] = "ok"
    assert download(url, sha256=SHA, progress=False).read_bytes() == PAYLOAD
    assert [r for _, r in http_server.requests] == [None, "bytes=50000-", "bytes=200000-"]


def test_server_without_ranges_restarts_cleanly(http_server, facezoo_home):
    url = http_server.add(NAME, PAYLOAD, mode="norange")
    part = facezoo_home / "checkpoints" / (NAME + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1234)  # a stale partial file (not even a prefix of the payload)
    assert download(url, sha256=SHA, progress=False).read_bytes() == PAYLOAD
    assert http_server.requests == [(f"/{NAME}", "bytes=1234-")]  # asked to resume, got 200: rewrote


def test_wrong_partial_file_fails_the_hash_and_the_next_try_is_fresh(http_server, facezoo_home):
    url = http_server.add(NAME, PAYLOAD)
    part = facezoo_home / "checkpoints" / (NAME + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"y" * 1000)  # resumable by the server, but not our file's prefix
    with pytest.raises(ValueError, match="sha256 mismatch"):
        download(url, sha256=SHA, progress=False)
    assert not part.exists()
    assert download(url, sha256=SHA, progress=False).read_bytes() == PAYLOAD


def test_corrupt_cached_copy_is_fetched_again(http_server, facezoo_home):
    url = http_server.add(NAME, PAYLOAD)
    path = download(url, sha256=SHA, progress=False)
    path.write_bytes(PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 0xFF]))  # bit rot in the cache
    assert download(url, sha256=SHA, progress=False).read_bytes() == PAYLOAD
    assert len(http_server.requests) == 2


def test_file_urls_and_local_paths(tmp_path, facezoo_home):
    src = tmp_path / NAME
    src.write_bytes(PAYLOAD)
    assert download(src.as_uri(), sha256=SHA, progress=False).read_bytes() == PAYLOAD
    other = download(str(src), dest=tmp_path / "copy.ckpt", sha256=SHA, progress=False)
    assert other.read_bytes() == PAYLOAD
    with pytest.raises(FileNotFoundError, match="no such file"):
        download((tmp_path / "missing-00000000.ckpt").as_uri(), progress=False)


def test_http_errors_are_named(http_server, facezoo_home):
    with pytest.raises(OSError, match="HTTP 404"):
        download(f"{http_server.url}/nothing-here.ckpt", progress=False)
    with pytest.raises(ValueError, match="64 hex digits"):
        download(f"{http_server.url}/{NAME}", sha256="abc", progress=False)
