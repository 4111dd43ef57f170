"""Scenes for the detection benchmark: labelled faces placed into 640x480 photographs, every face's box and
expression known.

The faces are the datasets' tight 48x48 crops (FER2013 PrivateTest as FER+ keeps its original pixels, labelled
with FER2013's own label, which is what the models were trained and tested on; and CK+), padded with their own
edge pixels (a detector needs the context a photograph gives), enlarged to 60-240 px, turned in-plane by 0, ±10
or ±20 degrees (where aligning by the eyes should matter) and blended into the scene through a feathered oval,
so that no hard square edge gives the face away; they stay grey, as the datasets are. The backgrounds are
photographs shipped in scikit-image with no human face in them (one has a cat's). Scene ``i`` of a seed depends
on nothing but the seed, ``i`` and the face pools, so a shorter run measures a prefix of a longer one.

The real photographs with people that the installed packages ship are one face each (scikit-image's astronaut
and cameraman, matplotlib's Grace Hopper); ``photo_scenes`` places them the same way, unlabelled.
Nothing here is written to disk: the dataset images must not be redistributed, scenes made from them included.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from benchmarks.server import SHARED
from model_store.labels import canonical_label
from model_store.preprocess import Box
from trainer.data import FERPLUS_VOTE_COLUMNS, ferplus_votes

SCENE_SIZE = (640, 480)  # width, height
FACE_SIDES = (60, 240)  # placed face side in pixels, drawn log-uniformly: a group photo to a portrait
ANGLES = (0, -10, 10, -20, 20)  # in-plane turn, degrees
MAX_FACES = 3
FER_SHARE = 0.75  # the rest of the faces come from CK+ (posed, easier), when both pools are given
# The crop's own edge pixels added around it, as a fraction of its side: about a forehead and a chin's worth.
PAD = 0.25
ATTEMPTS = 50  # places tried for a face before the scene is left with fewer faces

# scikit-image's photographs without a human face (chelsea is a cat: a detection there is a false positive).
BACKGROUNDS: dict[str, Callable[[], np.ndarray]] = {
    "coffee": data.coffee,
    "chelsea": data.chelsea,
    "rocket": data.rocket,
    "motorcycle": lambda: data.stereo_motorcycle()[0],
    "brick": data.brick,
    "grass": data.grass,
    "gravel": data.gravel,
    "hubble": data.hubble_deep_field,
    "ihc": data.immunohistochemistry,
    "retina": data.retina,
}


@dataclass(frozen=True)
class LabelledFace:
    gray: np.ndarray  # a tight face crop, as the datasets store them
    label: str | None  # canonical expression; None: not labelled
    source: str  # fer2013, ckplus, photo
    name: str  # where it came from (a file's stem), to trace a result back


@dataclass(frozen=True)
class PlacedFace:
    # The upright square of the face's side around its centre: what a detector reports for a turned face.
    box: Box
    label: str | None
    source: str
    name: str
    angle: int


@dataclass(frozen=True)
class Scene:
    name: str
    background: str
    bgr: np.ndarray
    faces: tuple[PlacedFace, ...]


def as_bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def background_images() -> dict[str, np.ndarray]:
    return {name: as_bgr(load()) for name, load in BACKGROUNDS.items()}


def background(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random window of the photograph, scaled to cover the scene by 1-1.5x."""
    width, height = SCENE_SIZE
    factor = max(width / image.shape[1], height / image.shape[0]) * rng.uniform(1.0, 1.5)
    scaled = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    top = int(rng.integers(0, scaled.shape[0] - height + 1))
    left = int(rng.integers(0, scaled.shape[1] - width + 1))
    return np.ascontiguousarray(scaled[top : top + height, left : left + width])


