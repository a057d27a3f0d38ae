"""The fast paths (Warp kernels, packed pixel lists) against the plain PyTorch ones they replace."""

import importlib

import pytest
import torch
from _reference import grid_surface

from facezoo.geometry.cameras import WeakPerspective
from facezoo.geometry.mesh import vertex_normals
from facezoo.render import MeshRenderer, antialias, interpolate, rasterize, sh_shade, use_kernels
from facezoo.render._runtime import _load
from facezoo.render.interpolate import covered_pixels, interpolate_packed, packed_barycentrics

# the package re-exports the functions under the modules' names
antialias_module = importlib.import_module("facezoo.render.antialias")
WARP = _load()[0] is not None
needs_warp = pytest.mark.skipif(not WARP, reason="warp not importable")


def _two_poses(n=2500, dtype=torch.float32):
    pos, tri = grid_surface(n, batch=2, dtype=dtype)
    pos[1, :, 0] += 0.1 * pos[1, :, 3]
    return pos, tri


KERNELS = ["torch"] + (["warp"] if WARP else [])


def _interp_with_grads(attr, pos, tri, res, weight, kernels="auto"):
    """Interpolation (with ``kernels``) of a rast made by the default kernels, and its gradients."""
    a = attr.clone().requires_grad_(True)
    p = pos.clone().requires_grad_(True)
    rast = rasterize(p, tri, res, backend="builtin")
    with use_kernels(kernels):
        out = interpolate(a, rast, tri)
        (out * weight).sum().backward()
    return out.detach(), a.grad, p.grad


@needs_warp
@pytest.mark.parametrize("shared", [True, False])
def test_interpolate_warp_matches_pytorch(shared):
    pos, tri = _two_poses()
    attr = torch.randn(1 if shared else 2, pos.shape[1], 5)
    weight = torch.randn(2, 40, 48, 5)
    fast = _interp_with_grads(attr, pos, tri, (40, 48), weight, "warp")
    slow = _interp_with_grads(attr, pos, tri, (40, 48), weight, "torch")
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert fast[2].abs().sum() > 0


