"""Parameter attacks on model and version: path separators, dot segments, URL-encoded and double-encoded forms,
NUL bytes, very long strings, negative and huge numbers. Each is a 4xx in its API's error shape, and none makes
the server touch a file outside its model store: checked by tracing the real server's file system calls with
strace while the attacks run, and by resolving every attack in-process with Python's audit hook on open()."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import REPO
from server_fixture import ADMIN_TOKEN, API_KEY, ServiceProcess, astronaut, encode

from model_store.metadata import parse_size
from service.errors import ApiError
from service.oip import find_model
from service.registry import ModelRegistry

pytest_plugins = ["server_fixture"]

# Written as they travel in a URL: the server decodes %XX once; %25 makes a double-encoded form.
NAMES = [
    "..",
    "%2e%2e",
    ".%2E",
    "..%2fmicroexpnet_m",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2Fetc%2Fpasswd",
    "%252e%252e%252fmicroexpnet_m",
    "..%5cmicroexpnet_m",
    "microexpnet_m%2f..%2fmicroexpnet_s",
    "microexpnet_m%00",
    "microexpnet_m%00.onnx",
    "%C0%AE%C0%AE",  # an overlong UTF-8 encoding of '.'
    "MICROEXPNET_M",
    "%20microexpnet_m",
    "microexpnet_m.",
    "~",
    "A" * 8000,
]
VERSIONS = [
    "-1",
    "0",
    "01",
    "+1",
    "1.0",
    "1e0",
    "0x1",
    "..",
    "%2e%2e",
    "..%2F1",
    "1%00",
    "%EF%BC%91",
    "9" * 40,
    "A" * 8000,
]
SIZES = ["..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f", "%252e%252e", "xs%2F..%2Fm", "%2Fetc%2Fpasswd", "m%00", "xs%5C.."]
SIZES += ["%C0%AE%C0%AE%2F", "%EF%BD%8D", "xs;rm", "$(id)", "A" * 8000]
V1_VERSIONS = ["-1", "0", "-99999999999999999999", "1e3", "..", "..%2F1", "%00", "0x1", "%EF%BC%91", "A" * 8000]

JPEG = encode(astronaut())
PREDICT = ("POST", {"content-type": "image/jpeg"}, JPEG)
INFER = ("POST", {"content-type": "application/json"}, b'{"inputs": []}')
GET = ("GET", {}, b"")


def attack_table() -> dict[str, tuple[str, str, dict[str, str], bytes, int]]:
    """id → (method, target, headers, body, status)."""
    table: dict[str, tuple[str, str, dict[str, str], bytes, int]] = {}

    def add(target: str, request: tuple[str, dict[str, str], bytes], status: int) -> None:
        method, headers, body = request
        shown = target if len(target) <= 80 else f"{target[:40]}…({len(target)} characters)…{target[-25:]}"
        assert f"{method} {shown}" not in table, shown
        table[f"{method} {shown}"] = (method, target, headers, body, status)

    for size in SIZES:
        add(f"/v1/predict?model={size}", PREDICT, 422)
        add(f"/v1/predict?model=xs&arch={size}", PREDICT, 422)  # a family is checked as strictly as a size
    for version in V1_VERSIONS:
        add(f"/v1/predict?model=xs&version={version}", PREDICT, 422)
    add("/v1/predict?model=xs&version=" + "9" * 40, PREDICT, 404)  # a number, just not a version
    add("/v1/predict?detector=..%2Fhaar", PREDICT, 422)
    for name in NAMES:
        for suffix, request in (("", GET), ("/ready", GET), ("/infer", INFER), ("/versions/1/infer", INFER)):
            add(f"/v2/models/{name}{suffix}", request, 404)
    for version in VERSIONS:
        for suffix, request in (("", GET), ("/ready", GET), ("/infer", INFER)):
            add(f"/v2/models/microexpnet_m/versions/{version}{suffix}", request, 404)
    # Dot segments sent as they are: the server does not normalise them into another route.
    for target in ("/v2/models/microexpnet_m/../../../etc/passwd", "/v2/models/./ready"):
        add(target, GET, 404)
    add("/v1/../v2/models/microexpnet_m/versions/../ready", GET, 404)
    return table


ATTACKS = attack_table()


def send(port: int, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """One request exactly as written: no client-side encoding or dot-segment removal."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, target, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def send_all(port: int) -> list[int]:
    """Every attack (with the API key) on the locked-down server, then a reload, which reads the store (so that a
    trace of this sees the server's file calls)."""
    key = {"X-API-Key": API_KEY}
    statuses = [
        send(port, method, target, {**headers, **key}, body)[0] for method, target, headers, body, _ in ATTACKS.values()
    ]
    assert send(port, "POST", "/admin/reload", {"Authorization": f"Bearer {ADMIN_TOKEN}"}, b"")[0] == 200
    return statuses


