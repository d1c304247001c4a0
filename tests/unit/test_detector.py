"""decode_image: the served model's byte decoding follows the conversions of glcf.data.images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from glcf.inference.detector import ImageDecodeError, decode_image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def test_rgb_png_round_trip() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    out = decode_image(encode(Image.fromarray(rgb)))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


def test_gray_rgba_and_16_bit_are_converted() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = decode_image(encode(Image.fromarray(gray)))
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # fully transparent red: alpha dropped, colour kept
    assert decode_image(encode(Image.fromarray(rgba)))[0, 0].tolist() == [200, 0, 0]
    wide = np.array([[0, 65535], [257, 32896]], dtype=np.uint16)
    out = decode_image(encode(Image.fromarray(wide)))
    assert out[..., 0].tolist() == [[0, 255], [1, 128]]


def test_jpeg_decodes() -> None:
    out = decode_image(encode(Image.new("RGB", (40, 30), (10, 200, 30)), "JPEG"))
    assert out.shape == (30, 40, 3)
    assert abs(int(out[15, 20, 1]) - 200) < 4


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty image data"),
        (b"hello, not an image", "not an image format Pillow can read"),
    ],
)
def test_bad_bytes_name_the_input(data: bytes, needle: str) -> None:
    with pytest.raises(ImageDecodeError, match=needle) as info:
        decode_image(data, name="request image 3")
    assert str(info.value).startswith("request image 3: ")


def test_truncated_png_is_rejected() -> None:
    png = encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ImageDecodeError, match="unreadable or truncated image"):
        decode_image(png[: len(png) // 2])


def test_pixel_limit_is_checked_before_decoding() -> None:
    png = encode(Image.new("RGB", (100, 50)))
    assert decode_image(png, max_pixels=5000).shape == (50, 100, 3)
    with pytest.raises(ImageDecodeError, match="100x50 pixels exceeds the limit of 4999 pixels"):
        decode_image(png, max_pixels=4999)
