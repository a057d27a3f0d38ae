"""SyntheticIdentities and the Mixture features SIR needs: P x K identity groups intact through the mixture,
labels dropped per member and marked invalid, Eq. 22's mixing probabilities."""

import pytest
import torch
from facezoo.datamodules import Mixture, SyntheticIdentities

from facezoo.data import sir_probabilities

MODEL = "procedural:600:8:4:8"


def ids_dm(**kwargs) -> SyntheticIdentities:
    args = dict(morphable_model=MODEL, image_size=32, num_identities=8, images_per_identity=3, p=2, k=3,
                num_val=2, renderer_backend="builtin")  # fmt: skip
    return SyntheticIdentities(**{**args, **kwargs})


def test_images_share_their_identity_and_part_keep_3d_labels():
    dm = ids_dm(labelled_fraction=0.25)
    ds = dm.dataset("train")
    assert len(ds) == 24 and ds.labels[:7] == [0, 0, 0, 1, 1, 1, 2]
    a, b, c = ds.__getitems__([3, 4, 21])
    # images 3 and 4: identity 1 (labelled: the first 2 of 8), same shape, different expression or pose
    assert a["identity"] == b["identity"] == 1 and (a["view"], b["view"]) == (0, 1)
    assert torch.equal(a["params"]["id"], b["params"]["id"]) and not torch.equal(
        a["params"]["exp"], b["params"]["exp"]
    )
    assert c["identity"] == 7 and not any(k in c for k in ("landmarks68", "params", "yaw", "landmarks5"))
    assert set(dm.partial) >= {"landmarks68", "params", "params.id"}
    assert ids_dm(labelled_fraction=1.0).partial == ()
    val = dm.dataset("val")[0]  # held-out identities carry every label
    assert "landmarks68" in val and "params" in val
    with pytest.raises(ValueError, match="labelled_fraction"):
        ids_dm(labelled_fraction=1.5)
    with pytest.raises(ValueError, match="^image_size: expected an integer"):
        ids_dm(image_size=0)


def test_identity_groups_intact_through_the_mixture_with_dropped_labels():
    recog = ids_dm(labelled_fraction=0.0)  # identity labels only, P x K = 2 x 3
    recon = ids_dm(num_identities=12, images_per_identity=1, labelled_fraction=1.0, p=None, k=None,
                   batch_size=6,
                   identity_offset=100, seed=1)  # fmt: skip
    mix = Mixture([recog, recon], mixing="sir", blocks=2, num_batches=6, drop=[[], ["identity", "params"]],
                  num_workers=0, seed=2)  # fmt: skip
    # Eq. 22: the recognition member is drawn with P = N_recon / (N_recog + N_recon) = 12 / 36
    assert mix.train_dataloader().sampler.probs.tolist() == pytest.approx([12 / 36, 24 / 36])
    assert sir_probabilities(24, 12) == pytest.approx((1 / 3, 2 / 3))
    assert "params" not in mix._member_provides(1) and "identity" in mix.provides
    assert {"identity", "landmarks68", "params"} <= set(mix.partial)
    seen_groups = 0
    for batch in mix.train_dataloader():
        assert batch["image"].shape[0] == 12
        if "identity" not in batch:  # both blocks from the reconstruction member: no identity at all
            assert "params" not in batch and batch["landmarks68"].shape == (12, 68, 2)
            continue
        ident = batch["identity"]
        valid_id = batch.get("valid", {}).get("identity", torch.ones(12, dtype=torch.bool))
        for block in range(2):
            rows = slice(6 * block, 6 * block + 6)
            if valid_id[rows].all():  # a P x K block of the recognition member: 2 identities x 3, in order
                g = ident[rows].view(2, 3)
                assert (g == g[:, :1]).all() and g[0, 0] != g[1, 0] and (g < 100).all()
                seen_groups += 1
            else:  # the reconstruction member: identity (and params) dropped, landmarks real
                assert not valid_id[rows].any() and (ident[rows] == -1).all()
                lm_valid = batch.get("valid", {}).get("landmarks68", torch.ones(12, dtype=torch.bool))
                assert lm_valid[rows].all()
    assert seen_groups > 0
    with pytest.raises(ValueError, match="mixing"):
        Mixture([recog], mixing="sir")
    with pytest.raises(ValueError, match="drop"):
        Mixture([recog, recon], drop=[[]])
