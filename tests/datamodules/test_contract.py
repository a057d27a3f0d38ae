"""Every datamodule's declared contract (``provides``, ``partial``, ``protocol``) against real batches, the
base arguments reached through ``**kwargs`` (also by jsonargparse), and ``Mixture``'s batch composition."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from facezoo.datamodules import (
    AFLW2000,
    MICC,
    W300LP,
    ImageFolder,
    LFWPairs,
    Mixture,
    MultiPIE,
    SyntheticFaces,
    SyntheticPairs,
    VGGFace2,
)
from PIL import Image

from facezoo.cli import main

BOOKKEEPING = {"skipped", "valid"}
LM5 = "20 25\n44 25\n32 37\n22 48\n42 48\n"


def batch_names(batch: dict) -> set[str]:
    """The batch's keys as ``provides`` names them: top-level keys and ``params.<sub>``."""
    names = set(batch) - BOOKKEEPING
    names |= {f"params.{k}" for k in batch.get("params", {})}
    return names


def declared_names(dm) -> set[str]:
    return set(dm.provides) | {f"params.{k}" for k in dm.provides.get("params", ())}


def check(dm, batch: dict) -> None:
    """The batch has exactly the declared keys; every masked key is declared partial."""
    assert batch_names(batch) == declared_names(dm)
    assert set(batch.get("valid", {})) <= set(dm.partial)


# ------------------------------------------------------------------------------------------ fixtures


ANGLES = np.linspace(0, 2 * np.pi, 68, endpoint=False)
LM68 = "\n".join(f"{32 + 14 * np.cos(a)} {36 + 16 * np.sin(a)}" for a in ANGLES) + "\n"


