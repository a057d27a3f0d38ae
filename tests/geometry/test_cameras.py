"""Cameras: COMMON.md formulas written out, NDC <-> pixel consistency, Deep3DFace's pipeline, gradcheck."""

import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from facezoo.geometry import Perspective, WeakPerspective, euler_to_matrix

DT = torch.float64


def _rand_rot(b, seed=0):
    return torch.from_numpy(Rotation.random(b, random_state=seed).as_matrix())


def _ndc_to_pixels(clip, h, w):
    ndc = clip[..., :3] / clip[..., 3:]
    return torch.stack(((ndc[..., 0] + 1) * w / 2, (1 - ndc[..., 1]) * h / 2), -1), ndc[..., 2]


def _weak(b=3):
    return WeakPerspective(torch.rand(b, dtype=DT) + 0.5, _rand_rot(b), torch.rand(b, 2, dtype=DT) * 64)


def _persp(b=3):
    t = torch.cat((torch.randn(b, 2, dtype=DT) * 20, -900 - 200 * torch.rand(b, 1, dtype=DT)), 1)
    return Perspective(
        800 + 400 * torch.rand(b, dtype=DT), torch.rand(b, 2, dtype=DT) * 100 + 30, _rand_rot(b), t
    )


def test_weak_perspective_formula():
    cam = _weak()
    v = torch.randn(3, 20, 3, dtype=DT) * 50
    p = cam.project(v)
    for b in range(3):
        for i in range(20):
            w = cam.rotation[b] @ v[b, i]
            ref = (cam.scale[b] * w[0] + cam.t2d[b, 0], cam.t2d[b, 1] - cam.scale[b] * w[1])
            torch.testing.assert_close(p[b, i], torch.stack(ref))
    torch.testing.assert_close(cam.view(v), (cam.rotation @ v.transpose(1, 2)).transpose(1, 2))


def test_weak_perspective_clip_consistent():
    cam = _weak()
    v = torch.randn(3, 50, 3, dtype=DT) * 50
    clip = cam.to_clip(v, (64, 96))
    assert (clip[..., 3] == 1).all()
    pix, z = _ndc_to_pixels(clip, 64, 96)
    torch.testing.assert_close(pix, cam.project(v))
    assert z.abs().max() <= 1
    # nearer (larger w_z) = smaller z/w; the documented affine map
    d = -cam.scale[:, None] * cam.view(v)[..., 2]
    torch.testing.assert_close(z, (2 * d) / (4 * 96.0))
    clip2 = cam.to_clip(v, (64, 96), near=-100.0, far=300.0)
    torch.testing.assert_close(clip2[..., 2], (2 * d - 200) / 400)


def test_perspective_formula_and_clip():
    cam = _persp()
    v = torch.randn(3, 40, 3, dtype=DT) * 80
    p = cam.project(v)
    for b in range(3):
        for i in range(0, 40, 7):
            x, y, z = (cam.rotation[b] @ v[b, i] + cam.translation[b]).tolist()
            ref = [cam.center[b, 0] + cam.focal[b] * x / (-z), cam.center[b, 1] - cam.focal[b] * y / (-z)]
            torch.testing.assert_close(p[b, i], torch.stack(ref))
    clip = cam.to_clip(v, (120, 160), near=100.0, far=5000.0)
    pix, z = _ndc_to_pixels(clip, 120, 160)
    torch.testing.assert_close(pix, p)
    depth = -cam.view(v)[..., 2]
    order = depth.argsort(dim=1)
    assert (torch.diff(torch.gather(z, 1, order), dim=1) >= 0).all()  # nearer = smaller z/w
    # z/w = -1 at the near plane and +1 at the far plane
    edge = Perspective(500.0, (0.0, 0.0), torch.eye(3, dtype=DT)[None], torch.zeros(1, 3, dtype=DT))
    pts = torch.tensor([[[0, 0, -100.0], [0, 0, -5000.0]]], dtype=DT)
    zz = edge.to_clip(pts, (10, 10), near=100.0, far=5000.0)
    torch.testing.assert_close(zz[..., 2] / zz[..., 3], torch.tensor([[-1.0, 1.0]], dtype=DT))


def test_pixel_centre_convention():
    """A point on the optical axis through the centre of pixel (c, r) projects to (c + 0.5, r + 0.5),
    whose NDC is the one the rasterizer samples for that pixel (COMMON.md)."""
    h, w, c, r = 8, 10, 3, 5
    cam = Perspective(
        100.0, (c + 0.5, r + 0.5), torch.eye(3, dtype=DT)[None], torch.tensor([[0, 0, -50.0]], dtype=DT)
    )
    clip = cam.to_clip(torch.zeros(1, 1, 3, dtype=DT), (h, w))
    ndc = clip[0, 0, :2] / clip[0, 0, 3]
    torch.testing.assert_close(ndc, torch.tensor([(2 * c + 1) / w - 1, 1 - (2 * r + 1) / h], dtype=DT))