def feathered_oval(height: int, width: int, feather: float) -> np.ndarray:
    """float32 opacity: 1 inside an oval filling the frame less `feather` px, falling smoothly to 0 at its edge."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ry, rx = height / 2.0, width / 2.0
    # Distance inside the edge in pixels, approximated by the normalised radius times the mean semi-axis.
    inside = (1.0 - np.sqrt(((ys + 0.5 - ry) / ry) ** 2 + ((xs + 0.5 - rx) / rx) ** 2)) * (rx + ry) / 2.0
    return np.clip(inside / feather, 0.0, 1.0)


def paste(canvas: np.ndarray, image: np.ndarray, alpha: np.ndarray, matrix: np.ndarray) -> None:
    """`image` warped by the 2x3 `matrix` into `canvas` in place, blended by `alpha` (same warp)."""
    height, width = canvas.shape[:2]
    warped = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    opacity = cv2.warpAffine(alpha, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0)[..., None]
    blended = canvas.astype(np.float32) * (1.0 - opacity) + warped.astype(np.float32) * opacity
    canvas[:] = np.clip(blended, 0, 255).astype(np.uint8)


def transform(centre: tuple[float, float], scale: float, angle: float, to: tuple[float, float]) -> np.ndarray:
    """The affine map turning by `angle` and scaling by `scale` about `centre`, then moving `centre` onto `to`."""
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 2] += np.array(to) - np.array(centre)
    return matrix


def reach(radius: float, angle: float) -> float:
    """Half the side of the upright box around a square of half-side `radius` turned by `angle`."""
    turn = math.radians(angle)
    return radius * (abs(math.cos(turn)) + abs(math.sin(turn)))


def face_patch(face: LabelledFace) -> tuple[np.ndarray, np.ndarray, int]:
    """The crop padded with its own edge pixels, its feathered opacity, and the pad in crop pixels.

    The padding is blurred: repeated edge pixels draw streaks, the blur keeps their tone without the lines. YuNet
    (320 px) found 78% of 227 upright FER2013 faces so, against 74% with the streaks, as with the padding inpainted.
    """
    side = face.gray.shape[0]
    pad = round(side * PAD)
    patch = cv2.GaussianBlur(cv2.copyMakeBorder(face.gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE), (0, 0), side / 12)
    patch[pad : pad + side, pad : pad + side] = face.gray
    return as_bgr(patch), feathered_oval(patch.shape[0], patch.shape[1], feather=pad * 0.8), pad


def free_spot(
    rng: np.random.Generator, half: float, taken: list[tuple[float, float, float]]
) -> tuple[float, float] | None:
    """A centre keeping a patch of upright half-side `half` inside the scene and clear of the `taken` ones."""
    width, height = SCENE_SIZE
    if 2 * half > min(width, height):
        return None
    for _ in range(ATTEMPTS):
        x, y = rng.uniform(half, width - half), rng.uniform(half, height - half)
        if all(math.hypot(x - ox, y - oy) >= half + other for ox, oy, other in taken):
            return x, y
    return None


def place(canvas: np.ndarray, face: LabelledFace, side: float, angle: int, centre: tuple[float, float]) -> PlacedFace:
    patch, alpha, pad = face_patch(face)
    crop = face.gray.shape[0]
    middle = (pad + crop / 2.0, pad + crop / 2.0)
    paste(canvas, patch, alpha, transform(middle, side / crop, angle, centre))
    half = side / 2.0
    box = (round(centre[0] - half), round(centre[1] - half), round(side), round(side))
    return PlacedFace(box, face.label, face.source, face.name, angle)


def scene(
    index: int,
    pools: Sequence[Sequence[LabelledFace]],
    grounds: dict[str, np.ndarray],
    seed: int = 0,
) -> Scene:
    """Scene `index`: 1-3 faces from `pools` (the first pool FER_SHARE of the time) on one of `grounds`."""
    rng = np.random.default_rng([seed, index])
    name = sorted(grounds)[int(rng.integers(len(grounds)))]
    canvas = background(grounds[name], rng)
    taken: list[tuple[float, float, float]] = []
    faces = []
    for _ in range(int(rng.integers(1, MAX_FACES + 1))):
        pool = pools[0] if len(pools) == 1 or rng.random() < FER_SHARE else pools[1]
        face = pool[int(rng.integers(len(pool)))]
        side = math.exp(rng.uniform(*np.log(FACE_SIDES)))
        angle = int(rng.choice(ANGLES))
        half = reach(side * (0.5 + PAD), angle)
        centre = free_spot(rng, half, taken)
        if centre is None:
            continue
        taken.append((*centre, half))
        faces.append(place(canvas, face, side, angle, centre))
    return Scene(f"scene-{seed}-{index}", name, canvas, tuple(faces))


def scenes(count: int, pools: Sequence[Sequence[LabelledFace]], seed: int = 0) -> list[Scene]:
    grounds = background_images()
    return [scene(index, pools, grounds, seed) for index in range(count)]


def empty_scenes(count: int, seed: int = 0) -> list[Scene]:
    """Face-free scenes: windows of every background in turn."""
    grounds = background_images()
    names = sorted(grounds)
    out = []
    for index in range(count):
        rng = np.random.default_rng([seed, index, 1])
        name = names[index % len(names)]
        out.append(Scene(f"empty-{seed}-{index}", name, background(grounds[name], rng), ()))
    return out


# Real photographs with one person each, and that person's face (x, y, width, height): YuNet's box at 640 px,
# checked by eye; Haar's boxes overlap them by IoU 0.67-0.8.
PHOTOS: dict[str, tuple[Callable[[], np.ndarray], Box]] = {
    "astronaut": (data.astronaut, (178, 63, 90, 113)),
    "cameraman": (data.camera, (196, 113, 60, 81)),
}


def grace_hopper() -> np.ndarray | None:
    """matplotlib's sample photograph (RGB), when matplotlib (the train extra) is installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = cv2.imread(str(path))
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


