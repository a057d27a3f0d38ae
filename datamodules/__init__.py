"""LightningDataModules, installed as :mod:`facezoo.datamodules` (docs/architecture.md, "Samples").

Every datamodule yields :class:`facezoo.data.Sample` dicts collated by :func:`facezoo.data.collate`, reads its
dataset either in the distributed layout (``root``) or from HDF5 shards written by ``facezoo prepare``
(``shards``), and takes its options as typed ``__init__`` arguments so that YAML configs can set them
(``data: {class_path: facezoo.datamodules.W300LP, init_args: {root: ..., mode: triplet}}``).
Training samplers shard across DDP ranks without duplicates; evaluation loaders may repeat a few samples under
DDP (see :mod:`facezoo.data.samplers`).
"""

from facezoo.datamodules._base import FaceDataModule, crop_face
from facezoo.datamodules.aflw2000 import AFLW2000, AFLW2000Dataset
from facezoo.datamodules.image_folder import ImageFolder, ImageFolderDataset
from facezoo.datamodules.micc import MICC, MICCDataset, read_micc_annotations
from facezoo.datamodules.mixture import Mixture
from facezoo.datamodules.multipie import MultiPIE, MultiPIEDataset
from facezoo.datamodules.pairs import LFWPairs, PairsDataset, SyntheticPairs, read_pairs
from facezoo.datamodules.synthetic import SyntheticFaces
from facezoo.datamodules.synthetic_identities import SyntheticIdentities
from facezoo.datamodules.vggface2 import VGGFace2, VGGFace2Dataset
from facezoo.datamodules.w300lp import W300LP, W300LPDataset

__all__ = [
    "AFLW2000",
    "AFLW2000Dataset",
    "FaceDataModule",
    "ImageFolder",
    "ImageFolderDataset",
    "LFWPairs",
    "MICC",
    "MICCDataset",
    "Mixture",
    "MultiPIE",
    "MultiPIEDataset",
    "PairsDataset",
    "SyntheticFaces",
    "SyntheticIdentities",
    "SyntheticPairs",
    "VGGFace2",
    "VGGFace2Dataset",
    "W300LP",
    "W300LPDataset",
    "crop_face",
    "read_micc_annotations",
    "read_pairs",
]