def write(path, rng, size: int = 64, landmarks: str | None = None):
    """A random RGB image at ``path`` (folders created) and, when given, its landmark file beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    if landmarks is not None:
        path.with_suffix(".txt").write_text(landmarks)


def image_folder(root, n: int = 4):
    """``n`` images with landmark files: 68 points for the even ones, 5 for the odd ones."""
    rng = np.random.default_rng(0)
    for i in range(n):
        write(root / f"{i}.jpg", rng, landmarks=LM5 if i % 2 else LM68)
    return root


def vggface2(root, classes: int = 4, per_class: int = 3):
    """VGGFace2 layout; the loose-landmark file lists the first image of each class only."""
    rng = np.random.default_rng(1)
    rows = ["NAME_ID,P1X,P1Y,P2X,P2Y,P3X,P3Y,P4X,P4Y,P5X,P5Y"]
    for c in range(classes):
        for j in range(per_class):
            write(root / "train" / f"n{c:06d}" / f"{j:04d}_01.jpg", rng)
        rows.append(f'"n{c:06d}/0000_01",20,25,44,25,32,37,22,48,42,48')
    (root / "bb_landmark").mkdir()
    (root / "bb_landmark/loose_landmark_train.csv").write_text("\n".join(rows) + "\n")
    return root


def multipie(root):
    """Two subjects, one triplet each; landmark files for the first subject only."""
    rng = np.random.default_rng(2)
    for subject in (1, 2):
        for cam in ("05_1", "14_0", "05_0"):
            name = f"{subject:03d}_01_01_{cam.replace('_', '')}_07.png"
            path = root / "session01/multiview" / f"{subject:03d}" / "01" / cam / name
            write(path, rng, landmarks=LM68 if subject == 1 else None)
    return root


def micc(root):
    """Two subjects with a scan and two frames each; the first frame of each has a 5-point file."""
    rng = np.random.default_rng(3)
    for s in (1, 2):
        obj = root / f"subject_{s:02d}/Model/frontal1/obj/scan.obj"
        obj.parent.mkdir(parents=True)
        obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        for f in range(2):
            path = root / "frames" / f"subject_{s:02d}" / "PTZ-Indoor" / f"frame{f:04d}.jpg"
            write(path, rng, 72, landmarks=LM5 if f == 0 else None)
    return root


def lfw(root):
    rng = np.random.default_rng(4)
    for name in ("Ann_Lee", "Bo_Li"):
        for k in (1, 2):
            write(root / name / f"{name}_{k:04d}.jpg", rng)
    (root / "pairs.txt").write_text("1\t1\nAnn_Lee\t1\t2\nAnn_Lee\t1\tBo_Li\t2\n")
    return root


# ------------------------------------------------------------------------------- provides == real batch

SMALL = dict(image_size=32, num_workers=0)


def test_w300lp_single_triplet_and_flip(w300lp_root):
    for mode in ("single", "triplet"):
        dm = W300LP(root=str(w300lp_root), mode=mode, batch_size=4, **SMALL)
        check(dm, next(iter(dm.train_dataloader())))
        assert dm.partial == () and dm.protocol == "reconstruction"
    # a flip drops the identity/expression labels of a mirrored face: they become partial
    flipped = W300LP(root=str(w300lp_root), batch_size=10, p_flip=1.0, **SMALL)
    assert flipped.partial == ("params.id", "params.exp")
    batch = next(iter(flipped.train_dataloader()))
    assert set(batch["params"]) == {"pose"}  # every sample flipped: the keys are absent, not zero-filled
    assert batch_names(batch) <= declared_names(flipped)
    assert declared_names(flipped) - batch_names(batch) == set(flipped.partial)


def test_aflw2000(aflw_root):
    dm = AFLW2000(root=str(aflw_root), batch_size=3, **SMALL)
    check(dm, next(iter(dm.test_dataloader())))
    with pytest.raises(ValueError, match="AFLW2000: p_flip, p_color are train-time augmentation"):
        AFLW2000(root=str(aflw_root), p_flip=0.5)


def test_image_folder_with_partial_68_point_files(tmp_path):
    dm = ImageFolder(root=str(image_folder(tmp_path)), batch_size=4, **SMALL)
    batch = next(iter(dm.train_dataloader()))
    check(dm, batch)
    assert batch["valid"]["landmarks68"].sum() == 2 and dm.partial == ("landmarks68",)


def test_vggface2_pxk_with_partial_landmarks(tmp_path):
    dm = VGGFace2(root=str(vggface2(tmp_path)), p=2, k=3, **SMALL)
    assert dm.batch_size == 6
    batch = next(iter(dm.train_dataloader()))
    check(dm, batch)
    assert 0 < int(batch["valid"]["landmarks5"].sum()) < 6


def test_multipie_with_partial_landmarks(tmp_path):
    dm = MultiPIE(root=str(multipie(tmp_path)), test_fraction=0.0, batch_size=2, max_shift=0.0, **SMALL)
    batch = next(iter(dm.train_dataloader()))
    check(dm, batch)
    assert batch["valid"]["landmarks68"].tolist() == [True, False]
    assert dm.batch_size == 2 and MultiPIE(root="x").batch_size == 12  # its own default
    with pytest.raises(ValueError, match="MultiPIE: p_flip must be 0"):
        MultiPIE(root="x", p_flip=0.5)


def test_micc_frames_and_subjects(tmp_path):
    root = str(micc(tmp_path))
    frames = MICC(root=root, batch_size=4, **SMALL)
    batch = next(iter(frames.test_dataloader()))
    check(frames, batch)
    assert batch["valid"]["landmarks5"].tolist() == [True, False, True, False] and frames.protocol == "micc"
    grouped = MICC(root=root, group="subject", frames_per_subject=2, batch_size=2, **SMALL)
    check(grouped, next(iter(grouped.test_dataloader())))
    assert "landmarks5" not in grouped.provides and MICC(root=root).batch_size == 8


def test_lfw_pairs(tmp_path):
    dm = LFWPairs(root=str(lfw(tmp_path)), batch_size=2, **SMALL)
    check(dm, next(iter(dm.test_dataloader())))
    assert dm.protocol == "verification" and dm.batch_size == 2 and LFWPairs(root="x").batch_size == 16
    with pytest.raises(ValueError, match="shards are not supported"):
        LFWPairs(root="x", shards="y")


def test_rendered_datamodules():
    faces = SyntheticFaces("procedural:600", image_size=24, batch_size=2, num_train=2)
    check(faces, next(iter(faces.train_dataloader())))
    pairs = SyntheticPairs("procedural:600", image_size=24, num_pairs=4, n_folds=2, batch_size=2)
    check(pairs, next(iter(pairs.test_dataloader())))
    assert (faces.protocol, pairs.protocol) == ("reconstruction", "verification")


def test_evaluation_sets_have_no_training_split(aflw_root, tmp_path):
    for dm in (AFLW2000(root=str(aflw_root)), LFWPairs(root=str(tmp_path))):
        with pytest.raises(RuntimeError, match=f"{type(dm).__name__} is an evaluation set"):
            dm.train_dataloader()


# ------------------------------------------------------------------ the base arguments through **kwargs


@pytest.mark.parametrize(
    "name, batch_size, own",
    [("W300LP", 32, "--data.mode"), ("MultiPIE", 12, "--data.left_cameras"), ("MICC", 8, "--data.group"),
     ("LFWPairs", 16, "--data.center_fraction"), ("VGGFace2", 32, "--data.p ")],
)  # fmt: skip
def test_cli_help_lists_the_base_arguments_with_docs(capsys, name, batch_size, own):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--data.help", name])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for arg in ("--data.root", "--data.num_workers", "--data.image_size", "--data.on_bad_sample", own):
        assert arg in text
    documented = re.search(r"--data\.batch_size BATCH_SIZE (\w.*?)\(type: int, default: (\d+)\)", text)
    assert documented and int(documented[2]) == batch_size  # documented, with the class's own default
    assert "side of the square crops in pixels" in text and "DataLoader workers" in text


def test_config_sets_base_and_own_arguments(tmp_path, w300lp_root):
    """A datamodule config with a base argument (seed, p_color) and an own one parses and instantiates."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    parser = ArgumentParser()
    parser.add_subclass_arguments(LightningDataModule, "data")
    cfg = parser.parse_args(
        ["--data=facezoo.datamodules.W300LP", f"--data.root={w300lp_root}", "--data.mode=triplet",
         "--data.seed=7", "--data.p_color=0.5"]
    )  # fmt: skip
    dm = parser.instantiate(cfg).data
    assert (dm.options["mode"], dm.seed, dm.augment.p_color, dm.batch_size) == ("triplet", 7, 0.5, 32)


