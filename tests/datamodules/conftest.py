"""Miniature dataset layouts written by the tests, in the exact distributed formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

SIZE = 96
LANDMARKS_FOLDER_OFFSET = np.array([2.0, -3.0])  # pts_3d of landmarks/ = the .mat's pt2d + this (pixels)


def rotation_3ddfa(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """3DDFA's MATLAB ``RotationMatrix(phi, gamma, theta)``, written out (independent of facezoo's code)."""
    c, s = np.cos, np.sin
    rx = np.array([[1, 0, 0], [0, c(pitch), s(pitch)], [0, -s(pitch), c(pitch)]])
    ry = np.array([[c(yaw), 0, -s(yaw)], [0, 1, 0], [s(yaw), 0, c(yaw)]])
    rz = np.array([[c(roll), s(roll), 0], [-s(roll), c(roll), 0], [0, 0, 1]])
    return rx @ ry @ rz


def project_3ddfa(points: np.ndarray, pose: np.ndarray, height: float) -> np.ndarray:
    """3DDFA's ``ProjectShape``: ``f R v + t3d`` (Pose_Para = [pitch yaw roll tx ty tz f]), then the image's
    y flip ``height + 1 - y``; z kept. ``points [N,3]`` -> ``[N,3]``."""
    p = pose[6] * points @ rotation_3ddfa(*pose[:3]).T + pose[3:6]
    return np.stack([p[:, 0], height + 1 - p[:, 1], p[:, 2]], 1)


def face_points(rng: np.random.Generator) -> np.ndarray:
    """68 model-space points (µm, like raw BFM) spread over a face-sized ellipse."""
    ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    pts = np.stack([60000 * np.cos(ang), 75000 * np.sin(ang), 20000 * np.cos(ang / 2)], 1)
    return pts + rng.normal(0, 3000, (68, 3))


def write_image(path: Path, rng: np.random.Generator, size: int = SIZE, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, format=fmt)


def write_3ddfa_mat(
    path: Path, rng: np.random.Generator, yaw_deg: float, n2d: int = 68, pt3d: bool = False
) -> np.ndarray:
    """A .mat whose landmarks are the projection of face_points with the written pose. Returns pt3d [68,3]."""
    # float32-exact pose: the file stores float32, and the landmarks are projected with the stored values
    pose = np.array([0.05, np.radians(yaw_deg), -0.03, SIZE / 2, SIZE / 2, 10.0, 4e-4], np.float32)
    proj = project_3ddfa(face_points(rng), pose.astype(np.float64), SIZE)
    mat = {
        "Pose_Para": pose[None],
        "Shape_Para": rng.normal(size=(199, 1)),
        "Exp_Para": rng.normal(size=(29, 1)),
        "Tex_Para": rng.normal(size=(199, 1)),
        "pt2d": proj[:n2d, :2].T,
        "roi": np.array([[0, 0, SIZE, SIZE]], dtype=np.int16),
    }
    if pt3d:
        mat["pt3d_68"] = proj.T.astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, mat)
    return proj


def write_micc_scan(root: Path, subject: int) -> Path:
    """A one-triangle ``scan.obj`` where MICC keeps subject ``subject``'s scan under ``root``."""
    obj = root / f"subject_{subject:02d}/Model/frontal1/obj/scan.obj"
    obj.parent.mkdir(parents=True)
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    return obj


@pytest.fixture
def w300lp_root(tmp_path) -> Path:
    """Two source faces in AFW (+ _Flip mirror with opposite yaws) and one in IBUG, plus landmarks/."""
    rng = np.random.default_rng(0)
    root = tmp_path / "300W_LP"
    yaws = {"AFW_111_1": [5, 20, 40], "IBUG_img_2": [-3, -25]}
    for source, ys in yaws.items():
        subset = source.split("_")[0]
        for k, y in enumerate(ys):
            for folder, sign in ((subset, 1), (f"{subset}_Flip", -1)):
                write_image(root / folder / f"{source}_{k}.jpg", rng)
                proj = write_3ddfa_mat(root / folder / f"{source}_{k}.mat", rng, sign * y)
                if sign == 1:
                    (root / "landmarks" / subset).mkdir(parents=True, exist_ok=True)
                    # the landmarks/ folder's 3D-aware points differ from the .mat's pt2d by a known
                    # offset, so a test can tell which source a sample was cropped from
                    savemat(
                        root / "landmarks" / subset / f"{source}_{k}_pts.mat",
                        {"pts_2d": proj[:, :2], "pts_3d": proj[:, :2] + LANDMARKS_FOLDER_OFFSET},
                    )
    return root


@pytest.fixture
def aflw_root(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    root = tmp_path / "AFLW2000"
    for i, y in enumerate([10, 45, 80]):
        write_image(root / f"image{i:05d}.jpg", rng)
        write_3ddfa_mat(root / f"image{i:05d}.mat", rng, y, n2d=21, pt3d=True)
    return root


@pytest.fixture
def make_image():
    """``make_image(path, rng, size, fmt=None)`` writes a random RGB image."""
    return write_image


@pytest.fixture
def make_3ddfa_mat():
    """``make_3ddfa_mat(path, rng, yaw_deg, n2d=68, pt3d=False)``: write_3ddfa_mat as a fixture."""
    return write_3ddfa_mat


@pytest.fixture
def make_micc_scan():
    """``make_micc_scan(root, subject)`` writes that subject's one-triangle MICC scan."""
    return write_micc_scan
