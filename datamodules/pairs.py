"""Face-verification pairs: LFW ``pairs.txt`` (:class:`LFWPairs`) and rendered (:class:`SyntheticPairs`).

Both yield one sample per pair: ``image [2,3,H,W]`` (the two faces), ``same`` (bool: same identity),
``pair_index`` (position in the protocol list), ``fold`` and ``index``; ``facezoo test`` on them runs the
``"verification"`` protocol (:class:`facezoo.methods.protocols.VerificationProtocol`: 10-fold accuracy on
identity parameters and vertices, Euclidean and cosine distances, as SIR reports).

LFW layout: ``pairs.txt`` starts with a header ``"<folds> <n>"`` (``10 300``), then every fold lists ``n``
same-identity lines ``name i j`` followed by ``n`` different-identity lines ``name1 i name2 j``; image ``i``
of ``name`` is ``<root>/<name>/<name>_<iiii>.jpg`` (4 digits). A one-number header (``pairsDevTrain.txt``:
``1100``) is one block of ``n`` same + ``n`` different pairs. Faces are cropped with Deep3DFace's 5-point
alignment when a landmark file sits beside an image (as :class:`~facezoo.datamodules.ImageFolder`), else as
the central ``center_fraction`` square (LFW's 250x250 images have the face in the middle; 0.6 keeps about
the central 150 px, the usual tight LFW crop).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from facezoo.data.io import FaceDataset, OnBadSample, check_root
from facezoo.data.sample import collate

from ._base import FaceDataModule, batch_keys
from .image_folder import load_face_crop

__all__ = ["LFWPairs", "PairsDataset", "SyntheticPairs", "read_pairs"]

PROVIDES = ("image", "same", "pair_index", "fold", "index")  # what both kinds of pairs have


def read_pairs(path: str | Path) -> tuple[int, list[tuple[str, int, str, int, bool, int]]]:
    """Parse an LFW ``pairs.txt`` -> ``(n_folds, [(name1, i1, name2, i2, same, fold), ...])`` in file order.

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "pairs.txt")
        >>> _ = open(f, "w").write("2 1\\nA 1 2\\nA 1 B 3\\nC 1 2\\nC 2 D 1\\n")
        >>> read_pairs(f)[1][1]
        ('A', 1, 'B', 3, False, 0)
    """
    path = Path(path)
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines or not all(t.isdigit() for t in lines[0]) or len(lines[0]) not in (1, 2):
        raise ValueError(f"{path}: expected a header '<folds> <n>' (LFW: '10 300') or '<n>', got {lines[:1]}")
    head = [int(t) for t in lines[0]]
    folds, n = (head[0], head[1]) if len(head) == 2 else (1, head[0])
    body = lines[1:]
    if len(body) != 2 * folds * n:
        raise ValueError(f"{path}: header says {folds} x (2 x {n}) pairs, found {len(body)} lines")
    pairs = []
    for k, tok in enumerate(body):
        fold, same = k // (2 * n), (k % (2 * n)) < n
        if same and len(tok) == 3:
            pairs.append((tok[0], int(tok[1]), tok[0], int(tok[2]), True, fold))
        elif not same and len(tok) == 4:
            pairs.append((tok[0], int(tok[1]), tok[2], int(tok[3]), False, fold))
        else:
            kind = "'name i j'" if same else "'name1 i name2 j'"
            raise ValueError(f"{path}: line {k + 2}: expected a {kind} pair, got {' '.join(tok)!r}")
    return (folds if len(head) == 2 else 10), pairs


class PairsDataset(FaceDataset):
    """The pairs of an LFW-style ``pairs.txt`` (module docstring)."""

    def __init__(
        self,
        root,
        pairs=None,
        image_size: int = 224,
        center_fraction: float = 0.6,
        on_bad_sample: OnBadSample = "error",
    ):
        super().__init__(on_bad_sample)
        self.root = check_root(root, "LFW-style pairs (images as <root>/<name>/<name>_<NNNN>.jpg)")
        self.n_folds, self.items = read_pairs(Path(pairs) if pairs else self.root / "pairs.txt")
        if not 0 < center_fraction <= 1:
            raise ValueError(f"center_fraction: expected in (0, 1], got {center_fraction}")
        self.image_size, self.center_fraction = image_size, center_fraction

    def image_path(self, name: str, number: int) -> Path:
        return self.root / name / f"{name}_{number:04d}.jpg"

    def load(self, index: int) -> dict:
        n1, i1, n2, i2, same, fold = self.items[index]
        paths = [self.image_path(n1, i1), self.image_path(n2, i2)]
        crops = [load_face_crop(p, self.image_size, self.center_fraction) for p in paths]
        sample = {k: torch.stack([c[k] for c in crops]) for k in ("image", "affine")}
        sample.update(same=torch.tensor(same), pair_index=index, fold=fold, path="|".join(map(str, paths)))
        return sample


class LFWPairs(FaceDataModule):
    """LFW-style verification pairs (evaluation only: ``test``, ``validate``, ``predict`` read the pairs).

    Its own arguments are below; the others are :class:`FaceDataModule`'s (an evaluation set read from
    ``root``: no ``shards``, ``p_flip``, ``p_color``).

    Args:
        pairs: the pairs file (default ``<root>/pairs.txt``).
        center_fraction: central-square crop fraction for images without landmark files.
        batch_size: pairs per batch (per device).
    """

    splits = ("test",)
    protocol = "verification"
    provides = batch_keys(*PROVIDES, "affine", "path")

    def __init__(
        self, pairs: str | None = None, center_fraction: float = 0.6, batch_size: int = 16, **kwargs
    ):
        if kwargs.get("shards") is not None:
            raise ValueError(f"LFWPairs: reads pairs.txt and images from root; shards are not supported "
                             f"(got shards={kwargs['shards']!r})")  # fmt: skip
        super().__init__(batch_size=batch_size, **kwargs)
        self.pairs_file, self.center_fraction = pairs, center_fraction

    def raw_dataset(self, split: str, train: bool) -> PairsDataset:
        return PairsDataset(
            self.root, self.pairs_file, self.image_size, self.center_fraction, self.on_bad_sample
        )

    @property
    def n_folds(self) -> int:
        return self.dataset("test").n_folds


class _SyntheticPairsDataset(Dataset):
    def __init__(self, dm: SyntheticPairs) -> None:
        self.dm = dm

    def __len__(self) -> int:
        return self.dm.num_pairs

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        faces = self.dm.faces.dataset("test")
        n, per = self.dm.num_pairs, self.dm.pairs_per_fold
        out = []
        for k in map(int, indices):
            if not 0 <= k < n:
                raise IndexError(f"SyntheticPairs: index {k} out of range [0, {n})")
            fold, same = k // (2 * per), (k % (2 * per)) < per
            a = faces[k]  # a set of 2 images of identity k
            b = a if same else faces[n + k]  # identity n + k: a different face
            image = torch.stack([a["image"][0], b["image"][1]])
            out.append(
                {"image": image, "same": torch.tensor(same), "pair_index": k, "fold": fold, "index": k,
                 "identity": torch.tensor([a["identity"], b["identity"]])}
            )  # fmt: skip
        return out


class SyntheticPairs(LightningDataModule):
    """Rendered verification pairs with LFW's layout (needs no data; for tests and demos).

    Pair ``k`` of ``num_pairs`` belongs to fold ``k // (2 p)`` (``p = num_pairs / (2 n_folds)``); within a
    fold the first ``p`` pairs are two images of one identity (different expression, pose, light:
    :class:`SyntheticFaces` sets with ``set_mode="identity"``) and the next ``p`` images of two identities.

    Args:
        morphable_model, image_size, id_scale, yaw_range, seed, renderer_backend: as :class:`SyntheticFaces`.
        num_pairs: number of pairs (a multiple of ``2 n_folds``).
        n_folds: protocol folds (10 as LFW).
        batch_size: pairs per batch.
    """

    protocol = "verification"
    provides = batch_keys(*PROVIDES, "identity")
    partial = ()

    def __init__(
        self,
        morphable_model: str = "procedural",
        image_size: int = 224,
        num_pairs: int = 40,
        n_folds: int = 10,
        batch_size: int = 8,
        id_scale: float = 1.0,
        yaw_range: float = 30.0,
        seed: int = 0,
        renderer_backend: str = "auto",
    ) -> None:
        super().__init__()
        if n_folds < 2 or num_pairs < 2 * n_folds or num_pairs % (2 * n_folds):
            raise ValueError(
                f"num_pairs: expected a positive multiple of 2 x n_folds = {2 * n_folds}, got {num_pairs}"
            )
        self.num_pairs, self.n_folds, self.batch_size = int(num_pairs), int(n_folds), int(batch_size)
        self.pairs_per_fold = self.num_pairs // (2 * self.n_folds)
        self._faces_args = dict(
            morphable_model=morphable_model, image_size=image_size, num_test=2 * self.num_pairs,
            set_size=2, set_mode="identity", id_scale=id_scale, yaw_range=yaw_range, seed=seed,
            renderer_backend=renderer_backend,
        )  # fmt: skip
        self._faces = None
        self._dataset = _SyntheticPairsDataset(self)

    @property
    def faces(self):
        """The :class:`SyntheticFaces` that renders the images (built lazily: built inside this ``__init__``,
        its ``save_hyperparameters`` would read our frame's arguments)."""
        if self._faces is None:
            from facezoo.datamodules.synthetic import SyntheticFaces

            self._faces = SyntheticFaces(**self._faces_args)
        return self._faces

    def dataset(self, split: str = "test") -> Dataset:
        return self._dataset

    def _loader(self) -> DataLoader:
        return DataLoader(self._dataset, batch_size=self.batch_size, shuffle=False, collate_fn=collate)

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()
