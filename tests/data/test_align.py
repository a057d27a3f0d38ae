import math

import numpy as np
import pytest
import torch

from facezoo.data import align, read_3ddfa_mat, yaw_bucket
from facezoo.geometry import camera_from_300wlp


def _pos_reference(xp, x):
    """Deep3DFace's POS (util/preprocess.py), verbatim in numpy."""
    npts = xp.shape[1]
    A = np.zeros([2 * npts, 8])
    A[0 : 2 * npts - 1 : 2, 0:3] = x.transpose()
    A[0 : 2 * npts - 1 : 2, 3] = 1
    A[1 : 2 * npts : 2, 4:7] = x.transpose()
    A[1 : 2 * npts : 2, 7] = 1
    b = np.reshape(xp.transpose(), [2 * npts, 1])
    k, _, _, _ = np.linalg.lstsq(A, b, rcond=None)
    s = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2
    return np.stack([k[3], k[7]], axis=0).reshape(2), s


def _rand_similarity(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a, k = torch.rand((), generator=g) * 6.28, 0.5 + torch.rand((), generator=g)
    t = torch.randn(2, generator=g, dtype=torch.float64) * 20
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[[k * c, -k * s, t[0]], [k * s, k * c, t[1]]]], dtype=torch.float64)


def test_pos_matches_deep3dface_and_template_close(shared_data):
    ref = align.load_deep3d_reference(str(shared_data / "bfm_parts/deep3d/similarity_Lm3D_all.mat"))
    for name in ("000002", "015259", "vd006"):
        lm = np.loadtxt(shared_data / f"deep3d_examples/detections/{name}.txt")
        lm_up = lm.copy()
        lm_up[:, 1] = 223 - lm_up[:, 1]
        t_ref, s_ref = _pos_reference(lm_up.T, ref.numpy().T)
        t, s = align.pos_fit(torch.as_tensor(lm)[None], ref)
        assert float(s) == pytest.approx(s_ref, rel=1e-9)
        assert float(t[0, 0]) == pytest.approx(t_ref[0], abs=1e-6)
        assert float(t[0, 1]) == pytest.approx(223 - t_ref[1], abs=1e-6)  # y-down centre
        # the built-in template gives nearly the same crop as the exact BFM file
        a_exact = align.deep3d_affine(torch.as_tensor(lm)[None], ref)
        a_default = align.deep3d_affine(torch.as_tensor(lm)[None])
        assert (
            align.transform_points(torch.as_tensor(lm)[None], a_exact)
            - align.transform_points(torch.as_tensor(lm)[None], a_default)
        ).abs().max() < 6


def test_estimate_similarity_recovers_known_transform():
    pts = torch.randn(1, 7, 2, dtype=torch.float64) * 30
    a = _rand_similarity(3)
    torch.testing.assert_close(align.estimate_similarity(pts, align.transform_points(pts, a)), a)


def test_affine_algebra():
    a, b = _rand_similarity(1), _rand_similarity(2)
    p = torch.randn(1, 5, 2, dtype=torch.float64)
    torch.testing.assert_close(
        align.transform_points(p, align.compose_affine(b, a)),
        align.transform_points(align.transform_points(p, a), b),
    )
    torch.testing.assert_close(
        align.transform_points(align.transform_points(p, a), align.invert_affine(a)), p
    )


def test_landmark_box_affine_box_and_shift():
    lm = torch.tensor([[[10.0, 20.0], [50.0, 100.0], [30.0, 60.0]]], dtype=torch.float64)
    out = align.transform_points(lm, align.landmark_box_affine(lm, 100, scale=1.25))
    assert out[..., 1].min() == pytest.approx(10.0) and out[..., 1].max() == pytest.approx(90.0)
    assert (out[..., 0].min() + out[..., 0].max()) / 2 == pytest.approx(50.0)
    shifted = align.transform_points(
        lm, align.landmark_box_affine(lm, 100, 1.25, shift=torch.tensor([[0.05, -0.05]]))
    )
    torch.testing.assert_close(shifted - out, torch.tensor([-5.0, 5.0], dtype=torch.float64).expand_as(out))


