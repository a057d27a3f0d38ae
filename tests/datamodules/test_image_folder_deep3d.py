"""ImageFolder's Deep3DFace crop at other sizes (scale consistent with the focal length) and its jitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facezoo.datamodules import ImageFolder, ImageFolderDataset
from PIL import Image

from facezoo.data.align import DEEP3D_LM5_TEMPLATE, invert_affine, transform_points


def perspective_projection(points_dm: np.ndarray, size: int) -> np.ndarray:
    """Deep3DFace's camera at t = 0, written out: focal 1015 px at 224 (scaled with the crop), principal
    point at the centre, camera 10 dm from the origin, image y down."""
    f, c = 1015.0 * size / 224.0, size / 2.0
    depth = 10.0 - points_dm[:, 2]
    return np.stack([c + f * points_dm[:, 0] / depth, c - f * points_dm[:, 1] / depth], axis=1)


@pytest.fixture
def face_folder(tmp_path):
    """A 300x300 image whose five points are the Deep3DFace template seen at t = 0 in a 224 crop, moved by
    (40, 30) and enlarged x1.2 about the origin."""
    lm = perspective_projection(np.array(DEEP3D_LM5_TEMPLATE), 224) * 1.2 + np.array([40.0, 30.0])
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(
        tmp_path / "face.png"
    )
    np.savetxt(tmp_path / "face.txt", lm, delimiter="\t")
    return tmp_path


@pytest.mark.parametrize("size", [112, 256])
def test_deep3d_crop_matches_the_focal_length_at_other_sizes(face_folder, size):
    ref = ImageFolderDataset(face_folder, image_size=224)[0]["landmarks5"].double().numpy()
    got = ImageFolderDataset(face_folder, image_size=size)[0]["landmarks5"].double().numpy()
    # the crop scales with the size, about the corner (the crop centre maps to the centre)
    np.testing.assert_allclose(got, ref * size / 224.0, atol=1e-3)
    # and it agrees with Deep3DFace's camera at this size: the template at t = 0 lands on its projection
    # (POS is weak-perspective with 102 px / dm against 1015 / 10 = 101.5: well under a pixel at 224)
    expect = perspective_projection(np.array(DEEP3D_LM5_TEMPLATE), size)
    assert np.abs(got - expect).max() < 1.0 * size / 224.0
    # the former behaviour (102 px per unit at every size) kept the 224 crop's face size: off by pixels
    former = ref - 112.0 + size / 2.0
    assert np.abs(former - expect).max() > 3.0


def test_training_jitter_keeps_image_landmarks_and_affine_consistent(face_folder):
    plain = ImageFolderDataset(face_folder, image_size=64)[0]
    torch.manual_seed(0)
    ds = ImageFolderDataset(face_folder, image_size=64, jitter=(3.0, 0.1, 10.0))
    lm_orig = transform_points(
        plain["landmarks5"][None].double(), invert_affine(plain["affine"][None].double())
    )
    moved = []
    for _ in range(8):
        s = ds[0]
        a = s["affine"][None].double()
        # the landmarks are the original points under the sample's affine
        torch.testing.assert_close(
            transform_points(lm_orig, a)[0], s["landmarks5"].double(), atol=1e-4, rtol=0
        )
        # a similarity within the official ranges relative to the plain crop
        rel = a[0, :, :2] @ torch.linalg.inv(plain["affine"].double()[:, :2])
        k = float(torch.linalg.det(rel).sqrt())
        angle = float(torch.rad2deg(torch.atan2(rel[1, 0], rel[0, 0])))
        assert 0.9 - 1e-6 <= k <= 1.1 + 1e-6 and abs(angle) <= 10 + 1e-6
        moved.append(float((s["landmarks5"] - plain["landmarks5"]).abs().max()))
    assert max(moved) > 0.5  # it does move
    dm = ImageFolder(root=str(face_folder), image_size=64, batch_size=1, num_workers=0, shift_pixels=3)
    assert (
        dm.raw_dataset("train", True).jitter == (3, 0.0, 0.0) and dm.raw_dataset("val", False).jitter is None
    )
    with pytest.raises(ValueError, match="scale_delta"):
        ImageFolder(root=str(face_folder), scale_delta=1.5)
