"""Service configuration: environment variables prefixed ``MICROEXP_``, mirrored by ``python -m service`` flags."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model_store.faces import verify_yunet_model
from model_store.preprocess import ViewCount
from model_store.store import yunet_file
from model_store.vocabulary import SIZES, Size, check_family, parse_size

# The repository's own store; a wheel installed elsewhere points MICROEXP_STORE at its store instead.
DEFAULT_STORE = Path(__file__).resolve().parents[1] / "models"

DetectorName = Literal["yunet", "haar", "mtcnn"]

# From the scene benchmark (docs/results.md, "Photographs"): alignment by MTCNN's eye points gains 0.7-2.7 points at
# every size, by YuNet's it changes nothing measurable (-0.2 to +1.0), for 0.1-0.2 ms a face, so it is on; more test-
# time views gain nothing on photographs that clears its error at any size while two views cost the default server
# 17% of its requests/s, so every size classifies one view.
ALIGN = True
VIEWS_BY_SIZE: dict[Size, ViewCount] = dict.fromkeys(SIZES, ViewCount.CENTRE)


def _secret_lines(text: str) -> list[str]:
    """A secrets file's secrets: one a line, blank lines and ``#`` comments left out."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MICROEXP_", frozen=True, extra="ignore")

    store: Path = Field(DEFAULT_STORE, description="model store folder (a Triton model repository)")
    family: str | None = Field(
        None,
        description="family answering requests that name none (e.g. microexpnet); unset: per size, the store's "
        "decision (defaults.json), else the family whose served version has the best validation accuracy",
    )
    default_size: Size = Field("M", description="size used when a request names none")
    detector: DetectorName = Field("yunet", description="default face detector")
    yunet_model: Path | None = Field(
        None, description="face_detection_yunet_2023mar.onnx (sha256 checked); unset: the store's own copy"
    )
    haar_max_side: int = Field(640, ge=64, le=4096, description="Haar works on a copy this long at most")
    yunet_max_side: int = Field(320, ge=64, le=4096, description="YuNet works on a copy this long at most")
    yunet_score_threshold: float = Field(0.6, gt=0, lt=1)
    yunet_second_look_side: int = Field(
        640, ge=0, le=4096, description="when YuNet finds no face, it looks again on a copy this long (0: never)"
    )
    yunet_second_look_threshold: float = Field(
        0.8, gt=0, lt=1, description="the minimum score of a face found by the second look"
    )
    mtcnn_max_side: int = Field(320, ge=64, le=4096, description="MTCNN works on a copy this long at most")
    max_faces: int = Field(20, ge=1, le=256, description="faces classified per image unless a request asks fewer")
    align: bool = Field(
        ALIGN, description="turn each face so its eyes are level before cropping (by yunet's or mtcnn's landmarks)"
    )
    views: ViewCount | None = Field(
        None, description="test-time views per face (1, 2 or 16) for every size; unset: views_by_size"
    )
    views_by_size: dict[Size, ViewCount] = Field(
        VIEWS_BY_SIZE, description="test-time views per face by model size; sizes a value leaves out keep the default"
    )
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest request body accepted")
    max_buffered_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="request bodies held in memory at once, all requests together (received so far, or complete and "
        "waiting for a slot or being handled); a request that would pass it is refused with 503",
    )
    body_timeout: float = Field(
        30.0, gt=0, description="seconds a client has to send its whole request body (408 past it)"
    )
    max_pixels: int = Field(40_000_000, ge=1, description="largest image (width x height) decoded")
    decode_min_side: int = Field(
        1600,
        ge=0,
        description="a larger JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) while its longer side "
        "stays at least this, faces still reported in its own pixels; 0: every image decoded whole",
    )
    max_concurrency: int = Field(8, ge=1, description="requests handled at once per worker (probes not counted)")
    max_queue: int = Field(32, ge=0, description="requests waiting for a slot; more are refused with 503")
    request_timeout: float = Field(30.0, gt=0, description="seconds a request may wait for a slot (503 past it)")
    keep_alive_timeout: float = Field(5.0, gt=0, description="seconds an idle keep-alive connection stays open")
    max_connections: int = Field(
        1000, ge=1, description="open connections per worker; more are answered 503 and closed at once"
    )
    # Access control (docs/reliability.md, "Threat model").
    admin_token: SecretStr | None = Field(
        None, description="bearer token for /admin/*; unset (and no admin_token_file): the admin endpoints are off"
    )
    admin_token_file: Path | None = Field(None, description="a file holding the admin token (a mounted secret)")
    api_keys: SecretStr | None = Field(
        None, description="comma-separated API keys; set: /v1 and /v2 (but their health probes) need one"
    )
    api_keys_file: Path | None = Field(None, description="a file of API keys, one a line (a mounted secret)")
    rate_limit_per_client: float | None = Field(
        None, gt=0, description="requests per second per client to /v1 and /v2, bursts of as many; unset: no limit"
    )
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field(
        (),
        description="comma-separated addresses or networks of the proxies whose X-Forwarded-For names the client; "
        "unset: the peer address is the client",
    )
    ort_threads: int = Field(
        1, ge=0, description="onnxruntime intra-op threads per model and for YuNet (0: one per core)"
    )
    reload_interval: float = Field(5.0, ge=0, description="seconds between store checks (0: only /admin/reload)")
    # Batches, videos (POST /v1/predict/batch, POST /v1/video).
    batch_max_images: int = Field(32, ge=1, le=1024, description="images in one POST /v1/predict/batch")
    batch_max_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="the images of one batch together (max_body_bytes also applies)"
    )
    video_max_bytes: int = Field(
        200 * 1024 * 1024, ge=1024, description="largest request body to POST /v1/video (instead of max_body_bytes)"
    )
    video_max_seconds: float = Field(600.0, gt=0, description="longest video accepted, in seconds of playing time")
    video_max_frames: int = Field(
        6000, ge=1, description="most frames one video request classifies (after sampling by fps)"
    )
    video_max_fps: float = Field(
        30.0, gt=0, description="most frames a second sampled from a video; a request's fps is capped to it"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("default_size", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("family")
    @classmethod
    def _family(cls, value: str | None) -> str | None:
        return None if value is None else check_family(value)

    @field_validator("views_by_size", mode="before")
    @classmethod
    def _views_by_size(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        return {**VIEWS_BY_SIZE, **{parse_size(str(size)): views for size, views in value.items()}}

    def views_for(self, size: Size) -> ViewCount:
        """Test-time views for a request to a model of `size` that names none."""
        return self.views if self.views is not None else self.views_by_size[size]

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())
        return value

    @field_validator("admin_token", "api_keys", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose passes an unset variable on as an empty one: that means "off", not "the empty token".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("admin_token_file", "api_keys_file")
    @classmethod
    def _secret_file(cls, path: Path | None) -> Path | None:
        # Read once here, so that a missing or empty secret stops the server at start with a clear message; a keys
        # file of comments only counts as empty, or it would leave inference open.
        if path is not None and not _secret_lines(path.read_text()):
            raise ValueError(f"{path} holds no secret")
        return path

    @model_validator(mode="after")
    def _bodies_fit_the_buffer(self) -> Settings:
        # Bodies are held in memory before a slot is taken (service/body_buffer.py): a body the buffer could never
        # hold would be refused as "busy, retry" forever.
        largest = max(self.max_body_bytes, self.video_max_bytes)
        if largest > self.max_buffered_bytes:
            raise ValueError(
                f"max_buffered_bytes ({self.max_buffered_bytes}) is smaller than the largest body accepted "
                f"({largest}: max_body_bytes {self.max_body_bytes}, video_max_bytes {self.video_max_bytes})"
            )
        return self

    @property
    def admin_secret(self) -> str | None:
        """The admin token, from the file when one is named; None: the admin endpoints are off."""
        if self.admin_token_file is not None:
            return self.admin_token_file.read_text().strip()
        return None if self.admin_token is None else self.admin_token.get_secret_value()

    @property
    def api_key_list(self) -> list[str]:
        """Every accepted API key (the file's and the variable's); empty: inference is open."""
        keys = [] if self.api_keys is None else self.api_keys.get_secret_value().split(",")
        if self.api_keys_file is not None:
            keys += _secret_lines(self.api_keys_file.read_text())
        return [key.strip() for key in keys if key.strip()]

    @field_validator("yunet_model")
    @classmethod
    def _yunet(cls, path: Path | None) -> Path | None:
        # A file named by hand is checked here, so that a wrong one stops the server at start with a clear message;
        # the store's own copy is checked like its classifiers, whenever the store is (service/detect.py).
        return None if path is None else verify_yunet_model(path)

    @property
    def yunet_path(self) -> Path:
        return yunet_file(self.store) if self.yunet_model is None else self.yunet_model
