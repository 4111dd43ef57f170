"""``microexp``: the expression of every face in image and video files, from the shell.

``microexp predict FILE_OR_FOLDER...`` prints one JSON line per file, the answer of POST /v1/predict (images) or
POST /v1/video (videos), or a table. Without ``--url`` it runs the service's own pipeline in this process on the
store (MICROEXP_STORE, default the shipped models/) with the server's settings (MICROEXP_*); with ``--url`` it
sends each file to that server.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ValidationError

from model_store.preprocess import ViewCount
from service.api.deps import family_and_size, resolve_classifier
from service.api.predict import to_response
from service.api.video import to_video_response, video_limits
from service.detect import DETECTORS, Detectors
from service.errors import ApiError
from service.registry import ModelRegistry
from service.settings import Settings
from service.upload import FIELD, VIDEO_FIELD
from service.video import Progress

OK, FAILED, USAGE, UNAVAILABLE = 0, 1, 2, 3
EXIT_CODES = f"""exit codes:
  {OK}  every file was answered
  {FAILED}  some files were not (each has an "error" line; the others were answered)
  {USAGE}  usage error: bad options, a path that does not exist, no image or video found
  {UNAVAILABLE}  nothing could run: the server cannot be reached, or the models or settings cannot be loaded
"""
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v"})
_MEDIA = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".avi": "video/x-msvideo"}

Answer = dict[str, Any]  # a JSON answer: the API's response, or {"error": {...}}


class Unavailable(Exception):
    """Nothing can be answered: the server or the models cannot be reached."""


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def inputs(paths: list[Path]) -> list[Path]:
    """Files named, and the images and videos in folders named (recursively, sorted)."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                child
                for child in path.rglob("*")
                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            )
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found


