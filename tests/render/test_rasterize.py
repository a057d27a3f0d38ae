import numpy as np
import pytest
import torch
from _reference import grid_surface, reference_rasterize
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from facezoo.render import rasterize, use_kernels
from facezoo.render._runtime import _load

WARP = _load()[0] is not None
IMPLS = ["torch"] + (["warp"] if WARP else [])


def _rast(pos, tri, res, impl, cull=False):
    with use_kernels(impl):
        return rasterize(pos, tri, res, backend="builtin", cull_backface=cull)


def _extra_coverage_is_on_an_edge(pos, tri, got, ids, res) -> bool:
    """Pixels the reference leaves empty but ``got`` covers must lie on the chosen triangle's edge, or at the
    depth range's bound (within rounding): the only places where two exact predicates may disagree."""
    height, width = res
    for b, r, c in zip(*np.nonzero((ids < 0) & (got >= 0))):
        i, j, k = tri[got[b, r, c]]
        m = np.array([pos[b, [i, j, k], 0], pos[b, [i, j, k], 1], pos[b, [i, j, k], 3]])
        p = np.array([(2 * c + 1) / width - 1, 1 - (2 * r + 1) / height, 1.0])
        lam = np.linalg.solve(m, p)
        bc = lam / lam.sum()
        zw = (bc @ pos[b, [i, j, k], 2]) * lam.sum()
        if not (bc.min() > -1e-6 and (bc.min() < 1e-6 or abs(abs(zw) - 1) < 1e-6)):
            return False
    return True


def _compare(pos, tri, res, impl, cull=False, need_pixels=False):
    rast = _rast(pos, tri, res, impl, cull)
    ids, bary, zw, margin, gap = reference_rasterize(pos.double().numpy(), tri.numpy(), *res, cull=cull)
    got = rast[..., 3].long().numpy() - 1
    # interior pixels: clearly inside the winner (or clearly empty) and no depth near-tie
    interior = (ids >= 0) & (margin > 1e-4) & (gap > 1e-6)
    if need_pixels:
        assume(interior.sum() > 0)  # an example without comparable pixels tests nothing
    np.testing.assert_array_equal(got[interior], ids[interior])
    # empty reference pixels stay empty, but where a triangle's edge or the depth bound passes the centre
    assert _extra_coverage_is_on_an_edge(pos.double().numpy(), tri.numpy(), got, ids, res)
    ours = rast[..., :2].double().numpy()
    np.testing.assert_allclose(ours[interior], bary[interior][:, :2], atol=1e-4)
    np.testing.assert_allclose(rast[..., 2].double().numpy()[interior], zw[interior], atol=1e-4)
    return interior.sum()


@st.composite
def meshes(draw):
    """Random small meshes, mostly on screen (NDC x, y in [-1.1, 1.1], z/w in [-0.95, 0.95]), some with a
    vertex behind the eye (crossing the near plane) or a collapsed triangle."""
    n_vert = draw(st.integers(3, 9))
    n_tri = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    w = 0.5 + 2 * torch.rand(2, n_vert, 1, generator=g)
    xy = (torch.rand(2, n_vert, 2, generator=g) * 2.2 - 1.1) * w
    z = (torch.rand(2, n_vert, 1, generator=g) * 1.9 - 0.95) * w
    pos = torch.cat((xy, z, w), -1)
    if draw(st.booleans()):  # one vertex behind the eye: a triangle crossing the near plane
        pos[:, 0, 3] = -0.5
        pos[:, 0, 2] = -1.0
    tri = torch.randint(0, n_vert, (n_tri, 3), generator=g, dtype=torch.int32)
    if draw(st.booleans()):  # a degenerate (collapsed) triangle
        tri[0, 2] = tri[0, 1]
    return pos.float().contiguous(), tri


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mesh=meshes(), cull=st.booleans())
def test_matches_reference_on_random_meshes(impl, mesh, cull):
    pos, tri = mesh
    _compare(pos, tri, (9, 12), impl, cull, need_pixels=True)


@pytest.mark.parametrize("impl", IMPLS)
def test_matches_reference_on_grid_surface(impl):
    pos, tri = grid_surface(100, batch=2)
    pos[1, :, :2] += 0.05  # a different pose per batch item
    assert _compare(pos, tri, (16, 20), impl) > 100


