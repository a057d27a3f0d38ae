import math

import pytest
import torch
from _reference import grid_surface

from facezoo.geometry.cameras import WeakPerspective
from facezoo.render import MeshRenderer, render_uv, sample_image, sample_uv, transfer_texture


def _cap(n=900):
    pos, tri = grid_surface(n)
    v = pos[0, :, :2] / pos[0, :, 3:] * 60  # a cap of ~60 mm radius in model space (+z toward the viewer)
    z = -pos[0, :, 3:] * 30
    return torch.cat((v, z - z.min()), -1)[None].contiguous(), tri


def _camera(yaw=0.0, batch=1):
    c, s = torch.cos(torch.tensor(yaw)), torch.sin(torch.tensor(yaw))
    rot = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float32)[None].repeat(batch, 1, 1)
    return WeakPerspective(torch.full((batch,), 0.45), rot, torch.full((batch, 2), 32.0))


def test_mesh_renderer_colours_lighting_depth_visibility():
    v, tri = _cap()
    renderer = MeshRenderer((64, 64))
    colors = torch.rand(1, v.shape[1], 3)
    out = renderer(v, tri, _camera(), colors=colors, background=(0.0, 0.0, 1.0))
    assert out.image.shape == (1, 3, 64, 64) and out.mask.shape == (1, 1, 64, 64)
    hit = out.triangle_id >= 0
    assert 0.2 < hit.float().mean() < 0.9
    assert torch.allclose(out.image[0, 2][~hit[0] & (out.mask[0, 0] == 0)], torch.tensor(1.0))
    assert out.visible.float().mean() > 0.8  # a front view of a cap sees nearly all of it
    # seen from behind with backface culling nothing is visible; without culling the back side is
    culled = MeshRenderer((64, 64), cull_backface=True)
    assert culled(v, tri, _camera(2.8), colors=colors).visible.float().mean() < 0.05
    assert renderer(v, tri, _camera(2.8), colors=colors).visible.float().mean() > 0.5
    assert (out.depth[0, 0][~hit[0]] == 0).all()  # background depth 0
    lit = renderer(
        v, tri, _camera(), colors=colors, lighting=torch.cat((torch.ones(1, 1), torch.zeros(1, 8)), 1)
    )
    assert lit.image.shape == (1, 3, 64, 64) and not torch.allclose(lit.image, out.image)


def test_mesh_renderer_uv_texture_is_differentiable():
    v, tri = _cap(400)
    uv = (v[0, :, :2] - v[0, :, :2].min(0).values) / (v[0, :, :2].max(0).values - v[0, :, :2].min(0).values)
    texture = torch.rand(1, 3, 16, 16, requires_grad=True)
    verts = v.clone().requires_grad_(True)
    out = MeshRenderer((32, 32))(verts, tri, _camera(), texture=texture, uv=uv)
    out.image.sum().backward()
    assert texture.grad.abs().sum() > 0 and verts.grad.abs().sum() > 0


