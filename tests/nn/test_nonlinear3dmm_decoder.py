"""The global-local UV decoder's local pathway: parts placed at their boxes, max-fused, 0 elsewhere."""

import torch

from facezoo.nn import GlobalLocalConfig, GlobalLocalDecoder

BOXES = ((0, 0, 16, 16), (8, 8, 16, 24), (24, 16, 8, 8))


def test_local_parts_are_placed_and_max_fused_where_they_overlap():
    torch.manual_seed(0)
    cfg = GlobalLocalConfig(
        latent_dim=6, uv_size=(32, 40), channels=(8, 8, 8, 8, 8, 8), local_channels=(4, 4, 4, 4),
        local_boxes=BOXES, fusion_channels=4,
    )  # fmt: skip
    dec = GlobalLocalDecoder(cfg).eval()
    code = torch.randn(2, 6)
    canvas = dec._local(code)
    # each part network run on its own (independent of _local's padding) and placed by indexing
    expected = torch.full((2, 4, 32, 40), float("-inf"))
    covered = torch.zeros(32, 40, dtype=torch.bool)
    for (t, l, h, w), fc, up in zip(BOXES, dec.local_fc, dec.local_up):
        part = up(fc(code).view(2, 4, h // 8, w // 8))
        assert part.shape[-2:] == (h, w)
        region = expected[:, :, t : t + h, l : l + w]
        expected[:, :, t : t + h, l : l + w] = torch.maximum(region, part)
        covered[t : t + h, l : l + w] = True
    expected[:, :, ~covered] = 0
    assert torch.allclose(canvas, expected)
    assert canvas[:, :, ~covered].abs().sum() == 0
    assert dec(code).shape == (2, 3, 32, 40)  # a UV size that is not a multiple of 32


def test_global_only_decoder_has_no_local_pathway():
    cfg = GlobalLocalConfig(
        latent_dim=6, uv_size=(32, 40), channels=(8,) * 6, local_boxes=(), fusion_channels=4
    )
    dec = GlobalLocalDecoder(cfg)
    assert len(dec.local_fc) == 0 and dec.fusion[0][0].in_channels == 8
    assert dec(torch.randn(2, 6)).shape == (2, 3, 32, 40)
