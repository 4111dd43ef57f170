"""The face detectors this server offers, built once from the settings and chosen per request."""

from __future__ import annotations

from model_store.faces import FaceDetector, HaarDetector, YuNetDetector
from service.errors import ApiError, ErrorCode
from service.settings import DetectorName, Settings


class Detectors:
    def __init__(self, settings: Settings) -> None:
        self.default: DetectorName = settings.default_detector
        self._detectors: dict[str, FaceDetector] = {"haar": HaarDetector(max_side=settings.haar_max_side)}
        if settings.yunet_model is not None:
            self._detectors["yunet"] = YuNetDetector(
                settings.yunet_model,
                max_side=settings.yunet_max_side,
                score_threshold=settings.yunet_score_threshold,
            )

    @property
    def names(self) -> list[str]:
        return list(self._detectors)

    def get(self, name: DetectorName | None) -> FaceDetector:
        detector = self._detectors.get(name or self.default)
        if detector is None:
            raise ApiError(
                422,
                ErrorCode.DETECTOR_UNAVAILABLE,
                f"detector {name!r} is not configured on this server (yunet needs MICROEXP_YUNET_MODEL); "
                f"available: {', '.join(self.names)}",
                {"available": self.names},
            )
        return detector