# ------------------------------------------------------------------------------------------- Mixture


def test_mixture_keeps_pxk_groups_and_marks_mixed_labels(tmp_path, w300lp_root):
    vgg = VGGFace2(root=str(vggface2(tmp_path / "vgg", classes=6)), p=2, k=3, **SMALL)
    lp = W300LP(root=str(w300lp_root), batch_size=6, **SMALL)
    mix = Mixture([vgg, lp], probabilities=[0.5, 0.5], blocks=2, num_batches=12, num_workers=0, seed=3)
    batches = list(mix.train_dataloader())
    assert len(batches) == 12 and all(len(b["image"]) == 12 for b in batches)
    mixed = 0
    for batch in batches:
        blocks = [batch["path"][6 * b : 6 * b + 6] for b in range(2)]
        from_vgg = [all("/vgg/" in p for p in paths) for paths in blocks]
        assert all(from_vgg[b] or all("300W_LP" in p for p in paths) for b, paths in enumerate(blocks))
        for b in range(2):
            if from_vgg[b]:  # one P x K batch of VGGFace2's own sampler: 2 identities x 3 images, in order
                ids = batch["identity"][6 * b : 6 * b + 6].tolist()
                assert ids[0] == ids[1] == ids[2] and ids[3] == ids[4] == ids[5] and ids[0] != ids[3]
        if from_vgg[0] != from_vgg[1]:
            mixed += 1
            rows_lp = torch.tensor([not v for v in from_vgg]).repeat_interleave(6)
            # rows from VGGFace2 lack the 300W-LP labels: zero placeholders, masked out
            valid = batch["valid"]
            assert torch.equal(valid["params"], rows_lp) and torch.equal(valid["landmarks68"], rows_lp)
            assert (batch["landmarks68"][~rows_lp] == 0).all()
            assert (batch["params"]["id"][~rows_lp] == 0).all()
            assert not valid["landmarks5"][rows_lp].any()
    assert mixed > 0
    # the same epoch draws the same samples (W300LP's random box shift aside); the next epoch others
    again = list(mix.train_dataloader())
    assert [b["path"] for b in again] == [b["path"] for b in batches]
    sampler = mix.train_dataloader().sampler
    first, sampler.epoch = list(sampler), 1
    assert list(sampler) != first