class InProcess:
    """The service's pipeline in this process, on the store the settings name."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = ModelRegistry(settings.store, settings.family, settings.ort_threads)
        self.registry.reload()
        if not self.registry.catalog.models:
            raise Unavailable(f"no model could be loaded from {settings.store}")
        self.detectors = Detectors(settings)

    def predict(self, path: Path, params: dict[str, Any], progress: Progress | None) -> Answer:
        try:
            family, size = family_and_size(params.get("model"), params.get("family"), self.settings.default_size)
            chosen = resolve_classifier(
                self.settings,
                self.registry.catalog.model(size, None, family),
                self.detectors.get(params.get("detector")) if params.get("detect", True) else None,
                params.get("max_faces"),
                params.get("align"),
                None if params.get("views") is None else ViewCount(params["views"]),
            )
            request_id = uuid.uuid4().hex
            if is_video(path):
                track, smoothing = params.get("track", False), params.get("smoothing", 0.0)
                video = chosen.video(path, video_limits(self.settings), params.get("fps"), track, smoothing, progress)
                response: BaseModel = to_video_response(video, track, smoothing, request_id)
            else:
                analysis = chosen.image(path.read_bytes(), self.settings.max_pixels, self.settings.decode_min_side)
                response = to_response(analysis, request_id)
        except ApiError as error:
            return {"error": error.detail_body().model_dump(mode="json")}
        return response.model_dump(mode="json")


def multipart(field: str, filename: str, media: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body holding one file, and its content type."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{urllib.parse.quote(filename)}"\r\nContent-Type: {media}\r\n\r\n'
    )
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Remote:
    """A server at `url`, called with urllib (the base dependencies have no HTTP client)."""

    def __init__(self, url: str, api_key: str | None, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout

    def predict(self, path: Path, params: dict[str, Any], progress: Progress | None) -> Answer:
        endpoint, field = ("/v1/video", VIDEO_FIELD) if is_video(path) else ("/v1/predict", FIELD)
        query = urllib.parse.urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()})
        media = _MEDIA.get(path.suffix.lower(), "application/octet-stream")
        body, content_type = multipart(field, path.name, media, path.read_bytes())
        request = urllib.request.Request(
            f"{self.url}{endpoint}?{query}",
            data=body,
            headers={**self.headers, "Content-Type": content_type},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            try:
                answer = json.load(error)
            except ValueError:
                answer = None
            if isinstance(answer, dict) and "error" in answer:
                return answer
            return {"error": {"code": f"http_{error.code}", "message": str(error.reason), "details": None}}
        except (urllib.error.URLError, OSError) as error:
            raise Unavailable(f"cannot reach {self.url}: {getattr(error, 'reason', error)}") from None


class Bar:
    """A progress line on stderr, redrawn in place."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled

    def show(self, label: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if total:
            filled = min(30, 30 * done // total)
            line = f"{label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}"
        else:
            line = f"{label} {done}"
        self.stream.write(f"\r\033[K{line}")
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


def table_rows(name: str, answer: Answer) -> Iterator[str]:
    if "error" in answer:
        yield f"{name}\t-\terror\t{answer['error']['code']}: {answer['error']['message']}"
        return
    frames = answer["frames"] if "frames" in answer else [{"time_s": None, "faces": answer["faces"]}]
    if not any(frame["faces"] for frame in frames):
        yield f"{name}\t-\tno face"
    for frame in frames:
        where = name if frame["time_s"] is None else f"{name}@{frame['time_s']:.2f}s"
        for number, face in enumerate(frame["faces"], 1):
            box = face["box"]
            who = f"track {face['track']}" if face.get("track") is not None else f"face {number}"
            yield (
                f"{where}\t{who}\t{face['expression']}\t{face['probability']:.3f}\t"
                f"{box['x']},{box['y']} {box['width']}x{box['height']}"
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="microexp",
        description="Facial-expression recognition from the shell.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="every face's expression in images and videos",
        description=(
            'Print every face\'s expression in each image or video, one JSON line per file ({"file": ..., '
            '"result": the API\'s answer} or {"file": ..., "error": ...}) or a table. Folders are searched '
            f"recursively for {', '.join(sorted(IMAGE_SUFFIXES))} images and {', '.join(sorted(VIDEO_SUFFIXES))} "
            "videos. Without --url, runs in this process on MICROEXP_STORE (default: the shipped models) with the "
            "server's MICROEXP_* settings."
        ),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("paths", nargs="+", type=Path, metavar="FILE", help="image, video or folder")
    predict.add_argument("--url", help="a microexp server, e.g. http://127.0.0.1:8000; default: in this process")
    predict.add_argument("--api-key", help="sent as 'Authorization: Bearer KEY' (with --url)")
    predict.add_argument("--timeout", type=float, default=300.0, help="seconds per file with --url (default 300)")
    predict.add_argument("--format", choices=("json", "table"), default="json", help="output (default json)")
    predict.add_argument("--model", help="size (m, s, xs, xxs) or model name; default: the server's default size")
    predict.add_argument("--family", help="model family, e.g. microexpnet")
    predict.add_argument("--detector", choices=DETECTORS, help="face detector; default: the server's")
    predict.add_argument("--max-faces", type=int, help="faces classified per image or frame at most")
    predict.add_argument("--views", type=int, choices=[int(v) for v in ViewCount], help="test-time views per face")
    predict.add_argument("--no-align", dest="align", action="store_false", default=None, help="do not align faces")
    predict.add_argument("--fps", type=float, help="video frames per second to classify (default: every frame)")
    predict.add_argument("--track", action="store_true", default=None, help="video: keep one id per person")
    predict.add_argument("--smoothing", type=float, help="video: weight of a track's past, 0-1 (needs --track)")
    predict.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress line on stderr (default: when stderr is a terminal)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors and 0 after --help
        return int(exit_.code or 0)
    try:
        files = inputs(args.paths)
    except FileNotFoundError as error:
        print(f"microexp: {error}", file=stderr)
        return USAGE
    if not files:
        print("microexp: no image or video found", file=stderr)
        return USAGE
    names = ("model", "family", "detector", "max_faces", "views", "align", "fps", "track", "smoothing")
    params = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    try:
        backend: InProcess | Remote = (
            Remote(args.url, args.api_key, args.timeout) if args.url else InProcess(Settings())
        )
    except (Unavailable, ValidationError, ValueError) as error:
        print(f"microexp: {error}", file=stderr)
        return UNAVAILABLE
    bar = Bar(stderr, stderr.isatty() if args.progress is None else args.progress)
    failed = 0
    for number, path in enumerate(files, 1):
        label = f"[{number}/{len(files)}] {path.name}"
        bar.show(label, number - 1, len(files))
        try:
            answer = backend.predict(path, params, functools.partial(bar.show, label))
        except Unavailable as error:
            bar.clear()
            print(f"microexp: {error}", file=stderr)
            return UNAVAILABLE
        except OSError as error:
            answer = {"error": {"code": "unreadable_file", "message": str(error), "details": None}}
        bar.clear()
        failed += "error" in answer
        if args.format == "json":
            entry = {"file": str(path), **({"error": answer["error"]} if "error" in answer else {"result": answer})}
            print(json.dumps(entry), file=stdout, flush=True)
        else:
            for row in table_rows(str(path), answer):
                print(row, file=stdout, flush=True)
    return FAILED if failed else OK


def run() -> None:
    sys.exit(main())