@pytest.mark.parametrize("seed", [0, 1])
def test_warp_image_moves_a_dot_to_the_transformed_point(seed):
    img = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    img[0, 0, 20:23, 40:43] = 1.0  # 3x3 block centred on pixel (41, 21) -> facezoo point (41.5, 21.5)
    a = _rand_similarity(seed)
    a[:, :, :2] = a[:, :, :2] / torch.linalg.det(a[:, :, :2]).sqrt()[:, None, None] * 1.5
    centre = torch.tensor([[[41.5, 21.5]]], dtype=torch.float64)
    a[:, :, 2] += 48 - align.transform_points(centre, a)[0, 0]  # put the dot near the crop centre
    out = align.warp_image(img, a, 96)[0, 0]
    ys, xs = torch.meshgrid(torch.arange(96) + 0.5, torch.arange(96) + 0.5, indexing="ij")
    com = torch.stack([(out * xs).sum() / out.sum(), (out * ys).sum() / out.sum()])
    torch.testing.assert_close(com, align.transform_points(centre, a)[0, 0], atol=0.05, rtol=0)


def test_warp_image_integer_crop_equals_slicing():
    img = torch.rand(1, 3, 40, 50)
    a = torch.tensor([[[1.0, 0.0, -7.0], [0.0, 1.0, -5.0]]], dtype=torch.float64)
    torch.testing.assert_close(align.warp_image(img, a, (20, 30)), img[:, :, 5:25, 7:37])


def test_euler_round_trip():
    angles = (torch.rand(50, 3, dtype=torch.float64) - 0.5) * torch.tensor(
        [3.0, 3.0, 6.0], dtype=torch.float64
    )
    rot = align.rotation_300wlp(angles)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3))
    torch.testing.assert_close(align.angles_300wlp(rot), angles)


def test_crop_pose_rejects_non_similarity():
    with pytest.raises(ValueError, match="similarity"):
        align.crop_pose_300wlp(torch.zeros(1, 7), torch.tensor([[[2.0, 0, 0], [0, 1.0, 0]]]), 100, 100)


def test_flip_pose_matches_mirrored_points():
    v = torch.randn(1, 10, 3, dtype=torch.float64) * 50000
    pose = torch.tensor([[0.2, -0.4, 0.1, 200.0, 210.0, 5.0, 1e-3]], dtype=torch.float64)
    img = align.project_300wlp(v, pose, 450)
    flipped = align.project_300wlp(
        v * torch.tensor([-1.0, 1, 1], dtype=torch.float64), align.flip_pose_300wlp(pose, 450), 450
    )
    torch.testing.assert_close(flipped[..., 0], 450 - img[..., 0])
    torch.testing.assert_close(flipped[..., 1:], img[..., 1:])


def test_yaw_buckets():
    assert yaw_bucket(torch.tensor([0.0, -30.0, 30.1, -59.0, 61.0, 95.0])).tolist() == [0, 0, 1, 1, 2, 2]


def test_crop_transform_on_real_aflw2000(shared_data):
    """The cropped ground-truth pose projects the same 3D points to the cropped pt3d_68 (x, y), and so does
    the
    geometry core's camera_from_300wlp (always checked: an ImportError fails the test)."""
    for name in ("image00050", "image00475", "image02283"):
        mat = read_3ddfa_mat(shared_data / f"aflw2000_3d/{name}.mat")
        pose = torch.as_tensor(mat["pose"])[None]
        pt3d = torch.as_tensor(mat["pt3d_68"])[None]
        v = align.unproject_300wlp(pt3d, pose, 450)  # model-space landmark points (raw BFM units)
        torch.testing.assert_close(align.project_300wlp(v, pose, 450), pt3d)
        box = align.landmark_box_affine(pt3d, 256, math.sqrt(2))
        for affine in (box, align.compose_affine(_rand_similarity(7), box)):
            new_pose = align.crop_pose_300wlp(pose, affine, 450, 256)
            assert new_pose[0, 6] == pytest.approx(
                float(pose[0, 6] * torch.linalg.det(affine[0, :, :2]).sqrt())
            )
            expected = align.transform_points(pt3d, affine)
            torch.testing.assert_close(align.project_300wlp(v, new_pose, 256), expected, atol=1e-6, rtol=0)
            cam = camera_from_300wlp(new_pose, 256)
            torch.testing.assert_close(cam.project(v * 1e-3), expected[..., :2], atol=1e-6, rtol=0)