@use_kernels("torch")
def test_gradcheck_interpolate_pytorch_path():
    pos = torch.tensor(
        [[[-0.9, -0.8, 0.1, 1.0], [0.7, -0.9, 0.3, 1.4], [-0.6, 0.9, -0.2, 0.8], [0.9, 0.8, 0.4, 1.2]]],
        dtype=torch.float64,
    ).repeat(2, 1, 1)
    pos[1, :, 1] += 0.1
    tri = torch.tensor([[0, 1, 2], [1, 3, 2]], dtype=torch.int32)
    attr = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    pos.requires_grad_(True)
    f = lambda a, p: interpolate(a, rasterize(p, tri, (6, 7), backend="builtin"), tri)  # noqa: E731
    assert torch.autograd.gradcheck(f, (attr, pos), eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("kernels", KERNELS)
def test_packed_interpolation_matches_dense(kernels):
    with use_kernels(kernels):
        _packed_interpolation_matches_dense()


def _packed_interpolation_matches_dense():
    pos, tri = _two_poses(900, dtype=torch.float64)
    attr = torch.randn(2, pos.shape[1], 3, dtype=torch.float64)
    weight = torch.randn(2, 24, 24, 3, dtype=torch.float64)
    _, g_attr, g_pos = _interp_with_grads(attr, pos, tri, (24, 24), weight)
    a = attr.clone().requires_grad_(True)
    p = pos.clone().requires_grad_(True)
    rast = rasterize(p.detach(), tri, (24, 24), backend="builtin")
    pixels = covered_pixels(rast)
    vals = interpolate_packed(a, rast, tri, pixels, uv=packed_barycentrics(p, tri, rast, pixels))
    dense = interpolate(attr, rast, tri).reshape(-1, 3)[pixels.pix]
    torch.testing.assert_close(vals.detach(), dense)
    (vals * weight.reshape(-1, 3)[pixels.pix]).sum().backward()
    torch.testing.assert_close(a.grad, g_attr)
    torch.testing.assert_close(p.grad, g_pos)


@needs_warp
def test_silhouette_pairs_warp_match_pytorch():
    pos, tri = _two_poses(2500)
    # a second layer behind, shifted: silhouettes over covered pixels; and a flipped (back-facing) copy
    back = pos.clone()
    back[..., 0] += 0.3 * back[..., 3]
    back[..., 2] += 0.05 * back[..., 3]
    pos = torch.cat((pos, back), 1).contiguous()
    tri = torch.cat((tri, tri.flip(1) + grid_surface(2500)[0].shape[1]))
    rast = rasterize(pos, tri, (48, 64))
    fast = antialias_module._pairs_warp(rast, pos, tri)
    slow = antialias_module._pairs_torch(rast, pos, tri)
    key = lambda x: sorted(zip(*(t.tolist() for t in x)))  # noqa: E731
    assert len(fast[0]) > 20
    assert key(fast) == key(slow)


@needs_warp
def test_antialias_paths_agree_on_values_and_gradients():
    """The Warp and the PyTorch silhouette pairs give the same image and the same gradients (one rast)."""
    pos, tri = _two_poses(900, dtype=torch.float64)
    rast = rasterize(pos, tri, (32, 32))
    color = torch.rand(2, 32, 32, 3, dtype=torch.float64) * (rast[..., 3:] > 0)
    weight = torch.rand(2, 32, 32, 3, dtype=torch.float64)

    def run(kernels):
        p = pos.clone().requires_grad_(True)
        c = color.clone().requires_grad_(True)
        with use_kernels(kernels):
            out = antialias(c, rast, p, tri)
        (out * weight).sum().backward()
        return out.detach(), p.grad, c.grad

    fast, slow = run("warp"), run("torch")
    assert ((fast[0] > 0) & (fast[0] < color.amax())).any()  # some silhouette pixels are blended
    assert not torch.equal(fast[0], color) and fast[1].abs().sum() > 0
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernels", KERNELS)
def test_antialias_pairs_mark_outer_edges_only(kernels):
    """Two triangles sharing the diagonal of a square (hand-built): the shared edge is interior, so no pixel
    pair across it is a silhouette; every pair across the square's outline is, occluder inside."""
    # on a 16 x 16 image the rectangle spans x in [3.7, 12.3], y in [3.6, 12.2] pixels (NDC below): it covers
    # pixel rows and columns 4..11, and its diagonal x + y = 15.9 passes through no pixel centre
    x0, x1, y0, y1 = -0.5375, 0.5375, -0.525, 0.55
    pos = torch.tensor([[[x0, y0, 0.0, 1.0], [x1, y0, 0.0, 1.0], [x1, y1, 0.0, 1.0], [x0, y1, 0.0, 1.0]]])
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    rast = rasterize(pos, tri, (16, 16))
    ids = rast[0, ..., 3]
    assert (ids[4:12, 4:12] > 0).all() and (ids > 0).sum() == 64
    assert len(set(ids[4:12, 4:12].unique().tolist())) == 2  # both triangles show
    with use_kernels(kernels):
        pairs = (antialias_module._pairs_warp if kernels == "warp" else antialias_module._pairs_torch)(
            rast, pos, tri
        )
    b, p_pix, q_pix, t_occ, k = pairs
    got = sorted(zip(p_pix.tolist(), q_pix.tolist()))
    inside = lambda r, c: 4 <= r < 12 and 4 <= c < 12  # noqa: E731
    want = []
    for r in range(16):
        for c in range(16):
            for rq, cq in ((r, c + 1), (r + 1, c)):
                if rq < 16 and cq < 16 and inside(r, c) != inside(rq, cq):
                    (pr, pc), (qr, qc) = ((r, c), (rq, cq)) if inside(r, c) else ((rq, cq), (r, c))
                    # the walk from P's centre to Q's must reach the outline (x = 3.7 | 12.3, y = 3.6 | 12.2)
                    # before the diagonal x + y = 15.9: else it leaves P's triangle through the interior edge
                    x, y, dx, dy = pc + 0.5, pr + 0.5, qc - pc, qr - pr
                    t_out = {(0, 1): 12.3 - x, (0, -1): x - 3.7, (1, 0): 12.2 - y, (-1, 0): y - 3.6}[(dy, dx)]
                    toward = (15.9 - (x + y)) / (dx + dy)  # where x + y reaches 15.9 along the walk
                    if not 0 <= toward < t_out:
                        want.append((pr * 16 + pc, qr * 16 + qc))
    assert len(want) == 30 and got == sorted(want)  # 32 outline pairs, 2 corners cut by the diagonal
    # the occluder is the covered pixel's triangle
    torch.testing.assert_close(t_occ, ids.reshape(-1)[p_pix].long() - 1)


@pytest.mark.parametrize("kernels", KERNELS)
def test_vertex_normals_paths_match_the_formula_and_gradcheck(kernels):
    pos, tri = _two_poses(400, dtype=torch.float64)
    v = pos[..., :3] / pos[..., 3:]
    # the definition, written out: sum of (v1 - v0) x (v2 - v0) over each vertex's triangles, normalised
    t = tri.long()
    fn = torch.linalg.cross(v[:, t[:, 1]] - v[:, t[:, 0]], v[:, t[:, 2]] - v[:, t[:, 0]], dim=-1)
    m = torch.zeros_like(v)
    for j in range(3):
        m.index_add_(1, t[:, j], fn)
    with use_kernels(kernels):
        torch.testing.assert_close(vertex_normals(v, tri), m / m.norm(dim=-1, keepdim=True))
        sub = tri[(tri < 40).all(1)]
        x = v[:, :40].clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda y: vertex_normals(y, sub), (x,))


