"""Images: a 16-bit PNG keeps its values (scaled to 8 bits), an image over PIL's pixel limit is a bad
sample naming the file (no bare DecompressionBombError)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facezoo.data import BadSampleError, load_image
from facezoo.data.io import load_image_uint8


def _png16(path, values: np.ndarray) -> None:
    Image.fromarray(values.astype(np.uint16)).save(path)  # mode I;16
    assert Image.open(path).mode in ("I;16", "I")


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    v = np.linspace(0, 65535, 40 * 30).round().reshape(40, 30).astype(np.uint16)
    _png16(tmp_path / "g16.png", v)
    rgb = load_image_uint8(tmp_path / "g16.png")
    expected = np.round(v.astype(np.float64) * 255 / 65535).astype(np.uint8)  # independent: float rounding
    assert rgb.shape == (40, 30, 3) and (rgb == expected[..., None]).all()
    assert 120 < rgb.mean() < 135  # a ramp, not the almost-white image of convert("RGB")


def test_16bit_png_through_load_image(tmp_path):
    _png16(tmp_path / "mid.png", np.full((8, 8), 32768))
    t = load_image(tmp_path / "mid.png")
    assert t.shape == (3, 8, 8) and float(t.mean()) == pytest.approx(128 / 255)


def test_8bit_images_unchanged(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(grey).save(tmp_path / "l.png")
    rgba = np.dstack([np.full((8, 8, 3), 200, np.uint8), np.full((8, 8), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert (load_image_uint8(tmp_path / "l.png")[..., 1] == grey).all()
    assert (load_image_uint8(tmp_path / "a.png") == 200).all()


def test_image_over_the_pixel_limit_names_the_file(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 3)  # 64x64 is then over twice the limit
    with pytest.raises(BadSampleError, match=r"huge\.png: image too large .*MAX_IMAGE_PIXELS"):
        load_image_uint8(tmp_path / "huge.png")
