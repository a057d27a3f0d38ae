"""Shared data utilities: sample/batch types, landmark formats, face alignment & cropping, augmentations,
DDP-aware samplers and HDF5 shards. See docs/architecture.md "Samples and batches"."""

from facezoo.data.align import (
    DEEP3D_LM5_TEMPLATE,
    angles_300wlp,
    compose_affine,
    crop_pose_300wlp,
    deep3d_affine,
    estimate_similarity,
    flip_pose_300wlp,
    invert_affine,
    landmark_box,
    landmark_box_affine,
    load_deep3d_reference,
    pos_fit,
    project_300wlp,
    rotation_300wlp,
    transform_points,
    unproject_300wlp,
    warp_image,
)
from facezoo.data.augment import Augment, ColorJitter, hflip_sample, random_box_shift
from facezoo.data.io import BadSampleError, FaceDataset, ReportingDataLoader, load_image
from facezoo.data.landmarks import (
    IBUG68_FLIP,
    LANDMARKS5_FLIP,
    landmarks68_to_5,
    read_3ddfa_mat,
    read_300wlp_landmarks,
    read_landmark_file,
    read_pts,
    read_txt_points,
    read_vggface2_boxes,
    read_vggface2_landmarks,
    read_vggface2_meta,
)
from facezoo.data.sample import SAMPLE_KEYS, Batch, Sample, collate, stack_views
from facezoo.data.samplers import (
    IdentityBalancedSampler,
    MixtureSampler,
    ShardedRandomSampler,
    sir_probabilities,
)
from facezoo.data.shards import ShardDataset, ShardError, ShardWriter, read_manifest

__all__ = [
    "DEEP3D_LM5_TEMPLATE",
    "IBUG68_FLIP",
    "LANDMARKS5_FLIP",
    "SAMPLE_KEYS",
    "Augment",
    "BadSampleError",
    "Batch",
    "ColorJitter",
    "FaceDataset",
    "IdentityBalancedSampler",
    "MixtureSampler",
    "ReportingDataLoader",
    "Sample",
    "ShardDataset",
    "ShardError",
    "ShardWriter",
    "ShardedRandomSampler",
    "angles_300wlp",
    "collate",
    "stack_views",
    "compose_affine",
    "crop_pose_300wlp",
    "deep3d_affine",
    "estimate_similarity",
    "flip_pose_300wlp",
    "hflip_sample",
    "invert_affine",
    "landmark_box",
    "landmark_box_affine",
    "landmarks68_to_5",
    "load_deep3d_reference",
    "load_image",
    "pos_fit",
    "project_300wlp",
    "random_box_shift",
    "read_300wlp_landmarks",
    "read_3ddfa_mat",
    "read_landmark_file",
    "read_manifest",
    "read_pts",
    "read_txt_points",
    "read_vggface2_boxes",
    "read_vggface2_landmarks",
    "read_vggface2_meta",
    "rotation_300wlp",
    "sir_probabilities",
    "transform_points",
    "unproject_300wlp",
    "warp_image",
    "yaw_bucket",
]


def __getattr__(name: str):
    # The AFLW2000-3D yaw buckets belong to the metric (facezoo.metrics.yaw_bucket); re-exported here lazily
    # so that importing facezoo.data does not import torchmetrics.
    if name == "yaw_bucket":
        from facezoo.metrics.landmark_nme import yaw_bucket

        return yaw_bucket
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