def test_mesh_renderer_matches_the_dense_pipeline():
    """MeshRenderer (packed pixels, packed barycentrics) = rasterize -> interpolate -> SH -> antialias."""
    pos, tri = grid_surface(900)
    v = (pos[0, :, :2] / pos[0, :, 3:] * 60).double()
    verts = torch.cat((v, -pos[0, :, 3:].double() * 30), -1)[None].repeat(2, 1, 1)
    verts[1, :, 0] += 5.0
    rot = torch.eye(3, dtype=torch.float64)[None].repeat(2, 1, 1)
    cam = WeakPerspective(torch.full((2,), 0.4, dtype=torch.float64), rot, torch.full((2, 2), 20.0).double())
    colors = torch.rand(1, verts.shape[1], 3, dtype=torch.float64)
    light = torch.randn(2, 27, dtype=torch.float64) * 0.3
    light[:, [0, 9, 18]] = 0.8
    weight = torch.rand(2, 3, 40, 40, dtype=torch.float64)

    def run(fast):
        x = verts.clone().requires_grad_(True)
        c = colors.clone().requires_grad_(True)
        g = light.clone().requires_grad_(True)
        if fast:
            image = MeshRenderer((40, 40), background=0.2)(x, tri, cam, colors=c, lighting=g).image
        else:
            clip = cam.to_clip(x, (40, 40))
            rast = rasterize(clip, tri, (40, 40), backend="builtin")
            with use_kernels("torch"):
                normals = vertex_normals(cam.view(x), tri)
            px = interpolate(torch.cat((c.expand(2, -1, -1), normals), -1), rast, tri)
            shaded = sh_shade(px[..., :3], torch.nn.functional.normalize(px[..., 3:], dim=-1, eps=1e-12), g)
            cov = (rast[..., 3:] > 0).double()
            both = torch.cat((cov * shaded + (1 - cov) * 0.2, cov), -1)
            image = antialias(both, rast, clip, tri)[..., :3].permute(0, 3, 1, 2)
        (image * weight).sum().backward()
        return image.detach(), x.grad, c.grad, g.grad

    for a, b in zip(run(True), run(False)):
        torch.testing.assert_close(a, b)


