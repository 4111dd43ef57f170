"""Image headers read without decoding, and decoding with the pixel limit and EXIF orientation."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image
from server_fixture import astronaut, encode, png_declaring

from service.decode import decode, reduction
from service.errors import ApiError
from service.image_header import HeaderError, ImageHeader, read_header

RGB = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)


def pillow(fmt: str, image: np.ndarray = RGB, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("png", pillow("PNG")),
        ("jpeg", pillow("JPEG")),
        ("jpeg", pillow("JPEG", progressive=True)),
        ("jpeg", pillow("JPEG", exif=Image.Exif().tobytes(), icc_profile=b"\0" * 3000)),
        ("gif", pillow("GIF")),
        ("bmp", pillow("BMP")),
        ("webp", pillow("WEBP")),
        ("webp", pillow("WEBP", lossless=True)),
        ("webp", pillow("WEBP", image=np.dstack([RGB, RGB[:, :, 0]]))),  # alpha: the VP8X layout
        ("png", encode(RGB, ".png")),
        ("jpeg", encode(RGB, ".jpg")),
        ("webp", encode(RGB, ".webp")),
        ("bmp", encode(RGB, ".bmp")),
    ],
)
def test_header_dimensions(fmt: str, data: bytes) -> None:
    header = read_header(data)
    assert (header.format, header.width, header.height) == (fmt, 53, 37)


def test_top_down_bmp() -> None:
    data = bytearray(pillow("BMP"))
    data[22:26] = struct.pack("<i", -37)
    assert read_header(bytes(data)).height == 37


@pytest.mark.parametrize(
    "data",
    [b"", b"plain text, not an image", pillow("PNG")[:20], pillow("JPEG")[:40], pillow("TIFF")],
    ids=["empty", "text", "png-cut-in-header", "jpeg-cut-in-header", "tiff"],
)
def test_header_errors(data: bytes) -> None:
    with pytest.raises(HeaderError):
        read_header(data)


def test_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(ApiError) as error:
        decode(png_declaring(100_000, 100_000), max_pixels=40_000_000)
    assert (error.value.status, error.value.code) == (413, "image_too_large")
    assert error.value.details == {"width": 100_000, "height": 100_000, "max_pixels": 40_000_000}


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp"])
def test_truncated_image_is_a_client_error(ext: str) -> None:
    data = encode(astronaut(), ext)
    with pytest.raises(ApiError) as error:
        decode(data[: len(data) // 2], max_pixels=10**7)
    assert (error.value.status, error.value.code) == (400, "invalid_image")


def test_decode_gives_bgr_for_every_format() -> None:
    for fmt in ("PNG", "GIF", "BMP", "WEBP"):
        image = decode(pillow(fmt, **({"lossless": True} if fmt == "WEBP" else {})), 10**6)
        assert image.bgr.shape == (37, 53, 3) and image.bgr.dtype == np.uint8
        if fmt != "GIF":  # GIF is palettised
            assert np.array_equal(image.bgr, RGB[:, :, ::-1])


@pytest.mark.parametrize(("orientation", "turn"), [(6, -1), (8, 1), (3, 2)])
def test_jpeg_exif_orientation_is_applied(orientation: int, turn: int) -> None:
    # A phone photo stored sideways, with the EXIF tag saying how to turn it upright.
    upright = np.zeros((60, 100, 3), np.uint8)
    upright[:, :50] = 255  # white on the left when upright
    stored = np.rot90(upright, -turn)
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode(pillow("JPEG", np.ascontiguousarray(stored), exif=exif.tobytes(), quality=95), 10**6).bgr
    assert decoded.shape == upright.shape
    assert decoded[:, :40].mean() > 200 and decoded[:, 60:].mean() < 50


@pytest.mark.parametrize(
    ("header", "min_side", "divisor"),
    [
        (ImageHeader("jpeg", 4032, 3024), 1600, 2),  # a phone's 12 MP: 2016 px
        (ImageHeader("jpeg", 3024, 4032), 1600, 2),  # the same, portrait
        (ImageHeader("jpeg", 8064, 6048), 1600, 4),
        (ImageHeader("jpeg", 12801, 100), 1600, 8),  # libjpeg rounds up: 1601 px
        (ImageHeader("jpeg", 3199, 2000), 1600, 2),  # half: 1599.5, rounded up to 1600
        (ImageHeader("jpeg", 3198, 2000), 1600, 1),  # half: 1599
        (ImageHeader("jpeg", 1920, 1080), 1600, 1),
        (ImageHeader("jpeg", 4032, 3024), 0, 1),  # 0: whole
        (ImageHeader("png", 4032, 3024), 1600, 1),  # only libjpeg decodes at a reduced scale
    ],
)
def test_reduction_keeps_the_longer_side_at_least_min_side(header: ImageHeader, min_side: int, divisor: int) -> None:
    assert reduction(header, min_side) == divisor


@pytest.mark.parametrize(("orientation", "turn"), [(1, 0), (6, -1)])
def test_large_jpeg_is_decoded_reduced_upright_and_boxes_map_back(orientation: int, turn: int) -> None:
    upright = np.zeros((2000, 3200, 3), np.uint8)
    upright[:, :1600] = 255  # white on the left when upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = pillow("JPEG", np.ascontiguousarray(np.rot90(upright, -turn)), exif=exif.tobytes(), quality=90)

    reduced, whole = decode(data, 10**7, min_side=1600), decode(data, 10**7)
    assert reduced.bgr.shape == (1000, 1600, 3) and whole.bgr.shape == upright.shape
    assert (reduced.width, reduced.height) == (whole.width, whole.height) == (3200, 2000)
    assert reduced.bgr[:, :780].mean() > 250 and reduced.bgr[:, 820:].mean() < 5
    assert reduced.to_upload((100, 50, 400, 300)) == (200, 100, 800, 600)
    assert whole.to_upload((100, 50, 400, 300)) == (100, 50, 400, 300)
    assert reduced.to_upload((1500, 900, 100, 100)) == (3000, 1800, 200, 200)  # up to the upload's edge