GRACE_HOPPER_FACE: Box = (183, 120, 170, 213)


def photos() -> dict[str, tuple[np.ndarray, Box]]:
    out = {name: (as_bgr(load()), box) for name, (load, box) in PHOTOS.items()}
    grace = grace_hopper()
    if grace is not None:
        out["grace_hopper"] = (as_bgr(grace), GRACE_HOPPER_FACE)
    return out


def photo_scenes(face_sides: Sequence[int] = (80, 160), seed: int = 0) -> list[Scene]:
    """Each real photograph turned by every angle about its face, the face scaled to each side, on a background;
    the photograph's edge feathered as a pasted face's is."""
    grounds = background_images()
    names = sorted(grounds)
    out = []
    for photo_name, (image, (x, y, w, h)) in photos().items():
        alpha = feathered_oval(*image.shape[:2], feather=min(image.shape[:2]) * 0.1)
        for side in face_sides:
            for angle in ANGLES:
                rng = np.random.default_rng([seed, len(out), 2])
                ground = names[int(rng.integers(len(names)))]
                canvas = background(grounds[ground], rng)
                scale = side / max(w, h)
                width, height = SCENE_SIZE
                half = reach(side / 2.0, angle)
                centre = (rng.uniform(half, width - half), rng.uniform(half, height - half))
                paste(canvas, image, alpha, transform((x + w / 2, y + h / 2), scale, angle, centre))
                box = (round(centre[0] - w * scale / 2), round(centre[1] - h * scale / 2), round(w * scale))
                placed = PlacedFace((*box, round(h * scale)), None, "photo", photo_name, angle)
                out.append(Scene(f"{photo_name}-{side}-{angle}", ground, canvas, (placed,)))
    return out


def not_faces(split_folder: Path) -> set[str]:
    """Images of a FER+ split folder that most of its taggers called unknown or not a face (FER+'s protocol drops
    them): the most-voted column, the first on a tie, is past the eight emotions."""
    paths, votes = ferplus_votes(split_folder)
    past_emotions = votes.argmax(axis=1) >= len(FERPLUS_VOTE_COLUMNS)
    return {path.name for path, dropped in zip(paths, past_emotions, strict=True) if dropped}


def fer_faces(ferplus: Path, split: str = "FER2013Test") -> list[LabelledFace]:
    """FER+'s original pixels of one FER2013 split, each with FER2013's own label (fer2013_labels.csv), less the
    images FER+'s taggers did not take for a face."""
    labels = {}
    with (ferplus / "fer2013_labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            labels[row["image"]] = canonical_label(row["fer2013_emotion"])
    dropped = not_faces(ferplus / split)
    faces = []
    for path in sorted((ferplus / split).glob("*.png")):
        if path.name in labels and path.name not in dropped:
            faces.append(LabelledFace(read_gray(path), labels[path.name], "fer2013", path.stem))
    return faces


def ckplus_faces(root: Path) -> list[LabelledFace]:
    """CK+'s 48x48 crops, labelled by their folder."""
    return [
        LabelledFace(read_gray(path), canonical_label(path.parent.name), "ckplus", path.stem)
        for path in sorted(root.glob("*/*.png"))
    ]


def labelled_pools(shared: Path = SHARED) -> list[list[LabelledFace]]:
    """[FER2013 PrivateTest faces, CK+ faces] from the shared data folder; empty when it lacks either."""
    ferplus, ckplus = shared / "datasets" / "ferplus", shared / "datasets" / "ckplus48"
    if not (ferplus / "FER2013Test").is_dir() or not ckplus.is_dir():
        return []
    return [fer_faces(ferplus), ckplus_faces(ckplus)]


def read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path} is not an image OpenCV can read")
    return image
