"""Bad input at the render boundary: a clear error naming the argument (dtype, shape, device), never an
out-of-bounds read; the input rules of MeshRenderer; the kernel switch and its fallback."""

import pytest
import torch
from _reference import grid_surface

from facezoo.geometry.cameras import WeakPerspective
from facezoo.render import (
    MeshRenderer,
    _runtime,
    active_kernels,
    antialias,
    interpolate,
    rasterize,
    render_uv,
    use_kernels,
)
from facezoo.render.backends import AUTO_ORDER, BACKENDS, Backend, register
from facezoo.render.backends.builtin import rasterize_builtin


def _square():
    pos = torch.tensor(
        [[[-0.8, -0.8, 0.0, 1.0], [0.8, -0.8, 0.0, 1.0], [0.8, 0.8, 0.0, 1.0], [-0.8, 0.8, 0.0, 1.0]]]
    )
    return pos, torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)


@pytest.mark.parametrize("kernels", ["torch", "warp"])
@pytest.mark.parametrize("bad", [4, 7, 2**30])
def test_interpolate_refuses_triangle_indices_past_the_attributes(kernels, bad):
    pos, tri = _square()
    rast = rasterize(pos, tri, (8, 8))
    wrong = tri.clone()
    wrong[1, 2] = bad  # the attributes have 4 vertices
    with (
        use_kernels(kernels),
        pytest.raises(ValueError, match=r"tri indices must lie in \[0, 4\).*int32 \[2,3\]"),
    ):
        interpolate(torch.rand(1, 4, 3), rast, wrong)
    with pytest.raises(ValueError, match="tri indices"):
        interpolate(torch.rand(1, 4, 3), rast, -tri)


@pytest.mark.parametrize("kernels", ["torch", "warp"])
def test_interpolate_refuses_a_rast_made_from_other_triangles(kernels):
    pos, tri = grid_surface(100)
    rast = rasterize(pos, tri, (16, 16))  # ids up to 162
    with (
        use_kernels(kernels),
        pytest.raises(ValueError, match=r"rast's triangle ids .* \[1, 2\].*float32 \[1,16,16,4\]"),
    ):
        interpolate(torch.rand(1, pos.shape[1], 2), rast, tri[:2])
    forged = rasterize(*_square(), (8, 8)).clone()
    forged[0, 3, 3, 3] = 0.5  # a fractional id: "covered" but names no triangle
    with pytest.raises(ValueError, match="rast's triangle ids"):
        interpolate(torch.rand(1, 4, 2), forged, _square()[1])


@pytest.mark.parametrize("kernels", ["torch", "warp"])
def test_antialias_refuses_bad_tri_and_foreign_rast(kernels):
    pos, tri = grid_surface(100)
    rast = rasterize(pos, tri, (16, 16))
    color = torch.rand(1, 16, 16, 3)
    with use_kernels(kernels):
        with pytest.raises(ValueError, match=r"tri indices must lie in \[0, 100\)"):
            antialias(color, rast, pos, tri + 50)
        with pytest.raises(ValueError, match="rast's triangle ids"):
            antialias(color, rast, pos, tri[:3])
        nan = rast.clone()
        nan[0, 0, 0, 3] = float("nan")
        with pytest.raises(ValueError, match="rast's triangle ids"):
            antialias(color, nan, pos, tri)


def test_checks_name_argument_dtype_shape_and_device():
    pos, tri = _square()
    with pytest.raises(ValueError, match=r"pos_clip must be \[B,V,4\], got float32 \[4,4\] on cpu"):
        rasterize(pos[0], tri, (4, 4))
    with pytest.raises(TypeError, match=r"tri must be int32 or int64, got float32 \[2,3\] on cpu"):
        rasterize(pos, tri.float(), (4, 4))
    with pytest.raises(ValueError, match=r"attr must be \[B,V,C\] or \[1,V,C\], got float32 \[4,3\]"):
        interpolate(torch.rand(4, 3), rasterize(pos, tri, (4, 4)), tri)
    with pytest.raises(ValueError, match=r"size must be positive"):
        render_uv(torch.rand(1, 4, 2), pos[0, :, :2], tri, (0, 4))


def _cam(dtype=torch.float32):
    return WeakPerspective(torch.tensor([10.0]), torch.eye(3)[None], torch.tensor([[16.0, 16.0]])).to(
        dtype=dtype
    )


def _tri_mesh(dtype=torch.float32):
    v = torch.tensor([[[-1.0, -1, 0], [1, -1, 0], [0, 1, 0]]], dtype=dtype)
    return v, torch.tensor([[0, 1, 2]])


def test_mesh_renderer_takes_an_int_image_size():
    r = MeshRenderer(32)
    assert r.image_size == (32, 32)
    v, tri = _tri_mesh()
    assert r(v, tri, _cam()).image.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="image_size"):
        MeshRenderer((32,))


def test_mesh_renderer_refuses_a_channels_last_texture():
    v, tri = _tri_mesh()
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]])
    with pytest.raises(
        ValueError, match=r"\[B,C,H,W\] \(channels first\), got float32 \[1,16,16,3\].*channels-last"
    ):
        MeshRenderer(32)(v, tri, _cam(), texture=torch.rand(1, 16, 16, 3), uv=uv)
    with pytest.raises(ValueError, match="texture must be"):
        MeshRenderer(32)(v, tri, _cam(), texture=torch.rand(16, 16, 3), uv=uv)
    # channels first with 3 channels renders RGB
    assert MeshRenderer(32)(v, tri, _cam(), texture=torch.rand(1, 3, 16, 16), uv=uv).image.shape[1] == 3


