"""A corpus of hostile images, generated here, sent to the real server: each input gets its documented status and
error code, the worker stays up, and the peak memory of the server process stays bounded (decompression bombs
included). Inputs already covered by test_api_errors (empty body, text, TIFF/SVG types, truncation at 2/3, a
bomb header with no pixels) are not repeated; the counts by kind are in docs/reliability.md."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image
from server_fixture import API_KEY, ASTRONAUT_FACE, MAX_PIXELS, ServiceProcess, astronaut, centre, encode, inside

pytest_plugins = ["server_fixture"]

RGB = np.ascontiguousarray(astronaut()[:, :, ::-1])
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")


def pillow(image: np.ndarray | Image.Image, fmt: str, mode: str | None = None, **options: object) -> bytes:
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    (picture.convert(mode) if mode else picture).save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def animated(fmt: str, face_first: bool = True) -> bytes:
    frames = [Image.fromarray(RGB), Image.fromarray(np.zeros_like(RGB))]
    first, *rest = frames if face_first else frames[::-1]
    return pillow(first, fmt, save_all=True, append_images=rest, duration=100, loop=0)


# Pillow's exif_transpose turns a stored image upright with these; each stores the upright image so that
# orientation n shows it upright again.
_STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
UPRIGHT = RGB[:384]  # not square, so that a missed quarter turn shows in the dimensions


def exif_oriented(orientation: int) -> bytes:
    upright = Image.fromarray(np.ascontiguousarray(UPRIGHT))
    turn = _STORED_AS[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return pillow(upright if turn is None else upright.transpose(turn), "JPEG", exif=exif.tobytes(), quality=92)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int) -> bytes:
    """A valid 1-bit PNG of side x side black pixels: kilobytes that decode to side² bytes or more."""
    row = b"\0" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")


def declaring(fmt: str, width: int, height: int) -> bytes:
    """A header of `fmt` declaring width x height, followed by a little garbage."""
    if fmt == "JPEG":
        header = b"\xff\xd8\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03" + b"\x01\x22\x00" * 3
    elif fmt == "GIF":
        header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    elif fmt == "BMP":
        header = b"BM" + b"\0" * 12 + struct.pack("<Iii", 40, width, height)
    else:  # WebP's extended header, 24-bit dimensions minus one
        canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        header = b"RIFF\0\0\0\0WEBPVP8X" + struct.pack("<I", 10) + b"\0" * 4 + canvas
    return header + noise(256)


def multipart(*parts: bytes, boundary: bytes = b"B", close: bool = True) -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + boundary + b"--\r\n" if close else b"")


def file_part(name: str, data: bytes, extra_headers: bytes = b"") -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"; filename="{name}.jpg"\r\n'.encode()
    return disposition + extra_headers + b"Content-Type: image/jpeg\r\n\r\n" + data


def field_part(name: str, value: bytes) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value


@dataclass(frozen=True)
class Hostile:
    kind: str  # the row of the table in docs/reliability.md
    make: Callable[[], bytes]
    media: str
    status: int
    code: str | None = None  # the error code; None: a 200
    faces: int = 0  # faces expected in a 200
    params: dict[str, str] = field(default_factory=dict)


def refused(kind: str, make: Callable[[], bytes], media: str, status: int, code: str) -> Hostile:
    return Hostile(kind, make, media, status, code)


def accepted(kind: str, make: Callable[[], bytes], media: str, faces: int, **params: str) -> Hostile:
    return Hostile(kind, make, media, 200, faces=faces, params=params)


def truncated(fmt: str, fraction: float) -> Callable[[], bytes]:
    whole = {"GIF": lambda: pillow(RGB, "GIF")}.get(fmt, lambda: encode(astronaut(), f".{fmt.lower()}"))
    return lambda: (data := whole())[: int(len(data) * fraction)]


def garbage_after_header(fmt: str) -> Callable[[], bytes]:
    header_bytes = {"PNG": 33, "JPEG": 200, "GIF": 13, "BMP": 54, "WEBP": 30}[fmt]
    return lambda: pillow(np.zeros((64, 64, 3), np.uint8), fmt)[:header_bytes] + noise(5000, seed=1)


def one_pixel(fmt: str) -> Callable[[], bytes]:
    return lambda: pillow(np.full((1, 1, 3), 128, np.uint8), fmt)


def sixteen_bit(image: np.ndarray) -> Callable[[], bytes]:
    return lambda: encode(image.astype(np.uint16) * 257, ".png")


OCTETS = "application/octet-stream"
INVALID = "invalid_image"
TOO_LARGE = "image_too_large"
UNSUPPORTED = "unsupported_media_type"
JPEG = encode(astronaut())
MULTIPART = "multipart/form-data; boundary=B"

CORPUS: dict[str, Hostile] = {
    **{
        f"random {n} bytes": refused("random bytes", lambda n=n: noise(n), OCTETS, 400, INVALID)
        for n in (1, 16, 1024, 65536)
    },
    **{
        f"{fmt} cut at {fraction:.0%}": refused("truncated", truncated(fmt, fraction), OCTETS, 400, INVALID)
        for fmt in FORMATS
        for fraction in (0.1, 0.5, 0.99)
    },
    **{
        f"{fmt} header, garbage body": refused(
            "valid header, garbage body", garbage_after_header(fmt), OCTETS, 400, INVALID
        )
        for fmt in FORMATS
    },
    **{f"1x1 {fmt}": accepted("1x1", one_pixel(fmt), OCTETS, faces=0) for fmt in FORMATS},
    "1x1 PNG as a face": accepted("1x1", one_pixel("PNG"), "image/png", faces=1, detect="false"),
    "grayscale PNG": accepted("colour modes", lambda: pillow(RGB, "PNG", "L"), "image/png", faces=1),
    "grayscale+alpha PNG": accepted("colour modes", lambda: pillow(RGB, "PNG", "LA"), "image/png", faces=1),
    "RGBA PNG": accepted("colour modes", lambda: pillow(RGB, "PNG", "RGBA"), "image/png", faces=1),
    "palette PNG": accepted("colour modes", lambda: pillow(RGB, "PNG", "P"), "image/png", faces=1),
    "16-bit grayscale PNG": accepted(
        "colour modes", sixteen_bit(cv2.cvtColor(astronaut(), cv2.COLOR_BGR2GRAY)), "image/png", faces=1
    ),
    "16-bit RGB PNG": accepted("colour modes", sixteen_bit(astronaut()), "image/png", faces=1),
    "16-bit RGBA PNG": accepted(
        "colour modes", sixteen_bit(cv2.cvtColor(astronaut(), cv2.COLOR_BGR2BGRA)), "image/png", faces=1
    ),
    "CMYK JPEG": accepted("colour modes", lambda: pillow(RGB, "JPEG", "CMYK"), "image/jpeg", faces=1),
    "grayscale JPEG": accepted("colour modes", lambda: pillow(RGB, "JPEG", "L"), "image/jpeg", faces=1),
    # Only the first frame is read.
    "animated GIF, face first": accepted("animated", lambda: animated("GIF"), "image/gif", faces=1),
    "animated GIF, face second": accepted("animated", lambda: animated("GIF", face_first=False), "image/gif", faces=0),
    "animated WebP": accepted("animated", lambda: animated("WEBP"), "image/webp", faces=1),
    "animated PNG": accepted("animated", lambda: animated("PNG"), "image/png", faces=1),
    **{
        f"EXIF orientation {o}": accepted("EXIF orientation", lambda o=o: exif_oriented(o), "image/jpeg", faces=1)
        for o in _STORED_AS
    },
    "20000x20000 PNG bomb": refused("decompression bomb", lambda: png_bomb(20_000), "image/png", 413, TOO_LARGE),
    **{
        f"{fmt} declaring 60000x60000": refused(
            "decompression bomb", lambda fmt=fmt: declaring(fmt, 60_000, 60_000), OCTETS, 413, TOO_LARGE
        )
        for fmt in ("JPEG", "GIF", "BMP")
    },
    "WEBP declaring 16384x16384": refused(
        "decompression bomb", lambda: declaring("WEBP", 16_384, 16_384), "image/webp", 413, TOO_LARGE
    ),
    "PNG bomb just under the pixel limit": accepted(
        "decompression bomb", lambda: png_bomb(int(MAX_PIXELS**0.5)), "image/png", faces=0
    ),
    "1000 form fields": refused(
        "multipart",
        lambda: multipart(file_part("image", JPEG), *(field_part(f"f{i}", b"x") for i in range(1000))),
        MULTIPART,
        400,
        "bad_request",
    ),
    "10000 tiny parts": refused(
        "multipart",
        lambda: multipart(*(field_part(f"p{i}", b"v") for i in range(10_000))),
        MULTIPART,
        400,
        "bad_request",
    ),
    "two image files": refused(
        "multipart",
        lambda: multipart(file_part("image", JPEG), file_part("image", JPEG)),
        MULTIPART,
        400,
        "bad_request",
    ),
    "100 files": refused(
        "multipart",
        lambda: multipart(*(file_part(f"f{i}", b"x" * 10) for i in range(100))),
        MULTIPART,
        400,
        "bad_request",
    ),
    "2 MB text field": refused(
        "multipart",
        lambda: multipart(file_part("image", JPEG), field_part("note", b"x" * 2_000_000)),
        MULTIPART,
        400,
        "bad_request",
    ),
    "part with 10000 headers": refused(
        "multipart",
        lambda: multipart(file_part("image", JPEG, b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)))),
        MULTIPART,
        400,
        "bad_request",
    ),
    "empty image file": refused("multipart", lambda: multipart(file_part("image", b"")), MULTIPART, 400, INVALID),
    "image as a text field": refused(
        "multipart", lambda: multipart(field_part("image", JPEG)), MULTIPART, 422, "missing_image"
    ),
    "unterminated body": refused(
        "multipart", lambda: multipart(file_part("image", JPEG), close=False), MULTIPART, 422, "missing_image"
    ),
    "no boundary": refused(
        "multipart", lambda: multipart(file_part("image", JPEG)), "multipart/form-data", 400, "bad_request"
    ),
    "JPEG declared as PNG": accepted("content types", lambda: JPEG, "image/png", faces=1),  # the bytes decide
    "type with parameters": accepted("content types", lambda: JPEG, "image/jpeg; charset=utf-8", faces=1),
    "type in capitals": accepted("content types", lambda: JPEG, "IMAGE/JPEG", faces=1),
    "multipart/mixed": refused("content types", lambda: JPEG, "multipart/mixed; boundary=x", 415, UNSUPPORTED),
    "form-urlencoded": refused("content types", lambda: JPEG, "application/x-www-form-urlencoded", 415, UNSUPPORTED),
    "10 kB type": refused("content types", lambda: JPEG, "image/" + "x" * 10_000, 415, UNSUPPORTED),
}


def send(client: httpx.Client, case: Hostile) -> httpx.Response:
    return client.post("/v1/predict", params=case.params, content=case.make(), headers={"content-type": case.media})


@pytest.fixture(scope="module", params=["open", "locked down"])
def either_client(
    request: pytest.FixtureRequest, client: httpx.Client, locked_server: ServiceProcess
) -> Iterator[httpx.Client]:
    """The default server's client, and one of the server with every access setting on (API key sent)."""
    if request.param == "open":
        yield client
        return
    with httpx.Client(base_url=locked_server.url, timeout=60, headers={"X-API-Key": API_KEY}) as locked:
        yield locked