def test_gradcheck_antialias_colour_and_positions():
    pos = torch.tensor(
        [[[-0.63, -0.71, 0.1, 1.0], [0.77, -0.52, 0.3, 1.2], [-0.35, 0.66, -0.2, 0.9], [0.6, 0.7, 0.5, 1.1]]],
        dtype=torch.float64,
    )
    tri = torch.tensor([[0, 1, 2], [1, 3, 2]], dtype=torch.int32)
    rast = rasterize(pos, tri, (12, 12))
    color = torch.rand(1, 12, 12, 2, dtype=torch.float64, requires_grad=True)
    pos.requires_grad_(True)
    # eps far below a pixel: no pixel centre changes side, so the blend is smooth in both inputs
    f = lambda c, p: antialias(c, rast, p, tri)  # noqa: E731
    assert not torch.equal(f(color, pos), color)  # there are silhouette pairs to blend
    assert torch.autograd.gradcheck(f, (color, pos), eps=1e-7, atol=1e-5)


def _face_scene(batch=2, size=48):
    pos, tri = grid_surface(1600)
    v = pos[0, :, :2] / pos[0, :, 3:] * 60
    verts = torch.cat((v, -pos[0, :, 3:] * 30), -1)[None].repeat(batch, 1, 1)
    verts[1:, :, 0] += 5.0
    rot = torch.eye(3)[None].repeat(batch, 1, 1)
    rot[1:] = torch.tensor([[0.96, 0.0, 0.28], [0.0, 1.0, 0.0], [-0.28, 0.0, 0.96]])
    cam = WeakPerspective(torch.full((batch,), 0.5), rot, torch.full((batch, 2), size / 2))
    return verts, tri, cam


@needs_warp
@use_kernels("warp")
@pytest.mark.parametrize("case", ["lit_shared", "lit_per_item", "unlit_4ch", "image_background"])
def test_fused_pixel_stage_matches_the_unfused_ops(monkeypatch, case):
    """shade_pixels (one Warp pass) = interpolate -> normalise -> SH -> composite, values and gradients."""
    renderer_module = importlib.import_module("facezoo.render.renderer")
    fused_available = renderer_module.fused_available
    verts, tri, cam = _face_scene()
    n_ch = 4 if case == "unlit_4ch" else 3
    colors = torch.rand(2 if case == "lit_per_item" else 1, verts.shape[1], n_ch)
    light = None if case == "unlit_4ch" else torch.randn(2, 27) * 0.3 + torch.eye(27)[[0, 9, 18]].sum(0)
    bg = torch.rand(2, n_ch, 48, 48) if case == "image_background" else 0.3
    weight = torch.rand(2, n_ch, 48, 48)

    def run(fused):
        monkeypatch.setattr(
            renderer_module, "fused_available", fused_available if fused else lambda dtype: False
        )
        x = verts.clone().requires_grad_(True)
        c = colors.clone().requires_grad_(True)
        g = None if light is None else light.clone().requires_grad_(True)
        b = bg.clone().requires_grad_(True) if isinstance(bg, torch.Tensor) else bg
        out = MeshRenderer((48, 48))(x, tri, cam, colors=c, lighting=g, background=b)
        ((out.image * weight).sum() + (out.depth * 0.01).sum() + out.mask.sum()).backward()
        grads = (
            [x.grad, c.grad]
            + ([] if g is None else [g.grad])
            + ([b.grad] if isinstance(b, torch.Tensor) else [])
        )
        return [out.image, out.mask, out.depth, out.visible] + grads

    fast, slow = run(True), run(False)
    assert fast[1].gt(0).float().mean() > 0.3  # the face covers the image: the test is not vacuous
    for a, b in zip(fast, slow):
        if a.dtype == torch.bool:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.detach().abs().max()))


