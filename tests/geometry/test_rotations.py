"""Rotations against scipy, literal re-implementations of face3d / 3DDFA / Deep3DFace, and gradcheck."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from facezoo.geometry import rotations as rot


def _angles(n=16, seed=0, max_yaw=1.4):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * math.pi * 0.95
    a[:, 1] = a[:, 1] / math.pi * max_yaw
    return a


def _face3d_angle2matrix_3ddfa(x, y, z):
    """Literal copy of face3d's angle2matrix_3ddfa (= 3DDFA's MATLAB RotationMatrix), radians."""
    c, s = np.cos, np.sin
    rx = np.array([[1, 0, 0], [0, c(x), s(x)], [0, -s(x), c(x)]])
    ry = np.array([[c(y), 0, -s(y)], [0, 1, 0], [s(y), 0, c(y)]])
    rz = np.array([[c(z), s(z), 0], [-s(z), c(z), 0], [0, 0, 1]])
    return rx.dot(ry).dot(rz)


def _face3d_angle2matrix(x, y, z):
    """Literal copy of face3d's angle2matrix (it takes degrees; here radians)."""
    c, s = np.cos, np.sin
    rx = np.array([[1, 0, 0], [0, c(x), -s(x)], [0, s(x), c(x)]])
    ry = np.array([[c(y), 0, s(y)], [0, 1, 0], [-s(y), 0, c(y)]])
    rz = np.array([[c(z), -s(z), 0], [s(z), c(z), 0], [0, 0, 1]])
    return rz.dot(ry.dot(rx))


def test_zyx_matches_scipy_and_face3d():
    a = _angles()
    r = rot.euler_to_matrix(a)
    ref = Rotation.from_euler("xyz", a.numpy()).as_matrix()
    np.testing.assert_allclose(r.numpy(), ref, atol=1e-12)
    for i in range(len(a)):
        np.testing.assert_allclose(r[i].numpy(), _face3d_angle2matrix(*a[i].tolist()), atol=1e-12)
    for alias in ("facezoo", "face3d", "deep3d"):
        torch.testing.assert_close(rot.euler_to_matrix(a, alias), r)


def test_3ddfa_is_transpose_and_matches_literal_code():
    a = _angles()
    r = rot.euler_to_matrix(a, "3ddfa")
    torch.testing.assert_close(r, rot.euler_to_matrix(a).transpose(-1, -2))
    for i in range(len(a)):
        np.testing.assert_allclose(r[i].numpy(), _face3d_angle2matrix_3ddfa(*a[i].tolist()), atol=1e-12)
    ref = Rotation.from_euler("xyz", a.numpy()).inv().as_matrix()
    np.testing.assert_allclose(r.numpy(), ref, atol=1e-12)


def test_deep3d_compute_rotation_is_row_vector_form():
    """Deep3DFace: rot = (Rz Ry Rx)^T applied as points @ rot, i.e. our R applied to column vectors."""
    a = _angles(4)
    x, y, z = a[:, :1], a[:, 1:2], a[:, 2:]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rx = torch.cat([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], 1).reshape(-1, 3, 3)
    ry = torch.cat([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], 1).reshape(-1, 3, 3)
    rz = torch.cat([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], 1).reshape(-1, 3, 3)
    theirs = (rz @ ry @ rx).permute(0, 2, 1)
    torch.testing.assert_close(rot.deep3d_row_matrix(a), theirs)
    pts = torch.randn(4, 10, 3, dtype=torch.float64)
    torch.testing.assert_close(
        pts @ theirs, (rot.euler_to_matrix(a, "deep3d") @ pts.transpose(1, 2)).transpose(1, 2)
    )


def test_semantics_in_model_space():
    nose, top = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 0.0])
    r = rot.euler_to_matrix(torch.tensor([[0.3, 0, 0], [0, 0.3, 0], [0, 0, 0.3]]))
    assert (r[0] @ nose)[1] < 0  # +pitch: looking down
    assert (r[1] @ nose)[0] > 0  # +yaw: nose to +x (subject's left, image right)
    assert (r[2] @ top)[0] < 0  # +roll: head top to the subject's right
    r3 = rot.euler_to_matrix(torch.tensor([[0.0, 0.3, 0.0]]), "3ddfa")
    assert (r3[0] @ nose)[0] < 0  # 300W-LP: +yaw = nose to image left


@pytest.mark.parametrize("convention", ["zyx", "3ddfa"])
def test_euler_round_trip(convention):
    a = _angles(64, seed=1)
    back = rot.matrix_to_euler(rot.euler_to_matrix(a, convention), convention)
    torch.testing.assert_close(back, a, atol=1e-9, rtol=0)


def test_quaternion_vs_scipy_and_round_trip():
    q = torch.randn(32, 4, dtype=torch.float64)
    r = rot.quaternion_to_matrix(q)
    qn = (q / q.norm(dim=-1, keepdim=True)).numpy()
    ref = Rotation.from_quat(qn[:, [1, 2, 3, 0]]).as_matrix()  # scipy is (x, y, z, w)
    np.testing.assert_allclose(r.numpy(), ref, atol=1e-12)
    q2 = rot.matrix_to_quaternion(r)
    assert (q2[:, 0] >= 0).all()
    torch.testing.assert_close(q2, torch.where(torch.from_numpy(qn[:, :1]) < 0, -1, 1) * torch.from_numpy(qn))


def test_axis_angle_and_6d():
    v = torch.randn(20, 3, dtype=torch.float64)
    r = rot.axis_angle_to_matrix(v)
    np.testing.assert_allclose(r.numpy(), Rotation.from_rotvec(v.numpy()).as_matrix(), atol=1e-10)
    back = rot.axis_angle_to_matrix(rot.matrix_to_axis_angle(r))
    torch.testing.assert_close(back, r)
    torch.testing.assert_close(rot.rotation_6d_to_matrix(rot.matrix_to_rotation_6d(r)), r)
    m = rot.rotation_6d_to_matrix(torch.randn(2, 5, 6, dtype=torch.float64))
    torch.testing.assert_close(m @ m.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(2, 5, 3, 3))
    torch.testing.assert_close(torch.linalg.det(m), torch.ones(2, 5, dtype=torch.float64))


def test_gradcheck():
    a = _angles(3).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: rot.euler_to_matrix(x, "zyx"), (a,))
    assert torch.autograd.gradcheck(lambda x: rot.euler_to_matrix(x, "3ddfa"), (a,))
    r = rot.euler_to_matrix(_angles(3, seed=2)).requires_grad_()
    assert torch.autograd.gradcheck(rot.matrix_to_euler, (r,))
    q = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rot.quaternion_to_matrix, (q,))
    d6 = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rot.rotation_6d_to_matrix, (d6,))


def test_errors():
    with pytest.raises(ValueError, match="angles"):
        rot.euler_to_matrix(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="convention"):
        rot.euler_to_matrix(torch.zeros(2, 3), "xyzzy")
    with pytest.raises(ValueError, match="matrix"):
        rot.matrix_to_euler(torch.zeros(2, 3, 4))
    with pytest.raises(TypeError):
        rot.quaternion_to_matrix(torch.zeros(2, 4, dtype=torch.long))