def test_deep3d_matches_their_pipeline():
    """Deep3DFaceRecon: face @ rot + trans (decimetres), z -> 10 - z, @ persc_proj, /z, then y -> 224 - y."""
    b = 4
    angles = (torch.rand(b, 3, dtype=DT) - 0.5) * 1.2
    trans = torch.randn(b, 3, dtype=DT) * 0.1
    v_dm = torch.randn(b, 30, 3, dtype=DT) * 0.8
    x, y, z = angles[:, :1], angles[:, 1:2], angles[:, 2:]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rx = torch.cat([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], 1).reshape(-1, 3, 3)
    ry = torch.cat([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], 1).reshape(-1, 3, 3)
    rz = torch.cat([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], 1).reshape(-1, 3, 3)
    face = v_dm @ (rz @ ry @ rx).permute(0, 2, 1) + trans[:, None]
    face = torch.cat((face[..., :2], 10.0 - face[..., 2:]), -1)
    persc = torch.tensor([[1015.0, 0, 112], [0, 1015.0, 112], [0, 0, 1]], dtype=DT).T
    proj = face @ persc
    proj = proj[..., :2] / proj[..., 2:]
    theirs = torch.stack((proj[..., 0], 224 - proj[..., 1]), -1)
    cam = Perspective.deep3d(angles, trans)
    torch.testing.assert_close(cam.project(v_dm * 100.0), theirs)


def test_params_quaternion_indexing_dtype():
    params = torch.tensor([[1.5, 0.1, -0.4, 0.2, 30.0, 40.0], [0.7, -0.3, 0.5, 0.0, 10.0, 5.0]], dtype=DT)
    cam = WeakPerspective.from_params(params)
    torch.testing.assert_close(cam.rotation, euler_to_matrix(params[:, 1:4]))
    torch.testing.assert_close(cam.to_params(), params)
    q = torch.tensor([[math.cos(0.2), 0, math.sin(0.2), 0]], dtype=DT)
    cq = WeakPerspective.from_quaternion(torch.tensor([2.0], dtype=DT), q, torch.zeros(1, 2, dtype=DT))
    torch.testing.assert_close(
        cq.rotation[0], torch.from_numpy(Rotation.from_rotvec([0, 0.4, 0]).as_matrix())
    )
    one = cam[1]
    assert len(one) == 1 and one.scale.item() == pytest.approx(0.7)
    assert len(cam[torch.tensor([True, False])]) == 1
    f32 = cam.to(dtype=torch.float32)
    assert all(t.dtype == torch.float32 for t in f32._tensors().values())
    v32 = torch.randn(2, 5, 3) * 50
    torch.testing.assert_close(f32.project(v32), cam.project(v32.double()).float(), atol=1e-4, rtol=1e-5)
    # batch-1 camera broadcasts over vertices; scalar focal/centre broadcast over the batch
    v = torch.randn(3, 5, 3, dtype=DT)
    assert one.project(v).shape == (3, 5, 2)
    p = Perspective(1000.0, (64.0, 64.0), _rand_rot(2), torch.tensor([[0, 0, -500.0]] * 2, dtype=DT))
    assert p.focal.shape == (2,) and p.center.shape == (2, 2)


def test_errors():
    cam = _weak(2)
    with pytest.raises(ValueError, match="batch size"):
        cam.project(torch.zeros(3, 4, 3, dtype=DT))
    with pytest.raises(ValueError, match=r"\[B,V,3\]"):
        cam.project(torch.zeros(2, 4, 2, dtype=DT))
    with pytest.raises(ValueError, match="t2d"):
        WeakPerspective(torch.ones(2), torch.eye(3).expand(2, 3, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="rotation"):
        Perspective(1.0, (0.0, 0.0), torch.eye(4)[None], torch.zeros(1, 3))
    with pytest.raises(ValueError, match="image_size"):
        cam.to_clip(torch.zeros(2, 4, 3, dtype=DT), (0, 4))


def test_gradcheck():
    v = (torch.randn(2, 5, 3, dtype=DT) * 30).requires_grad_()
    s = (torch.rand(2, dtype=DT) + 0.5).requires_grad_()
    t2 = torch.randn(2, 2, dtype=DT).requires_grad_()
    r = _rand_rot(2).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda v, s, r, t: WeakPerspective(s, r, t).to_clip(v, (32, 32)), (v, s, r, t2)
    )
    f = torch.tensor([900.0, 1100.0], dtype=DT, requires_grad=True)
    tr = torch.tensor([[1.0, 2.0, -800.0], [-3.0, 0.0, -1000.0]], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda v, f, r, t: Perspective(f, (50.0, 40.0), r, t).to_clip(v, (80, 100)), (v, f, r, tr)
    )
    assert torch.autograd.gradcheck(lambda v, t: Perspective(f, (50.0, 40.0), r, t).project(v), (v, tr))


_DEVICES = [
    "meta",  # a second device on every machine: shows that nothing stays behind on the CPU
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")),
]


@pytest.mark.parametrize("device", _DEVICES)
@pytest.mark.parametrize("make", [_weak, _persp], ids=["weak", "perspective"])
def test_to_device_moves_every_tensor_and_projects_there(make, device):
    cam = make(2)
    moved = cam.to(device)
    assert all(t.device.type == device for t in moved._tensors().values())
    v = torch.randn(2, 7, 3, dtype=DT) * 50
    out = moved.project(v.to(device))
    clip = moved.to_clip(v.to(device), (64, 48))
    assert out.device.type == device and clip.device.type == device and out.shape == (2, 7, 2)
    if device != "meta":  # meta tensors have no values
        torch.testing.assert_close(out.cpu(), cam.project(v))
        torch.testing.assert_close(clip.cpu(), cam.to_clip(v, (64, 48)))
