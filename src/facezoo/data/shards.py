"""HDF5 shards of aligned crops + labels (written by ``facezoo prepare``, read by every datamodule).

Layout of a shard folder::

    manifest.json          {"format": "facezoo-shards/1", "dataset", "split", "count", "keys",
                            "shards": [{"file", "count", "bytes", "sha256", "labels_crc32"}]}
    <split>-00000.h5       datasets: image uint8 [N,(V,)H,W,3] (one chunk per sample), crc32 uint32 [N] of
    each
                           image's bytes, landmarks*/affine/yaw/identity/view/index arrays, params/<name>,
                           path (str)

Verification: on open, every shard listed must exist inside the folder (a manifest entry such as
``../../outside.h5`` is refused) with the listed size and sample count and the same keys (``verify="quick"``,
milliseconds); ``verify="full"`` also recomputes each file's sha256. Each image's crc32 is checked when it is
read, so a flipped bit on disk becomes a :class:`~facezoo.data.io.BadSampleError`, never a wrong sample; the
labels (landmarks, parameters, yaw...) are checked against the crc32 per label array that the manifest
records (``labels_crc32``) when a shard is first read, so labels edited in place are a :class:`ShardError`
(shards written before this check have no such record: a warning says they are unchecked). Files are
opened lazily in each DataLoader worker on first access (an h5py handle must not cross a fork).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facezoo.data.io import BadSampleError, FaceDataset, OnBadSample

FORMAT = "facezoo-shards/1"
SCALARS = {"identity": np.int64, "view": np.int64, "index": np.int64, "yaw": np.float32}


class ShardError(RuntimeError):
    """A shard folder that does not match its manifest."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _labels_crc32(column: Any) -> int:
    """crc32 of a label array's bytes (strings: their UTF-8 bytes joined by NUL)."""
    array = np.asarray(column)
    if array.dtype.kind in "OSU":
        text = [v.decode() if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
        return zlib.crc32("\0".join(text).encode())
    return zlib.crc32(np.ascontiguousarray(array).tobytes())


def sample_to_arrays(sample: dict) -> dict[str, Any]:
    """Flatten a :class:`Sample` into shard fields: image -> uint8 ``[(V,)H,W,3]``,
    params -> ``params/<k>``."""
    out: dict[str, Any] = {}
    for key, value in sample.items():
        if key.startswith("_"):
            continue
        if key == "image":
            img = (value.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
            out["image"] = img.movedim(-3, -1).contiguous().numpy()
        elif key == "params":
            for name, v in value.items():
                out[f"params/{name}"] = v.detach().cpu().float().numpy()
        elif isinstance(value, torch.Tensor):
            out[key] = value.detach().cpu().numpy().astype(np.float64 if key == "affine" else np.float32)
        else:
            out[key] = value
    return out


class ShardWriter:
    """Accumulates samples and writes ``<split>-NNNNN.h5`` shards of ``samples_per_shard`` plus the manifest.

    Example:
        >>> # with ShardWriter(out, "aflw2000", "test") as w: w.add(sample)
    """

    def __init__(self, out_dir: str | Path, dataset: str, split: str, samples_per_shard: int = 1000):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.dataset, self.split, self.per_shard = dataset, split, samples_per_shard
        self.buffer: list[dict[str, Any]] = []
        self.shards: list[dict[str, Any]] = []
        self.keys: list[str] | None = None

    def add(self, sample: dict) -> None:
        arrays = sample_to_arrays(sample)
        if self.keys is None:
            self.keys = sorted(arrays)
        elif sorted(arrays) != self.keys:
            raise ValueError(f"sample keys {sorted(arrays)} differ from the first sample's {self.keys}")
        self.buffer.append(arrays)
        if len(self.buffer) >= self.per_shard:
            self._flush()

    def _flush(self) -> None:
        import h5py

        if not self.buffer:
            return
        name = f"{self.split}-{len(self.shards):05d}.h5"
        path = self.out / name
        labels_crc32 = {}
        with h5py.File(path, "w") as f:
            for key in self.keys or []:
                values = [b[key] for b in self.buffer]
                if key == "path":
                    labels_crc32[key] = _labels_crc32(values)
                if key == "path":
                    f.create_dataset(key, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
                elif key == "image":
                    data = np.stack(values)
                    f.create_dataset(key, data=data, chunks=(1, *data.shape[1:]))
                    f.create_dataset(
                        "crc32", data=np.array([zlib.crc32(v.tobytes()) for v in values], dtype=np.uint32)
                    )
                else:
                    data = np.stack([np.asarray(v, dtype=SCALARS.get(key)) for v in values])
                    f.create_dataset(key, data=data)
                    labels_crc32[key] = _labels_crc32(f[key][()])  # of the bytes as stored (dtype included)
        self.shards.append(
            {"file": name, "count": len(self.buffer), "bytes": path.stat().st_size, "sha256": _sha256(path),
             "labels_crc32": labels_crc32}
        )  # fmt: skip
        self.buffer = []

    def close(self) -> Path:
        """Write the remaining samples and ``manifest.json``; returns the manifest path."""
        self._flush()
        manifest = {
            "format": FORMAT,
            "dataset": self.dataset,
            "split": self.split,
            "count": sum(s["count"] for s in self.shards),
            "keys": self.keys or [],
            "shards": self.shards,
        }
        path = self.out / "manifest.json"
        path.write_text(json.dumps(manifest, indent=1))
        return path

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()


def read_manifest(path: str | Path, verify: str = "quick") -> tuple[Path, dict]:
    """Load and verify a shard folder's manifest (``verify`` in ``"none"|"quick"|"full"``)
    -> (folder, manifest)."""
    import h5py

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise ShardError(f"{mpath}: shard manifest is missing (write shards with `facezoo prepare`)")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as err:
        raise ShardError(f"{mpath}: malformed manifest ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ShardError(f"{mpath}: format {got!r}, expected {FORMAT!r}")
    shards, count = manifest.get("shards"), manifest.get("count")
    if (
        not isinstance(shards, list)
        or not isinstance(count, int)
        or not isinstance(manifest.get("keys"), list)
        or not all(isinstance(s, dict) and isinstance(s.get("file"), str) and isinstance(s.get("count"), int)
                   for s in shards)
    ):  # fmt: skip
        raise ShardError(f"{mpath}: malformed manifest (needs count, keys and shards [{{file, count, ...}}])")
    if sum(s["count"] for s in shards) != count:
        raise ShardError(f"{mpath}: shard counts do not add up to count={count}")
    inside = folder.resolve()
    for shard in shards:
        target = (folder / shard["file"]).resolve()
        if Path(shard["file"]).is_absolute() or inside not in target.parents:
            raise ShardError(
                f"{mpath}: shard entry {shard['file']!r} points outside the shard folder {folder}; refused"
            )
    if verify == "none":
        return folder, manifest
    for shard in manifest["shards"]:
        file = folder / shard["file"]
        if not file.is_file():
            raise ShardError(f"{file}: shard listed in the manifest is missing")
        if file.stat().st_size != shard["bytes"]:
            raise ShardError(
                f"{file}: {file.stat().st_size} bytes, manifest says {shard['bytes']} (truncated/rewritten)"
            )
        try:
            with h5py.File(file, "r") as f:
                n, keys = (
                    len(f["image"]),
                    sorted(k if not isinstance(f[k], h5py.Group) else k for k in _leaf_keys(f)),
                )
        except (OSError, KeyError) as err:
            raise ShardError(f"{file}: unreadable shard ({err})") from err
        if n != shard["count"]:
            raise ShardError(f"{file}: holds {n} samples, manifest says {shard['count']}")
        if sorted(set(keys) - {"crc32"}) != sorted(manifest["keys"]):
            raise ShardError(f"{file}: keys {keys} differ from the manifest's {manifest['keys']}")
        if verify == "full" and _sha256(file) != shard["sha256"]:
            raise ShardError(f"{file}: sha256 mismatch (the file is corrupt)")
    return folder, manifest


def _leaf_keys(f) -> list[str]:
    import h5py

    keys: list[str] = []
    f.visititems(lambda name, obj: keys.append(name) if isinstance(obj, h5py.Dataset) else None)
    return keys


class ShardDataset(FaceDataset):
    """Samples from a shard folder written by :class:`ShardWriter` (lazy, per-worker h5py handles).

    Args:
        path: the shard folder (or its ``manifest.json``).
        verify: ``"quick"`` (counts, sizes, keys), ``"full"`` (plus sha256) or ``"none"``.
        transform: optional callable on each sample (augmentation).
        on_bad_sample: ``"error"`` or ``"skip"`` (a crc32 mismatch is a bad sample).
    """

    def __init__(
        self, path: str | Path, verify: str = "quick", transform=None, on_bad_sample: OnBadSample = "error"
    ):
        super().__init__(on_bad_sample)
        self.folder, self.manifest = read_manifest(path, verify)
        self.items = [(i, j) for i, s in enumerate(self.manifest["shards"]) for j in range(s["count"])]
        self.transform = transform
        self._handles: dict[int, Any] = {}
        self._pid: int | None = None

    @property
    def labels(self) -> list[int]:
        """``identity`` of every sample, read from the shards without decoding images (for P x K sampling)."""
        import h5py

        if "identity" not in self.manifest["keys"]:
            raise KeyError(f"{self.folder}: the shards have no identity labels")
        out: list[int] = []
        for s in self.manifest["shards"]:
            with h5py.File(self.folder / s["file"], "r") as f:
                out.extend(int(v) for v in f["identity"][:])
        return out

    def _file(self, shard: int):
        """The shard's h5py handle and its labels (read whole once: one small read instead of one per key
        per sample, which dominated the per-sample cost)."""
        import h5py

        if self._pid != os.getpid():  # first access in this process (worker): never reuse a parent's handle
            self._handles, self._pid = {}, os.getpid()
        if shard not in self._handles:
            entry = self.manifest["shards"][shard]
            f = h5py.File(self.folder / entry["file"], "r")
            labels = {key: f[key][()] for key in self.manifest["keys"] if key != "image"}
            self._check_labels(entry, labels)
            self._handles[shard] = (f, labels, f["crc32"][()])
        return self._handles[shard]

    def _check_labels(self, entry: dict, labels: dict) -> None:
        """Compare each label array with the crc32 recorded at ``facezoo prepare`` time."""
        file = self.folder / entry["file"]
        expected = entry.get("labels_crc32")
        if expected is None:
            warnings.warn(
                f"{file}: written by an older facezoo without label checksums; its labels are not verified "
                "(re-run `facezoo prepare` to add them)",
                stacklevel=3,
            )
            return
        changed = [k for k, v in labels.items() if k in expected and _labels_crc32(v) != int(expected[k])]
        missing = [k for k in labels if k not in expected]
        if changed or missing:
            raise ShardError(
                f"{file}: labels {changed + missing} do not match the checksums recorded in the manifest "
                "(edited or corrupt after `facezoo prepare`); re-run `facezoo prepare`"
            )

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, None
        return state

    def load(self, index: int) -> dict:
        shard, row = self.items[index]
        f, labels, crc32 = self._file(shard)
        image = f["image"][row]
        if zlib.crc32(image.tobytes()) != int(crc32[row]):
            raise BadSampleError(
                f"{self.folder / self.manifest['shards'][shard]['file']}[{row}]",
                "image crc32 mismatch (corrupt shard)",
            )
        # uint8 HWC -> CHW contiguous *before* the float conversion (4x fewer bytes to shuffle)
        chw = torch.from_numpy(image).movedim(-1, -3).contiguous()
        sample: dict[str, Any] = {"image": chw.float().mul_(1.0 / 255.0)}
        for key, column in labels.items():
            value = column[row]
            if key == "path":
                sample[key] = value.decode() if isinstance(value, bytes) else str(value)
            elif key.startswith("params/"):
                sample.setdefault("params", {})[key[7:]] = torch.from_numpy(np.asarray(value))
            elif key in SCALARS:
                sample[key] = float(value) if key == "yaw" else int(value)
            else:
                sample[key] = torch.from_numpy(np.asarray(value))
        return self.transform(sample) if self.transform is not None else sample
