"""Steady load on the real service while versions change, a bad version arrives, a worker dies and slow
clients hold connections; what the clients saw, event by event.

``python -m benchmarks.load_faults`` (slow: about 80 s) or ``--short`` (about 40 s, what CI runs through
``tests/test_load_faults.py``). The store is a temporary copy of ``--store``; the original is never touched.

Timeline, one event every ``step`` seconds under an open-loop load of ``rate`` requests/s (a request is sent
on schedule whether or not earlier ones have finished, so a stall shows as latency, not as a lower rate):

1. ``promote``: a new version is published and promoted;
2. ``rollback``: the store is rolled back to the previous version;
3. ``corrupt``: a version folder whose model file is corrupted (a bad copy) arrives with the served pointer
   naming it; the service must refuse it and keep serving; the operator then points back (``restore``);
4. ``kill``: one uvicorn worker gets SIGKILL; requests in flight on it are counted apart, the supervisor
   starts a new one;
5. ``slow clients``: connections that send headers and part of a multipart body, then a byte a second;
   the service's upload deadline (``MICROEXP_BODY_TIMEOUT``) must end them while others are served.

The service runs with every access setting on (an API key, an admin token, a per-client rate limit well above the
load's rate), as an exposed deployment would, and every client sends the key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

from benchmarks.http_load import CONTENT_TYPE, multipart
from benchmarks.images import cropped_face, encode_jpeg, one_face_photo
from benchmarks.server import REPO, YUNET, Service, running_service
from model_store.metadata import ModelDraft
from model_store.store import ModelStore
from model_store.vocabulary import split_model_name

SIZE = "XXS"
WORKERS = 2
# The service's deadline for a request's body; shorter than its 30 s default so the run shows it.
BODY_TIMEOUT_S = 8.0
API_KEY = "load-and-faults"
KEY_HEADER = {"X-API-Key": API_KEY}
# Requests/s per client allowed, as a multiple of the load's rate: the limit is on, and the steady load within it.
RATE_LIMIT_HEADROOM = 4
RELOAD_INTERVAL_S = 0.5
CLIENT_TIMEOUT_S = 60.0
KILL_GRACE_S = 1.0


@dataclass
class Outcome:
    start: float  # seconds since the load began
    end: float
    status: int | None  # None: no HTTP response (connection reset, refused, ...)
    error: str | None = None
    version: int | None = None


@dataclass
class Event:
    name: str
    at: float
    details: dict[str, object] = field(default_factory=dict)


class Clock:
    def __init__(self) -> None:
        self.zero = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.zero


async def one_request(client: httpx.AsyncClient, url: str, body: bytes, clock: Clock) -> Outcome:
    start = clock.now()
    try:
        response = await client.post(url, content=body, headers={"Content-Type": CONTENT_TYPE, **KEY_HEADER})
    except httpx.HTTPError as error:
        return Outcome(start, clock.now(), None, type(error).__name__)
    end = clock.now()
    if response.status_code != 200:
        return Outcome(start, end, response.status_code, response.text[:200])
    return Outcome(start, end, 200, version=response.json()["model"]["version"])


async def steady_load(url: str, body: bytes, rate: float, duration: float, clock: Clock) -> list[Outcome]:
    """Open loop: request i is sent at i / rate seconds, whatever happened to the others."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S, limits=limits) as client:
        tasks = []
        for index in range(int(rate * duration)):
            delay = index / rate - clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one_request(client, url, body, clock)))
        return list(await asyncio.gather(*tasks))


# Events ---------------------------------------------------------------------------------------------------


def draft_of(store: ModelStore, name: str, version: int) -> ModelDraft:
    metadata = store.metadata(name, version)
    fields = metadata.model_dump(exclude={"name", "version", "sha256", "file_bytes", "created_at"})
    return ModelDraft.model_validate(fields)


def publish_and_promote(store: ModelStore, name: str) -> dict[str, object]:
    """A new version (the served file again: what matters is that the service switches to it)."""
    served = store.served_version(name)
    family = split_model_name(name)[0]
    version = store.publish(store.resolve(SIZE, served, family).onnx_path, draft_of(store, name, served))
    store.promote(name, version)
    return {"published": version, "previous": served}