@pytest.mark.parametrize("name", list(CORPUS))
def test_each_hostile_input_gets_its_documented_answer(either_client: httpx.Client, name: str) -> None:
    case = CORPUS[name]
    response = send(either_client, case)
    assert response.status_code == case.status, response.text
    body = response.json()
    if case.code is None:
        assert len(body["faces"]) == case.faces
        if case.kind == "EXIF orientation":  # turned upright: the stored dimensions are swapped for 5 to 8
            assert (body["image"]["width"], body["image"]["height"]) == (UPRIGHT.shape[1], UPRIGHT.shape[0])
            assert inside(centre(body["faces"][0]["box"]), ASTRONAUT_FACE)
    else:
        assert body["error"]["code"] == case.code and body["error"]["message"]


def status_kb(pid: int, field_name: str) -> int:
    (line,) = [line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(field_name)]
    return int(line.split()[1])


def test_bombs_do_not_raise_the_servers_peak_memory(
    client: httpx.Client, server: ServiceProcess, record_property: Callable[[str, object], None]
) -> None:
    pid = server.process.pid  # one worker: uvicorn serves in this process
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM, the peak resident set (Linux >= 4.0)
    except OSError as error:
        pytest.skip(f"cannot reset the peak RSS of the server process: {error}")
    before = status_kb(pid, "VmRSS")
    bombs = [case for case in CORPUS.values() if case.kind == "decompression bomb"]
    for case in bombs:
        assert send(client, case).status_code == case.status
    peak = status_kb(pid, "VmHWM")
    record_property("server_rss_before_kb", before)
    record_property("server_peak_rss_kb", peak)
    # Decoding is allowed up to MAX_PIXELS (3 bytes a pixel, plus grayscale and detector copies); a bomb
    # decoded would take 400 MB to 1.2 GB.
    assert (peak - before) * 1024 < 10 * MAX_PIXELS, f"peak RSS rose from {before} kB to {peak} kB"


def test_the_workers_survived_the_corpus(server: ServiceProcess, locked_server: ServiceProcess) -> None:
    for service in (server, locked_server):
        assert service.process.poll() is None
        assert httpx.get(f"{service.url}/healthz", timeout=30).json() == {"status": "ok"}
        assert "unhandled error" not in service.log() and "Traceback" not in service.log()