def test_render_uv_and_sample_uv_roundtrip_and_gradcheck():
    v, tri = _cap(100)
    uv = (v[0, :, :2] - v[0, :, :2].min(0).values) / (v[0, :, :2].max(0).values - v[0, :, :2].min(0).values)
    uv = uv * 0.9 + 0.05
    attr = torch.randn(1, v.shape[1], 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: render_uv(a, uv, tri, 8), (attr,))
    # an affine attribute survives rasterize-then-sample up to bilinear error at chart borders
    lin = uv.double()[None] @ torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    img = render_uv(lin, uv, tri, 64)
    back = sample_uv(img, uv * 0.8 + 0.1 * 1.0 + 0.0 * uv)  # interior points of the chart
    ref = (uv * 0.8 + 0.1).double()[None] @ torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(back, ref, atol=2e-2, rtol=0)
    image = torch.rand(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    pts = (torch.rand(7, 2, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(sample_uv, (image, pts))


def test_sample_image_pixel_centre_convention_and_gradcheck():
    img = torch.arange(12.0, dtype=torch.float64).view(1, 1, 3, 4)
    pts = torch.tensor([[[0.5, 0.5], [3.5, 2.5], [1.0, 0.5]]], dtype=torch.float64)
    assert sample_image(img, pts)[0, :, 0].tolist() == [0.0, 11.0, 0.5]
    img.requires_grad_(True)
    p = torch.tensor([[[1.3, 1.7], [2.2, 0.9]]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sample_image, (img, p))


def test_transfer_texture_into_the_same_view_reproduces_the_image():
    v, tri = _cap()
    renderer = MeshRenderer((64, 64))
    cam = _camera()
    colors = torch.rand(1, v.shape[1], 3)
    src = renderer(v, tri, cam, colors=colors, antialias=False).image
    warped, mask = transfer_texture(src, v, tri, cam, cam, renderer)
    assert mask.mean() > 0.2
    # smooth vertex colours resampled at vertex projections: close to the source where both see the mesh
    err = (warped - src).abs().mean(1, keepdim=True)[mask > 0]
    assert err.mean() < 0.15
    _, side_mask = transfer_texture(src, v, tri, cam, _camera(0.8), renderer)
    assert side_mask.mean() < mask.mean()


def test_renderer_rejects_bad_inputs():
    v, tri = _cap(100)
    with pytest.raises(ValueError, match="vertices"):
        MeshRenderer((8, 8))(v[0], tri, _camera())
    with pytest.raises(ValueError, match="uv"):
        MeshRenderer((8, 8))(v, tri, _camera(), texture=torch.rand(1, 3, 4, 4))


def test_mesh_renderer_under_inference_mode_matches_no_grad():
    """Lightning predicts under torch.inference_mode(): inference tensors have no version counter, which the
    renderer's memoisation must not rely on."""
    v, tri = _cap(400)
    colors = torch.rand(1, v.shape[1], 3)
    renderer = MeshRenderer((32, 32))
    with torch.no_grad():
        ref = renderer(v, tri, _camera(), colors=colors)
    with torch.inference_mode():
        vi, trii, ci = v.clone(), tri.clone(), colors.clone()
        out = renderer(vi, trii, _camera(), colors=ci)
        assert vi.is_inference()
    assert torch.equal(out.image, ref.image) and torch.equal(out.visible, ref.visible)


def _plane(a=0.3, b=-0.2, c=5.0, half=40.0):
    """A square ``[-half, half]^2`` mm of the plane ``z = a x + b y + c`` (model space), two triangles."""
    xy = torch.tensor([[-half, -half], [half, -half], [half, half], [-half, half]])
    v = torch.cat((xy, (a * xy[:, :1] + b * xy[:, 1:] + c)), -1)[None]
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


def _model_xy(row, col, size=64, scale=0.5):
    """Model-space (x, y) under pixel (row, col)'s centre for WeakPerspective(scale, I, (size/2, size/2))."""
    return (col + 0.5 - size / 2) / scale, (size / 2 - (row + 0.5)) / scale


def test_depth_and_vertex_colours_match_hand_values():
    """Depth is -z of the view space and colours interpolate linearly: on a tilted plane with colours affine
    in the position, both are affine functions of the pixel centre, known in closed form."""
    a, b, c = 0.3, -0.2, 5.0
    v, tri = _plane(a, b, c, half=60.0)  # 30 px from the centre each way: pixels 2..61 are covered
    cam = WeakPerspective(torch.tensor([0.5]), torch.eye(3)[None], torch.tensor([[32.0, 32.0]]))
    colors = torch.stack((v[0, :, 0] / 200 + 0.5, v[0, :, 1] / 200 + 0.5, torch.full((4,), 0.25)), -1)[None]
    out = MeshRenderer(64)(v, tri, cam, colors=colors, background=(0.0, 0.0, 1.0))
    for row, col in ((10, 20), (31, 31), (50, 12), (40, 45)):
        x, y = _model_xy(row, col)
        assert int(out.triangle_id[0, row, col]) >= 0
        torch.testing.assert_close(out.depth[0, 0, row, col], torch.tensor(-(a * x + b * y + c)))
        want = torch.tensor([x / 200 + 0.5, y / 200 + 0.5, 0.25])
        torch.testing.assert_close(out.image[0, :, row, col], want)
    # lit by the ambient coefficient k alone every pixel is albedo * k * pi / sqrt(4 pi)
    k = 0.8
    light = torch.zeros(1, 27)
    light[0, [0, 9, 18]] = k
    lit = MeshRenderer(64)(v, tri, cam, colors=colors, lighting=light)
    row, col = 31, 31
    x, y = _model_xy(row, col)
    want = torch.tensor([x / 200 + 0.5, y / 200 + 0.5, 0.25]) * k * math.pi / math.sqrt(4 * math.pi)
    torch.testing.assert_close(lit.image[0, :, row, col], want)


def test_textured_mesh_samples_the_texture_at_the_interpolated_uv():
    """A non-square 192 x 224 texture whose red channel is u and green channel v (at texel centres, so
    bilinear lookup returns u and v exactly inside): the image at a pixel is that pixel's (u, v), with uv
    affine in the model position; per-item textures and shared uv, batch 2."""
    v, tri = _plane(0.0, 0.0, 0.0, half=40.0)
    uv = (v[0, :, :2] + 40.0) / 80.0  # (0, 0) at the bottom-left corner, v up
    ht, wt = 192, 224
    u_tex = ((torch.arange(wt) + 0.5) / wt).expand(ht, wt)
    v_tex = (1 - (torch.arange(ht) + 0.5) / ht)[:, None].expand(ht, wt)
    tex = torch.stack((u_tex, v_tex, torch.full((ht, wt), 0.5)))[None].repeat(2, 1, 1, 1)
    tex[1, 2] = 0.75  # the second item's own texture
    cam = WeakPerspective(torch.tensor([0.5]), torch.eye(3)[None], torch.tensor([[32.0, 32.0]]))
    verts = v.repeat(2, 1, 1)
    out = MeshRenderer(64)(verts, tri, cam, texture=tex, uv=uv)
    assert out.image.shape == (2, 3, 64, 64)
    for row, col in ((20, 20), (31, 40), (45, 15)):
        x, y = _model_xy(row, col)
        want_uv = torch.tensor([(x + 40) / 80, (y + 40) / 80])
        torch.testing.assert_close(out.image[0, :2, row, col], want_uv, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.image[1, :2, row, col], want_uv, atol=1e-5, rtol=0)
    assert torch.allclose(out.image[0, 2][out.mask[0, 0] == 1], torch.tensor(0.5))
    assert torch.allclose(out.image[1, 2][out.mask[1, 0] == 1], torch.tensor(0.75))
    # one texture shared by the batch renders the same as the texture repeated
    shared = MeshRenderer(64)(verts, tri, cam, texture=tex[:1], uv=uv)
    torch.testing.assert_close(shared.image[1, :2], out.image[1, :2])


def test_render_uv_non_square():
    """render_uv with (H, W): column c holds u = (c + 0.5) / W and row r holds v = 1 - (r + 0.5) / H."""
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]])
    img = render_uv(uv[None].double(), uv, tri, (6, 10))
    assert img.shape == (1, 2, 6, 10)
    cols = (torch.arange(10, dtype=torch.float64) + 0.5) / 10
    rows = 1 - (torch.arange(6, dtype=torch.float64) + 0.5) / 6
    torch.testing.assert_close(img[0, 0], cols.expand(6, 10))
    torch.testing.assert_close(img[0, 1], rows[:, None].expand(6, 10))
    # and back: sampling that UV image at the vertices' interior points returns their uv
    pts = torch.tensor([[0.3, 0.6], [0.55, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(sample_uv(img, pts)[0], pts)