def corrupt_arrival(store: ModelStore, name: str, scratch: Path) -> dict[str, object]:
    """A version folder with a corrupted model file arrives, and the served pointer names it.

    As a bad copy or sync would leave it: the version is published and promoted in a scratch copy of the
    model folder, its file is damaged there, and the folder, then the pointer, are moved into the store
    (renames, so the service never sees a half-written file).
    """
    copy = scratch / name
    shutil.copytree(store.root / name, copy)
    side = ModelStore(scratch)
    served = store.served_version(name)
    family = split_model_name(name)[0]
    version = side.publish(side.resolve(SIZE, served, family).onnx_path, draft_of(side, name, served))
    side.promote(name, version)
    model_file = copy / str(version) / "model.onnx"
    data = bytearray(model_file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # same size, different bytes: only the checksum can tell
    model_file.write_bytes(bytes(data))
    os.rename(copy / str(version), store.root / name / str(version))
    os.replace(copy / "served", store.root / name / "served")
    return {"corrupted": version, "previous": served}


def restore(store: ModelStore, name: str, version: int, corrupted: int) -> dict[str, object]:
    store.promote(name, version)
    store.remove(name, corrupted)
    return {"promoted": version, "removed": corrupted}


def models_view(url: str) -> dict[str, object]:
    response = httpx.get(f"{url}/v1/models", headers=KEY_HEADER, timeout=10)
    body = response.json()
    size = next(s for s in body["models"] if s["size"] == SIZE and s["default"])
    refused = [r for r in body.get("refused", []) if r["name"] == size["name"]]
    return {"default_version": size["default_version"], "refused": refused}


def kill_worker(service: Service) -> dict[str, object]:
    pids = service.worker_pids()
    victim = pids[0]
    os.kill(victim, signal.SIGKILL)
    return {"killed": victim, "workers_before": pids}


async def wait_for_workers(service: Service, count: int, killed: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = service.worker_pids()
        if len(pids) == count and killed not in pids:
            return pids
        await asyncio.sleep(0.2)
    return service.worker_pids()


async def slow_client(port: int, path: str, body: bytes, clock: Clock, hold: float) -> dict[str, object]:
    """Headers and half the body, then a byte a second: how the server ends it, and when."""
    start = clock.now()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {CONTENT_TYPE}\r\nX-API-Key: {API_KEY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body[: len(body) // 2])
    sent = len(body) // 2
    status: int | None = None
    try:
        while clock.now() - start < hold:
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=1.0)
            except TimeoutError:
                if sent < len(body) - 1:
                    writer.write(body[sent : sent + 1])
                    sent += 1
                    await writer.drain()
                continue
            if line.startswith(b"HTTP/1.1 "):
                status = int(line.split()[1])
            break  # a response, or the server closed the connection (empty line)
    except ConnectionError:
        pass
    finally:
        writer.close()
    return {"start": start, "end": clock.now(), "status": status, "bytes_sent": sent, "bytes_declared": len(body)}


# The run --------------------------------------------------------------------------------------------------


async def scenario(service: Service, store: ModelStore, scratch: Path, url: str, body: bytes, args) -> dict:
    clock = Clock()
    name = store.default_name(SIZE)  # the model the load's requests (which name a size) are answered by
    step = args.step
    duration = 7 * step
    load = asyncio.create_task(steady_load(url, body, args.rate, duration, clock))
    events: list[Event] = []
    checks: dict[str, object] = {}

    async def at(moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - clock.now()))

    await at(step)
    events.append(Event("promote", clock.now(), await asyncio.to_thread(publish_and_promote, store, name)))
    await at(2 * step)
    previous = await asyncio.to_thread(store.rollback, name)
    events.append(Event("rollback", clock.now(), {"serving": previous}))
    await at(3 * step)
    corrupt = await asyncio.to_thread(corrupt_arrival, store, name, scratch)
    events.append(Event("corrupt", clock.now(), corrupt))
    await asyncio.sleep(min(step / 2, 4 * RELOAD_INTERVAL_S + 1))
    checks["after_corrupt"] = await asyncio.to_thread(models_view, service.url)
    await at(3.6 * step)
    done = await asyncio.to_thread(restore, store, name, int(corrupt["previous"]), int(corrupt["corrupted"]))
    events.append(Event("restore", clock.now(), done))
    await at(4 * step)
    moment = clock.now()
    killed = kill_worker(service)
    events.append(Event("kill", moment, killed))
    checks["workers_after_kill"] = await wait_for_workers(service, WORKERS, int(killed["killed"]), step)
    events.append(Event("worker back", clock.now(), {"workers": checks["workers_after_kill"]}))
    await at(5 * step)
    events.append(Event("slow clients", clock.now(), {"connections": args.slow_clients}))
    port = int(service.url.rsplit(":", 1)[1])
    path = url.removeprefix(service.url)
    hold = BODY_TIMEOUT_S + 4
    slow = await asyncio.gather(*(slow_client(port, path, body, clock, hold) for _ in range(args.slow_clients)))
    outcomes = await load
    return {"events": events, "checks": checks, "slow_clients": slow, "outcomes": outcomes, "duration": duration}


def percentiles(outcomes: list[Outcome]) -> dict[str, float | int]:
    latencies = [1000 * (o.end - o.start) for o in outcomes if o.status == 200]
    if not latencies:
        return {"requests": len(outcomes), "ok": 0}
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {"requests": len(outcomes), "ok": len(latencies), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def window(outcomes: list[Outcome], start: float, end: float) -> list[Outcome]:
    return [o for o in outcomes if start <= o.start < end]


def summarise(raw: dict, args) -> dict[str, object]:
    outcomes: list[Outcome] = raw["outcomes"]
    events: list[Event] = raw["events"]
    kill = next(e for e in events if e.name == "kill")
    # Lost with the killed worker: no HTTP response, ended after the kill and started before it or within
    # KILL_GRACE_S after it (sent on a kept-alive connection to the dead worker before the client saw it close).
    lost = [o for o in outcomes if o.status is None and o.end >= kill.at and o.start <= kill.at + KILL_GRACE_S]
    failed = [o for o in outcomes if o.status != 200 and o not in lost]
    half = args.step / 2
    phases = {}
    for event in events:
        phases[event.name] = {
            "at_s": round(event.at, 2),
            "details": event.details,
            "before": percentiles(window(outcomes, event.at - half, event.at)),
            "during": percentiles(window(outcomes, event.at, event.at + half)),
            "after": percentiles(window(outcomes, event.at + half, event.at + 2 * half)),
            "versions": _versions(window(outcomes, event.at, event.at + args.step)),
        }
    slow_start = next(e.at for e in events if e.name == "slow clients")
    slow_end = max((s["end"] for s in raw["slow_clients"]), default=slow_start)
    return {
        "settings": {
            "rate_per_s": args.rate,
            "duration_s": raw["duration"],
            "step_s": args.step,
            "workers": WORKERS,
            "size": SIZE,
            "request": args.request,
            "body_timeout_s": BODY_TIMEOUT_S,
            "reload_interval_s": RELOAD_INTERVAL_S,
            "slow_clients": args.slow_clients,
            "kill_grace_s": KILL_GRACE_S,
        },
        "sent": len(outcomes),
        "succeeded": sum(o.status == 200 for o in outcomes),
        "failed": len(failed),
        "lost_on_killed_worker": len(lost),
        "failures": [asdict(o) for o in failed[:20]],
        "overall": percentiles(outcomes),
        "phases": phases,
        "checks": raw["checks"],
        "slow_clients": {
            "outcomes": raw["slow_clients"],
            "others_while_held": percentiles(window(outcomes, slow_start, slow_end)),
        },
    }


def _versions(outcomes: list[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.version is not None:
            counts[str(outcome.version)] = counts.get(str(outcome.version), 0) + 1
    return counts


def run(args) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="microexp-faults-") as tmp:
        root = Path(tmp) / "store"
        shutil.copytree(args.store, root, ignore=shutil.ignore_patterns(".lock"))
        store = ModelStore(root)
        yunet = YUNET.is_file()
        args.request = "640x480 JPEG, one face, YuNet" if yunet else "48x48 cropped face, detect=false"
        data = encode_jpeg(one_face_photo(640, 480).bgr) if yunet else encode_jpeg(cropped_face(48))
        query = "detector=yunet" if yunet else "detect=false"
        env = {
            "MICROEXP_DEFAULT_SIZE": SIZE,
            "MICROEXP_BODY_TIMEOUT": str(BODY_TIMEOUT_S),
            "MICROEXP_API_KEYS": API_KEY,
            "MICROEXP_ADMIN_TOKEN": "load-and-faults-admin",
            "MICROEXP_RATE_LIMIT_PER_CLIENT": str(RATE_LIMIT_HEADROOM * args.rate),
        }
        log = Path(tmp) / "service.log"
        with running_service(
            root, log, workers=WORKERS, yunet=yunet, reload_interval=RELOAD_INTERVAL_S, env=env
        ) as service:
            url = f"{service.url}/v1/predict?model={SIZE}&{query}"
            for _ in range(2 * WORKERS):  # warm-up, so that start-up costs do not count as the baseline
                headers = {"Content-Type": CONTENT_TYPE, **KEY_HEADER}
                httpx.post(url, content=multipart(data), headers=headers, timeout=60)
            scratch = Path(tmp) / "scratch"
            raw = asyncio.run(scenario(service, store, scratch, url, multipart(data), args))
            summary = summarise(raw, args)
            summary["service_log_tail"] = service.log().splitlines()[-20:]
        return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--store", type=Path, default=REPO / "models", help="store to copy (default: models/)")
    parser.add_argument("--short", action="store_true", help="the CI version: shorter steps, lower rate")
    parser.add_argument("--rate", type=float, help="requests per second (default 40; short: 20)")
    parser.add_argument("--step", type=float, help="seconds between events (default 10; short: 5)")
    parser.add_argument("--slow-clients", type=int, default=16, help="slow connections held at the end")
    parser.add_argument("--out", type=Path, help="write the JSON summary here (default: stdout only)")
    args = parser.parse_args(argv)
    args.rate = args.rate or (20.0 if args.short else 40.0)
    args.step = args.step or (5.0 if args.short else 10.0)
    summary = run(args)
    text = json.dumps(summary, indent=1, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