def test_mixture_forwards_protocol_provides_and_partial(tmp_path, w300lp_root):
    vgg = VGGFace2(root=str(vggface2(tmp_path / "vgg")), **SMALL)
    lp = W300LP(root=str(w300lp_root), **SMALL)
    pairs = LFWPairs(root=str(lfw(tmp_path / "lfw")), **SMALL)
    mix = Mixture([vgg, lp, pairs], eval_member=2)
    assert mix.protocol == "verification" and mix.eval_datamodule is pairs
    assert Mixture([vgg, lp]).protocol == "reconstruction"
    provided = declared_names(mix)
    assert provided == declared_names(vgg) | declared_names(lp) | declared_names(pairs)
    # image, affine, path, index are in every member; everything else is partial (landmarks5 also in VGGFace2)
    assert set(mix.partial) == provided - {"image", "affine", "path", "index"}
    assert len(next(iter(mix.test_dataloader()))["same"]) == 2
    with pytest.raises(ValueError, match="share one image_size"):
        Mixture([vgg, W300LP(root=str(w300lp_root), image_size=64)])
    with pytest.raises(ValueError, match="eval_member must be in"):
        Mixture([vgg], eval_member=1)


# ------------------------------------------------------------------ model -> data links (facezoo.cli)


@pytest.fixture
def parsed(monkeypatch):
    """``parsed(args)``: run ``facezoo fit args`` up to the instantiated classes, return (model, data)."""
    from lightning.pytorch.cli import LightningCLI

    seen = []
    monkeypatch.setattr(LightningCLI, "_run_subcommand", lambda self, sub: seen.append(self))

    def run(args):
        model = ["--model=facezoo.methods.Deep3DFace", "--model.morphable_model=procedural:600",
                 "--model.image_size=40", "--model.backbone=resnet18", "--trainer.logger=false"]  # fmt: skip
        assert main(["fit", *model, *args]) == 0
        return seen[-1].model, seen[-1].datamodule

    return run


def test_data_takes_image_size_and_morphable_model_from_the_model(parsed, tmp_path, w300lp_root):
    model, data = parsed(["--data=facezoo.datamodules.SyntheticFaces"])
    assert (
        (data.image_size, data.morphable_model)
        == (40, "procedural:600")
        == (40, model.hparams.morphable_model)
    )
    # a datamodule without morphable_model takes the image size only; one with neither is left alone
    _, data = parsed(["--data=facezoo.datamodules.W300LP", f"--data.root={w300lp_root}"])
    assert data.image_size == 40
    member = f"{{class_path: facezoo.datamodules.W300LP, init_args: {{root: {w300lp_root}, image_size: 40}}}}"
    _, data = parsed(["--data=facezoo.datamodules.Mixture", f"--data.datamodules=[{member}]"])
    assert data.members[0].image_size == 40


def test_mixture_sampler_under_ddp_draws_the_same_members_and_disjoint_samples():
    """Two ranks: each builds its members' rank-aware samplers; the member sequence is shared, the samples are
    not (within a member's pass), and P x K groups stay whole."""
    from facezoo.datamodules.mixture import MixtureBlockSampler
    from torch.utils.data import BatchSampler

    from facezoo.data import IdentityBalancedSampler, ShardedRandomSampler

    labels = [i // 4 for i in range(64)]  # 16 identities x 4 images: 4 P x K batches per rank and pass
    steps = []
    for rank in (0, 1):
        plain = BatchSampler(ShardedRandomSampler(range(80), num_replicas=2, rank=rank, seed=1), 4, True)
        pxk = BatchSampler(IdentityBalancedSampler(labels, 2, 2, num_replicas=2, rank=rank, seed=1), 4, True)
        # 4 member batches in all: no member starts a second pass (which may repeat the other rank's samples)
        sampler = MixtureBlockSampler([plain, pxk], [0.5, 0.5], num_batches=2, blocks=2, seed=5)
        sampler.set_epoch(3)
        steps.append(list(sampler))
    assert [[m for m, _ in step] for step in steps[0]] == [[m for m, _ in step] for step in steps[1]]
    for member in (0, 1):
        seen = [[i for step in s for m, idx in step if m == member for i in idx] for s in steps]
        assert seen[0] and set(seen[0]).isdisjoint(seen[1])
    for step in steps[0] + steps[1]:
        for m, idx in step:
            if m == 1:  # 2 identities x 2 images, in order
                ids = [labels[i] for i in idx]
                assert ids[0] == ids[1] != ids[2] == ids[3]


@pytest.mark.parametrize("kwargs", [{"image_size": 0}, {"batch_size": 0}, {"num_workers": -1}, {"image_size": 2.5}])
def test_bad_loader_sizes_are_named(kwargs):
    from facezoo.datamodules import AFLW2000, SyntheticFaces

    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"^{name}: expected an integer"):
        SyntheticFaces(**kwargs)
    with pytest.raises(ValueError, match=f"^{name}: expected an integer"):
        AFLW2000(root="unused", **kwargs)
