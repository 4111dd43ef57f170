"""Image format and dimensions from the first bytes of a file, without decoding it.

The pixel limit must be checked before a decoder allocates the image (a small PNG can declare 100,000 x
100,000 pixels), and OpenCV cannot report dimensions without decoding, so the headers of the accepted formats
are parsed here: PNG IHDR, JPEG SOFn, GIF logical screen, BMP DIB header, WebP VP8/VP8L/VP8X.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

FORMATS: tuple[str, ...] = ("jpeg", "png", "webp", "gif", "bmp")


class HeaderError(ValueError):
    """Not one of the accepted formats, or a header that is truncated or malformed."""


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(data: bytes) -> ImageHeader:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _checked("png", *_png(data))
    if data.startswith(b"\xff\xd8\xff"):
        return _checked("jpeg", *_jpeg(data))
    if data[:6] in (b"GIF87a", b"GIF89a"):
        # OpenCV allocates the logical screen and refuses frames that reach beyond it.
        return _checked("gif", *_unpack("<HH", data, 6))
    if data.startswith(b"BM"):
        return _checked("bmp", *_bmp(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _checked("webp", *_webp(data))
    raise HeaderError(f"not a {', '.join(FORMATS[:-1]).upper()} or {FORMATS[-1].upper()} image")


def _checked(fmt: str, width: int, height: int) -> ImageHeader:
    if width <= 0 or height <= 0:
        raise HeaderError(f"{fmt.upper()} header declares {width}x{height} pixels")
    return ImageHeader(fmt, width, height)


def _unpack(layout: str, data: bytes, offset: int) -> tuple[int, ...]:
    if len(data) < offset + struct.calcsize(layout):
        raise HeaderError("image header is truncated")
    return struct.unpack_from(layout, data, offset)


def _png(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise HeaderError("PNG does not start with an IHDR chunk")
    width, height = _unpack(">II", data, 16)
    return width, height


# SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xDA)}  # TEM, RSTn, SOI, EOI


def _jpeg(data: bytes) -> tuple[int, int]:
    offset = 2
    while True:
        # Markers are 0xFF, any number of 0xFF fill bytes, then the marker code.
        (marker,) = _unpack("B", data, offset)
        if marker != 0xFF:
            raise HeaderError("JPEG marker expected before the frame header")
        while (code := _unpack("B", data, offset + 1)[0]) == 0xFF:
            offset += 1
        if code in _JPEG_NO_LENGTH:
            offset += 2
            continue
        if code == 0xDA:
            raise HeaderError("JPEG has no frame header before its scan")
        (length,) = _unpack(">H", data, offset + 2)
        if code in _JPEG_SOF:
            height, width = _unpack(">HH", data, offset + 5)
            return width, height
        if length < 2:
            raise HeaderError("JPEG segment length is invalid")
        offset += 2 + length


def _bmp(data: bytes) -> tuple[int, int]:
    (dib_size,) = _unpack("<I", data, 14)
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit dimensions
        width, height = _unpack("<HH", data, 18)
        return width, height
    width, height = _unpack("<ii", data, 18)
    return width, abs(height)  # negative height: rows stored top-down


def _webp(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: keyframe start code, then 14-bit dimensions
        if data[23:26] != b"\x9d\x01\x2a":
            raise HeaderError("WebP VP8 frame header is invalid")
        width, height = _unpack("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature byte, then 14-bit width-1 and height-1
        if data[20:21] != b"\x2f":
            raise HeaderError("WebP VP8L signature is invalid")
        (bits,) = _unpack("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        w0, w1, w2, h0, h1, h2 = _unpack("6B", data, 24)
        return (w0 | w1 << 8 | w2 << 16) + 1, (h0 | h1 << 8 | h2 << 16) + 1
    raise HeaderError("WebP has no VP8, VP8L or VP8X chunk")