def test_warp_and_torch_agree_on_real_size_mesh():
    if not WARP:
        pytest.skip("warp not importable")
    pos, tri = grid_surface(10000, batch=2)
    a = _rast(pos, tri, (64, 64), "warp")
    b = _rast(pos, tri, (64, 64), "torch")
    assert (a[..., 3] == b[..., 3]).float().mean() > 0.999
    same = a[..., 3] == b[..., 3]
    torch.testing.assert_close(a[same], b[same], atol=1e-6, rtol=0)


def test_top_row_first_and_empty_pixels_are_zero():
    # a triangle in the upper half of NDC (y > 0) must land in the top rows
    pos = torch.tensor([[[-0.8, 0.1, 0.0, 1.0], [0.8, 0.1, 0.0, 1.0], [0.0, 0.9, 0.0, 1.0]]])
    rast = rasterize(pos, torch.tensor([[0, 1, 2]], dtype=torch.int32), (8, 8), backend="builtin")
    covered = rast[0, ..., 3] > 0
    assert covered[:4].any() and not covered[4:].any()
    assert (rast[0][~covered] == 0).all()
    # u weights the first vertex: near vertex 0 (bottom-left of the triangle) u is largest
    r, c = 3, 1
    assert covered[r, c] and rast[0, r, c, 0] > rast[0, r, c, 1]


def test_backface_culling_and_nearest_wins():
    ccw = torch.tensor([[[-1.0, -1.0, 0.5, 1.0], [1.0, -1.0, 0.5, 1.0], [-1.0, 1.0, 0.5, 1.0]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    assert (rasterize(ccw, tri, (4, 4), cull_backface=True)[..., 3] > 0).any()
    assert (rasterize(ccw, tri.flip(1), (4, 4), cull_backface=True)[..., 3] == 0).all()
    assert (rasterize(ccw, tri.flip(1), (4, 4))[..., 3] > 0).any()
    near = ccw.clone()
    near[..., 2] = -0.5
    pos = torch.cat((ccw, near), 1)
    rast = rasterize(pos, torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32), (4, 4))
    assert set(rast[..., 3].unique().tolist()) == {0.0, 2.0}
    assert torch.allclose(rast[..., 2][rast[..., 3] > 0], torch.tensor(-0.5))


def test_input_checks_name_the_argument():
    pos = torch.zeros(1, 3, 4)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    with pytest.raises(ValueError, match="pos_clip"):
        rasterize(torch.zeros(1, 3, 3), tri, (4, 4))
    with pytest.raises(TypeError, match="pos_clip"):
        rasterize(pos.half(), tri, (4, 4))
    with pytest.raises(TypeError, match="tri"):
        rasterize(pos, tri.float(), (4, 4))
    with pytest.raises(ValueError, match="tri"):
        rasterize(pos, tri + 5, (4, 4))
    with pytest.raises(ValueError, match="resolution"):
        rasterize(pos, tri, (0, 4))
    with pytest.raises(ValueError, match="backend"):
        rasterize(pos, tri, (4, 4), backend="nope")
    with pytest.raises(RuntimeError, match="nvdiffrast"):
        rasterize(pos, tri, (4, 4), backend="nvdiffrast")


@pytest.mark.gpu
def test_cuda_matches_cpu():
    pos, tri = grid_surface(10000, batch=2)
    a = rasterize(pos, tri, (64, 64), backend="builtin")
    b = rasterize(pos.to("cuda"), tri.to("cuda"), (64, 64), backend="builtin").cpu()
    assert (a[..., 3] == b[..., 3]).float().mean() > 0.9999
    same = a[..., 3] == b[..., 3]
    torch.testing.assert_close(a[same], b[same], atol=1e-5, rtol=0)


@pytest.mark.gpu
def test_nvdiffrast_matches_builtin():
    pytest.importorskip("nvdiffrast.torch")
    pos, tri = grid_surface(10000, batch=2)
    pos = pos.to("cuda")
    tri = tri.to("cuda")
    a = rasterize(pos, tri, (128, 128), backend="builtin")
    b = rasterize(pos, tri, (128, 128), backend="nvdiffrast")
    same = a[..., 3] == b[..., 3]
    assert same.float().mean() >= 0.9999
    close = ((a[..., :2] - b[..., :2]).abs() <= 1e-3).all(-1)
    assert close[same].float().mean() >= 0.999
