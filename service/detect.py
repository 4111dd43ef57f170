"""The face detectors this server offers, built from the settings and chosen per request.

Haar ships with OpenCV and MTCNN with its optional package. YuNet's model is a file, by default the store's own
copy, and is treated like the store's classifiers: checked when it first appears and whenever it changes (``refresh``
runs with every check of the store), and while it is missing or wrong, asking for YuNet is an error that says why,
and the server is not ready if YuNet is its default detector.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import get_args

from model_store.faces import (
    DetectorModelError,
    DetectorNotInstalledError,
    FaceDetector,
    HaarDetector,
    MTCNNDetector,
    YuNetDetector,
)
from service.errors import ApiError, ErrorCode
from service.settings import DetectorName, Settings

log = logging.getLogger("microexp.detect")

DETECTORS: tuple[DetectorName, ...] = get_args(DetectorName)

_FileState = tuple[int, int, int] | None  # inode, mtime, size; None: no such file


class Detectors:
    def __init__(self, settings: Settings) -> None:
        self.default: DetectorName = settings.detector
        self._settings = settings
        self._available: dict[str, FaceDetector] = {"haar": HaarDetector(max_side=settings.haar_max_side)}
        self._unavailable: dict[str, str] = {}  # name → why
        try:
            self._available["mtcnn"] = MTCNNDetector(max_side=settings.mtcnn_max_side)
        except DetectorNotInstalledError as error:
            self._unavailable["mtcnn"] = str(error)
        self._yunet_state: _FileState | str = "unread"
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> bool:
        """Load YuNet's file again if it changed since the last look (one stat when it did not); True when it did."""
        path = self._settings.yunet_path
        with self._lock:
            state = _file_state(path)
            if state == self._yunet_state:
                return False
            self._yunet_state = state
            try:
                yunet = YuNetDetector(
                    path,
                    max_side=self._settings.yunet_max_side,
                    score_threshold=self._settings.yunet_score_threshold,
                    second_look_side=self._settings.yunet_second_look_side,
                    second_look_threshold=self._settings.yunet_second_look_threshold,
                    threads=self._settings.ort_threads,
                )
            except DetectorModelError as error:
                log.error("face detector yunet unavailable: %s", error)
                self._available = {name: found for name, found in self._available.items() if name != "yunet"}
                self._unavailable = {**self._unavailable, "yunet": str(error)}
            else:
                # New mappings swapped in whole, so a request never sees one half updated.
                self._available = {**self._available, "yunet": yunet}
                self._unavailable = {name: why for name, why in self._unavailable.items() if name != "yunet"}
            return True

    @property
    def names(self) -> list[str]:
        """The detectors that can answer now, in the order of DETECTORS."""
        return [name for name in DETECTORS if name in self._available]

    def default_problem(self) -> str | None:
        """Why the default detector cannot answer (None: it can)."""
        return self._unavailable.get(self.default)

    def get(self, name: DetectorName | None) -> FaceDetector:
        chosen = name or self.default
        detector = self._available.get(chosen)
        if detector is not None:
            return detector
        # Asked for by name: the client can pick another; the server's own default: the server is not ready.
        status = 422 if name is not None else 503
        raise ApiError(
            status,
            ErrorCode.DETECTOR_UNAVAILABLE,
            f"detector {chosen!r} is unavailable on this server: {self._unavailable[chosen]}; "
            f"available: {', '.join(self.names)} (valid detectors: {', '.join(DETECTORS)})",
            {"available": self.names, "valid": list(DETECTORS)},
        )


def _file_state(path: Path) -> _FileState:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size
