import numpy as np
import pytest

from facezoo.data import BadSampleError, landmarks

# Semantic left/right pairs of iBUG-68 (0-based), written independently of the permutation.
PAIRS = [
    (0, 16),
    (1, 15),
    (7, 9),
    (17, 26),
    (21, 22),
    (31, 35),
    (32, 34),
    (36, 45),
    (39, 42),
    (37, 44),
    (41, 46),
    (48, 54),
    (49, 53),
    (55, 59),
    (60, 64),
    (61, 63),
    (65, 67),
]
CENTRE = [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]


def test_ibug68_flip_is_an_involution_mapping_pairs():
    perm = np.array(landmarks.IBUG68_FLIP)
    assert sorted(perm) == list(range(68))
    assert (perm[perm] == np.arange(68)).all()
    for a, b in PAIRS:
        assert perm[a] == b and perm[b] == a
    assert all(perm[c] == c for c in CENTRE)
    assert (
        sorted(landmarks.LANDMARKS5_FLIP) == list(range(5))
        and landmarks.LANDMARKS5_FLIP[landmarks.LANDMARKS5_FLIP[0]] == 0
    )


def test_flip_of_symmetric_face_is_itself():
    rng = np.random.default_rng(0)
    lm = rng.normal(size=(68, 2))
    lm[[b for _, b in PAIRS]] = lm[[a for a, _ in PAIRS]] * [-1, 1]
    lm[CENTRE, 0] = 0
    # fill the remaining pairs symmetrically too
    perm = np.array(landmarks.IBUG68_FLIP)
    for i in range(68):
        if perm[i] > i:
            lm[perm[i]] = lm[i] * [-1, 1]
    flipped = lm[perm] * [-1, 1]
    np.testing.assert_allclose(flipped, lm)


def test_pts_and_txt(tmp_path):
    pts = np.arange(136, dtype=float).reshape(68, 2)
    p = tmp_path / "a.pts"
    p.write_text("version: 1\nn_points:  68\n{\n" + "\n".join(f"{x} {y}" for x, y in pts) + "\n}\n")
    np.testing.assert_array_equal(landmarks.read_pts(p), pts)
    np.testing.assert_array_equal(landmarks.read_landmark_file(p), pts)
    t = tmp_path / "a.txt"
    t.write_text("".join(f"{x}\t{y}\n" for x, y in pts[:5]))
    np.testing.assert_array_equal(landmarks.read_txt_points(t), pts[:5])
    np.testing.assert_allclose(landmarks.landmarks68_to_5(pts)[0], (pts[36] + pts[39]) / 2)
    t.write_text("1 2\n3 4\n")
    with pytest.raises(BadSampleError, match="expected 5 landmarks, found 2"):
        landmarks.read_txt_points(t)
    p.write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(BadSampleError, match="n_points: 68 but 1"):
        landmarks.read_pts(p)
    t.write_text("1 x\n")
    with pytest.raises(BadSampleError, match="malformed"):
        landmarks.read_txt_points(t)


def test_real_deep3d_detections(shared_data):
    files = sorted((shared_data / "deep3d_examples/detections").glob("*.txt"))
    assert files
    for f in files:
        lm = landmarks.read_txt_points(f)
        assert (
            lm.shape == (5, 2) and lm[0, 0] < lm[1, 0] and lm[2, 1] < lm[3, 1]
        )  # eyes l->r, nose above mouth


META = (
    'Class_ID, Name, Sample_Num, Flag, Gender\nn000001," ""14th_Dalai_Lama""",424,0, m\n'
    'n000659," ""Anne-Marie_Duff""",0, f,\n'
)


def test_vggface2_meta_quirks(tmp_path):
    p = tmp_path / "identity_meta.csv"
    p.write_text(META)
    meta = landmarks.read_vggface2_meta(p)
    assert meta["n000001"] == {"name": "14th_Dalai_Lama", "sample_num": 424, "flag": 0, "gender": "m"}
    assert meta["n000659"] == {"name": "Anne-Marie_Duff", "sample_num": None, "flag": 0, "gender": "f"}


def test_vggface2_real_meta(shared_data):
    meta = landmarks.read_vggface2_meta(shared_data / "vggface2/identity_meta.csv")
    assert len(meta) == 9131
    assert sum(m["flag"] == 0 for m in meta.values()) == 500  # the 500 test identities
    assert all(m["gender"] in ("m", "f") and '"' not in m["name"] for m in meta.values())


def test_vggface2_csvs(tmp_path):
    bb = tmp_path / "loose_bb_train.csv"
    bb.write_text('NAME_ID,X,Y,W,H\n"n000001/0001_01",60,60,79,109\n')
    assert landmarks.read_vggface2_boxes(bb)["n000001/0001_01"].tolist() == [60, 60, 79, 109]
    lm = tmp_path / "loose_landmark_train.csv"
    lm.write_text('NAME_ID,P1X,P1Y,P2X,P2Y,P3X,P3Y,P4X,P4Y,P5X,P5Y\n"n000001/0001_01",1,2,3,4,5,6,7,8,9,10\n')
    assert landmarks.read_vggface2_landmarks(lm)["n000001/0001_01"].shape == (5, 2)
    lm.write_text('NAME_ID,P1X,P1Y,P2X,P2Y,P3X,P3Y,P4X,P4Y,P5X,P5Y\n"n000001/0001_01",1,2,3\n')
    with pytest.raises(BadSampleError, match="expected 10 values"):
        landmarks.read_vggface2_landmarks(lm)