@pytest.mark.parametrize("locked", [False, True], ids=["open", "locked down"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_a_client_error_in_its_apis_shape(
    server: ServiceProcess, locked_server: ServiceProcess, locked: bool, attack: str
) -> None:
    method, target, headers, body, status = ATTACKS[attack]
    if locked:
        got, content = send(locked_server.port, method, target, {**headers, "X-API-Key": API_KEY}, body)
    else:
        got, content = send(server.port, method, target, headers, body)
    assert got == status, content[:300]
    error = json.loads(content)["error"]
    if target.startswith("/v2/"):
        assert isinstance(error, str) and error
    else:
        assert set(error) == {"code", "message", "details"}


# ---- no file outside the store, seen from the kernel -------------------------------------------------------

# strace -y prints a descriptor with its path: openat(5</store/microexpnet_m>, "1", ...) or fstat(7</x/y>, ...).
_AT_PATH = re.compile(r"(?:AT_FDCWD|\d+)(?:<([^>]*)>)?, \"((?:[^\"\\]|\\.)*)\"")
_FIRST_PATH = re.compile(r"^(?:\d+\s+)?\w+\(\"((?:[^\"\\]|\\.)*)\"")


def touched_paths(trace: str, cwd: Path) -> set[Path]:
    paths: set[Path] = set()
    for line in trace.splitlines():
        for directory, name in _AT_PATH.findall(line):
            base = Path(directory) if directory else cwd
            paths.add(Path(os.path.normpath(base / name)) if name else base)
        if first := _FIRST_PATH.match(line):
            paths.add(Path(os.path.normpath(cwd / first.group(1))))
    return paths


def tracer_pids(pid: int) -> list[int]:
    """The tracer of each thread of `pid` (0: not traced)."""
    tracers = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        tracers.append(int(re.search(r"^TracerPid:\s+(\d+)", status, re.MULTILINE).group(1)))
    return tracers


@contextlib.contextmanager
def traced(pid: int, log: Path) -> Iterator[None]:
    """Every thread of `pid` under strace, its file system calls written to `log`."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("needs strace (apt-get install strace)")
    command = [strace, "-f", "-qq", "-y", "-e", "trace=%file", "-o", str(log), "-p", str(pid)]
    tracer = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not all(tracer_pids(pid)):
            if tracer.poll() is not None:
                pytest.skip(f"strace cannot attach to the server here: {tracer.communicate()[1].strip()}")
            assert time.monotonic() < deadline, "strace did not attach to every thread"
            time.sleep(0.05)
        yield
    finally:
        tracer.send_signal(signal.SIGINT)  # strace detaches and leaves the server running
        tracer.wait(timeout=30)


def test_attacks_touch_no_file_outside_the_store(
    locked_server: ServiceProcess, model_store_root: Path, tmp_path: Path
) -> None:
    # An untraced first pass, so that modules the server imports on first use are not mistaken for the attacks.
    send_all(locked_server.port)
    log = tmp_path / "strace.log"
    with traced(locked_server.process.pid, log):
        statuses = send_all(locked_server.port)
    assert all(400 <= status < 500 for status in statuses)
    store = model_store_root.resolve()
    touched = touched_paths(log.read_text(), REPO)
    assert any(path.is_relative_to(store) for path in touched), "the trace saw none of the server's file calls"
    outside = sorted(str(path) for path in touched if not path.is_relative_to(store))
    assert not outside, f"the server touched files outside {store}: {outside[:20]}"
    assert locked_server.process.poll() is None and all(
        tracer == 0 for tracer in tracer_pids(locked_server.process.pid)
    )


# ---- resolution in-process ----------------------------------------------------------------------------------

_opened: list[str] | None = None  # while a list, every open() in this process is recorded in it
_hooked = False


def _record_open(event: str, args: tuple[object, ...]) -> None:
    if _opened is not None and event == "open":
        _opened.append(str(args[0]))


@contextlib.contextmanager
def recording_opens() -> Iterator[list[str]]:
    global _opened, _hooked
    if not _hooked:
        sys.addaudithook(_record_open)  # hooks cannot be removed: installed once per process
        _hooked = True
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None


def test_attacks_resolve_in_memory_without_opening_a_file(model_store_root: Path) -> None:
    registry = ModelRegistry(model_store_root, "microexpnet", threads=1)
    registry.reload()
    catalog = registry.catalog
    with recording_opens() as opened:
        for name in NAMES:
            with pytest.raises(ApiError) as error:
                find_model(catalog, unquote(name), None)
            assert error.value.status == 404
        for version in VERSIONS:
            with pytest.raises(ApiError) as error:
                find_model(catalog, "microexpnet_m", unquote(version))
            assert error.value.status == 404
        for size in SIZES:
            with pytest.raises(ValueError, match="unknown size"):
                parse_size(unquote(size))
    assert opened == []
    with recording_opens() as opened:  # the hook does see opens
        (model_store_root / "microexpnet_m" / "1" / "metadata.json").read_bytes()
    assert opened == [str(model_store_root / "microexpnet_m" / "1" / "metadata.json")]