@needs_warp
def test_vertex_visibility_warp_matches_pytorch():
    from facezoo.render.visibility import _visibility_warp, vertex_visibility

    verts, tri, cam = _face_scene()
    view = cam.view(verts)
    pos = cam.view_to_clip(view, (48, 48)).contiguous()
    rast = rasterize(pos, tri, (48, 48))
    vd = -view[..., 2].contiguous()
    depth = interpolate(vd[..., None], rast, tri)[..., 0].contiguous()
    tol = torch.tensor([0.5, 2.0])
    ref = vertex_visibility(pos, vd, depth, rast[..., 3] > 0, tol)
    assert 0 < ref.float().mean() < 1
    assert torch.equal(_visibility_warp(pos, vd, depth, rast, tol), ref)


@needs_warp
@use_kernels("warp")
def test_antialias_with_the_rasterizers_by_products_equals_recomputing_them():
    """The renderer hands antialias the rasterizer's projected vertices and orientations (RasterAux)
    explicitly; public antialias recomputes them: same pairs."""
    from facezoo.render.backends.builtin import rasterize_with_aux

    pos, tri = _two_poses(900)
    rast, aux = rasterize_with_aux(pos, tri, (40, 40), False)
    assert aux is not None and aux.orient.shape == (2, tri.shape[0])
    key = lambda x: sorted(zip(*(t.tolist() for t in x)))  # noqa: E731
    given = antialias_module._pairs_warp(rast, pos, tri, aux)
    assert len(given[0]) > 20
    assert key(given) == key(antialias_module._pairs_warp(rast, pos, tri))
    assert torch.equal(rast, rasterize(pos, tri, (40, 40)))


@needs_warp
@use_kernels("warp")
def test_public_antialias_reuses_the_rasterizers_by_products_only_for_the_same_positions():
    import gc

    from facezoo.render import _cache
    from facezoo.render._cache import tri_int32
    from facezoo.render.backends import builtin

    pos, tri = _two_poses(900)
    tri32 = tri_int32(tri)
    rast = rasterize(pos, tri, (40, 40))
    assert builtin.recall_aux(rast, pos, tri32) is not None
    assert builtin.recall_aux(rast.clone(), pos, tri32) is None  # another rast
    assert builtin.recall_aux(rast, pos.clone(), tri32) is None  # other storage
    pos[:, :, 0] += 0.1
    assert builtin.recall_aux(rast, pos, tri32) is None  # modified in place
    key = (id(rast), "raster_aux")
    assert key in _cache._MEMO
    del rast
    gc.collect()
    assert key not in _cache._MEMO  # the entry dies with its rast


def test_memo_entries_follow_their_owner_and_dependencies():
    import gc

    from facezoo.render import _cache

    owner, dep = torch.arange(6.0), torch.ones(3)
    calls = []
    value = _cache.cached(owner, "double", lambda t: calls.append(1) or t * 2)
    assert _cache.cached(owner, "double", lambda t: calls.append(1) or t * 2) is value and len(calls) == 1
    owner += 1  # an in-place edit invalidates the entry
    assert torch.equal(_cache.cached(owner, "double", lambda t: t * 2), torch.arange(1.0, 7.0) * 2)
    _cache.remember(owner, "aux", "kept", dep)
    assert _cache.recall(owner, "aux", dep) == "kept"
    assert _cache.recall(owner, "aux", dep.clone()) is None  # another dependency
    assert _cache.recall(owner, "aux") is None  # not the dependencies it was made from
    dep.mul_(2)
    assert _cache.recall(owner, "aux", dep) is None  # dependency edited in place
    keys = {(id(owner), "double"), (id(owner), "aux")}
    assert keys <= _cache._MEMO.keys()
    del owner
    gc.collect()
    assert not keys & _cache._MEMO.keys()  # freed with the owner, no size limit involved
    with torch.inference_mode():
        frozen = torch.ones(2)
    _cache.remember(frozen, "aux", "never", dep)
    assert _cache.recall(frozen, "aux", dep) is None