@pytest.mark.parametrize("cam_dtype", [torch.float32, torch.float64])
def test_mesh_renderer_accepts_float64_vertices(cam_dtype):
    """float64 vertices render in float64 (the camera is cast to them), equal to the float32 render."""
    v, tri = _tri_mesh(torch.float64)
    light = torch.zeros(1, 27, dtype=torch.float64)
    light[0, [0, 9, 18]] = 0.8
    x = v.clone().requires_grad_(True)
    out = MeshRenderer(32)(x, tri, _cam(cam_dtype), lighting=light)
    assert out.image.dtype == torch.float64 and out.depth.dtype == torch.float64
    out.image.sum().backward()
    assert x.grad.dtype == torch.float64 and x.grad.abs().sum() > 0
    ref = MeshRenderer(32)(v.float(), tri, _cam(), lighting=light.float())
    torch.testing.assert_close(out.image.float(), ref.image, atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="vertices must be float32 or float64, got float16"):
        MeshRenderer(32)(v.half(), tri, _cam())


def test_mesh_renderer_lighting_and_colour_errors_name_the_argument():
    v, tri = _tri_mesh()
    with pytest.raises(ValueError, match=r"lighting must be \[B,9\], \[B,27\] or \[B,3,9\]"):
        MeshRenderer(32)(v, tri, _cam(), lighting=torch.zeros(1, 5))
    with pytest.raises(ValueError, match="lighting has batch size 2"):
        MeshRenderer(32)(v, tri, _cam(), lighting=torch.zeros(2, 27))
    with pytest.raises(ValueError, match="lit colors must have 3 channels"):
        MeshRenderer(32)(v, tri, _cam(), colors=torch.rand(1, 3, 4), lighting=torch.zeros(1, 27))
    with pytest.raises(ValueError, match=r"triangles indices must lie in \[0, 3\)"):
        MeshRenderer(32)(v, tri + 1, _cam())


def test_every_backend_takes_the_same_dtypes(monkeypatch):
    """A backend other than builtin gets float32 positions (nvdiffrast's dtype) and the rast comes back in
    the caller's dtype, as the builtin backend's does; "auto" resolving to it (as to nvdiffrast on CUDA)
    behaves the same, so MeshRenderer renders float64 vertices through it."""
    seen = []

    def fake(pos, tri, resolution, cull):
        seen.append(pos.dtype)
        return rasterize_builtin(pos, tri, resolution, cull)

    monkeypatch.setitem(BACKENDS, "fake", Backend("fake", lambda device: True, fake))
    monkeypatch.setattr("facezoo.render.backends.AUTO_ORDER", ["fake", *AUTO_ORDER])
    pos, tri = _square()
    for backend in ("fake", "auto"):
        rast = rasterize(pos.double(), tri, (8, 8), backend=backend)
        assert rast.dtype == torch.float64 and seen[-1] == torch.float32
    v, t = _tri_mesh(torch.float64)
    out = MeshRenderer(32, backend="auto")(v, t, _cam(), colors=torch.ones(1, 3, 3, dtype=torch.float64))
    assert out.image.dtype == torch.float64 and seen[-1] == torch.float32
    assert register  # the registry's public entry point exists for such backends


def test_kernel_switch_values(monkeypatch):
    with use_kernels("torch"):
        assert active_kernels() == "torch"
    monkeypatch.setenv("FACEZOO_RENDER_KERNELS", "torch")
    assert active_kernels() == "torch"
    monkeypatch.setenv("FACEZOO_RENDER_KERNELS", "cuda")
    with pytest.raises(
        ValueError, match="FACEZOO_RENDER_KERNELS must be one of auto, warp, torch, got 'cuda'"
    ):
        active_kernels()
    with pytest.raises(ValueError, match="mode must be one of"):
        with use_kernels("fast"):
            pass


def test_fallback_without_warp_warns_once_with_the_reason(monkeypatch):
    monkeypatch.setattr(_runtime, "_load", lambda: (None, ImportError("No module named 'warp'")))
    _runtime._warn_fallback.cache_clear()
    monkeypatch.delenv("FACEZOO_RENDER_KERNELS", raising=False)
    pos, tri = _square()
    with pytest.warns(
        RuntimeWarning, match=r"Warp kernels are unavailable \(ImportError: No module named 'warp'\)"
    ) as rec:
        rast = rasterize(pos, tri, (8, 8))
        interpolate(torch.rand(1, 4, 3), rast, tri)
        rasterize(pos, tri, (8, 8))
    assert len([r for r in rec if "Warp kernels" in str(r.message)]) == 1
    assert active_kernels() == "torch"
    assert (rast[..., 3] > 0).sum() > 0
    monkeypatch.setenv("FACEZOO_RENDER_KERNELS", "warp")
    with pytest.raises(
        RuntimeError, match="FACEZOO_RENDER_KERNELS=warp but the Warp kernels cannot be loaded"
    ):
        rasterize(pos, tri, (8, 8))
    _runtime._warn_fallback.cache_clear()
