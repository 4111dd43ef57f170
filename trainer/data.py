"""Dataset readers: FER2013 (CSV and folder layouts), FER+ (the FER+ tools' layout), CK+ (cropped folder and original
distribution) and any ``<class>/<image>`` folder. Each returns ``FaceDataset`` objects holding grayscale uint8 faces
of one size in memory, labels as indices into canonical label names, and subject ids where the layout has them.

Unreadable images are skipped and counted, never fatal; a wrong path or an empty class is a clear ``DatasetError``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from model_store.labels import canonical_label, ordered_subset
from model_store.preprocess import crop_face, resize, to_gray

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm"}
FER2013_SPLITS = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
FER2013_CSV_LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
CK_EMOTION_CODES = ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
CKPLUS_SUBJECT_PATTERN = r"^(S\d+)_"


class DatasetError(ValueError):
    """A dataset path or layout that cannot be read."""


@dataclass
class FaceDataset:
    images: np.ndarray  # uint8 [N, S, S]
    labels: np.ndarray  # int64 [N], indices into `classes`
    classes: tuple[str, ...]  # canonical label names, canonical order
    name: str = ""
    subjects: np.ndarray | None = None  # str [N]
    paths: list[str] = field(default_factory=list)
    skipped: int = 0  # unreadable files left out
    # FER+: each face's taggers' votes over `classes` [N, C] (unknown / not-a-face votes not included); None elsewhere.
    votes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray | Sequence[int]) -> FaceDataset:
        index = np.asarray(index)
        return FaceDataset(
            images=self.images[index],
            labels=self.labels[index],
            classes=self.classes,
            name=self.name,
            subjects=None if self.subjects is None else self.subjects[index],
            paths=[self.paths[i] for i in index] if self.paths else [],
            votes=None if self.votes is None else self.votes[index],
        )


def _read_gray(path: Path) -> np.ndarray | None:
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    return None if image is None else to_gray(image)


def _load_faces(
    paths: Sequence[Path], image_size: int, face_crop: FaceCropper | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read, crop and resize images in parallel; returns (faces, mask of the readable ones)."""

    def load(path: Path) -> np.ndarray | None:
        gray = _read_gray(path)
        if gray is None:
            return None
        if face_crop is not None:
            gray = face_crop(gray)
        return resize(gray, image_size)

    with ThreadPoolExecutor(max_workers=4) as pool:
        faces = list(pool.map(load, paths, chunksize=64))
    ok = np.array([f is not None for f in faces], dtype=bool)
    stacked = np.stack([f for f in faces if f is not None]) if ok.any() else np.empty((0, image_size, image_size))
    return stacked.astype(np.uint8), ok


class FaceCropper:
    """Crop the largest detected face (the paper's Viola–Jones step); the whole image when none is found."""

    def __init__(self, margin: float = 0.15) -> None:
        from model_store.faces import HaarDetector

        self.detector = HaarDetector()
        self.margin = margin

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        faces = self.detector.detect(gray)
        if not faces:
            return gray
        largest = max(faces, key=lambda f: f.box[2] * f.box[3])
        return crop_face(gray, largest.box, self.margin)


def _class_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DatasetError(f"{root} has no class folders; expected <class>/<image> files")
    return folders


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _build(
    name: str,
    paths: list[Path],
    label_names: list[str],
    image_size: int,
    subjects: list[str] | None = None,
    face_crop: FaceCropper | None = None,
) -> FaceDataset:
    if not paths:
        raise DatasetError(f"{name}: no images found")
    classes = ordered_subset(label_names)
    index = {label: i for i, label in enumerate(classes)}
    faces, ok = _load_faces(paths, image_size, face_crop)
    labels = np.array([index[canonical_label(n)] for n in label_names], dtype=np.int64)[ok]
    return FaceDataset(
        images=faces,
        labels=labels,
        classes=classes,
        name=name,
        subjects=None if subjects is None else np.array(subjects)[ok],
        paths=[str(p) for p, good in zip(paths, ok, strict=True) if good],
        skipped=int((~ok).sum()),
    )


def load_image_folder(
    root: Path | str,
    *,
    subject_pattern: str | None = None,
    image_size: int = 48,
    face_crop: bool = False,
    name: str | None = None,
) -> FaceDataset:
    """Any ``<class>/<image>`` folder. ``subject_pattern`` is a regex whose first group extracts a subject id
    from a file name (e.g. ``^(S\\d+)_`` for CK+)."""
    root = Path(root)
    paths: list[Path] = []
    label_names: list[str] = []
    for folder in _class_folders(root):
        canonical_label(folder.name)  # an unknown class name is an error, not a silent new class
        images = _images_in(folder)
        if not images:
            raise DatasetError(f"class folder {folder} is empty")
        paths += images
        label_names += [folder.name] * len(images)
    subjects = None
    if subject_pattern is not None:
        pattern = re.compile(subject_pattern)
        subjects = []
        for path in paths:
            match = pattern.search(path.name)
            if match is None:
                raise DatasetError(f"subject pattern {subject_pattern!r} does not match {path.name}")
            subjects.append(match.group(1))
    cropper = FaceCropper() if face_crop else None
    return _build(name or root.name, paths, label_names, image_size, subjects, cropper)


def load_ckplus_folder(root: Path | str, image_size: int = 48) -> FaceDataset:
    """CK+ in its common cropped layout: ``<class>/S<subject>_<seq>_<frame>.png``."""
    return load_image_folder(root, subject_pattern=CKPLUS_SUBJECT_PATTERN, image_size=image_size, name="ckplus")


def load_fer2013_folder(
    root: Path | str, image_size: int = 48, splits: tuple[str, ...] = tuple(FER2013_SPLITS)
) -> dict[str, FaceDataset]:
    """FER2013 as ``<split>/<class>/*.jpg`` with splits train (Training), val (PublicTest), test (PrivateTest)."""
    root = Path(root)
    missing = [s for s in FER2013_SPLITS if not (root / s).is_dir()]
    if missing:
        raise DatasetError(f"{root} is not a FER2013 folder: missing split folder(s) {', '.join(missing)}")
    return {split: load_image_folder(root / split, image_size=image_size, name=f"fer2013/{split}") for split in splits}


def load_fer2013_csv(path: Path | str, image_size: int = 48) -> dict[str, FaceDataset]:
    """The original ``fer2013.csv``: columns emotion, pixels (2304 space-separated values), Usage."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} is not a file")
    usage_to_split = {usage: split for split, usage in FER2013_SPLITS.items()}
    rows: dict[str, tuple[list[np.ndarray], list[str]]] = {s: ([], []) for s in FER2013_SPLITS}
    skipped = Counter()
    classes = ordered_subset(FER2013_CSV_LABELS)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"emotion", "pixels", "Usage"} <= set(reader.fieldnames):
            raise DatasetError(f"{path}: expected columns emotion,pixels,Usage; found {reader.fieldnames}")
        for row in reader:
            split = usage_to_split.get(row["Usage"])
            try:
                pixels = np.array(row["pixels"].split(), dtype=np.uint8)
                label = FER2013_CSV_LABELS[int(row["emotion"])]
            except (ValueError, IndexError):
                pixels, label = np.empty(0), ""
            if split is None or pixels.size != 48 * 48:
                skipped[split or "unknown"] += 1
                continue
            rows[split][0].append(resize(pixels.reshape(48, 48), image_size))
            rows[split][1].append(label)
    result = {}
    for split, (images, names) in rows.items():
        if not images:
            raise DatasetError(f"{path}: no rows for {FER2013_SPLITS[split]}")
        index = {label: i for i, label in enumerate(classes)}
        result[split] = FaceDataset(
            images=np.stack(images),
            labels=np.array([index[n] for n in names], dtype=np.int64),
            classes=classes,
            name=f"fer2013/{split}",
            skipped=skipped[split],
        )
    return result


def load_ckplus_original(root: Path | str, image_size: int = 48, face_crop: bool = True) -> FaceDataset:
    """The CK+ distribution: ``cohn-kanade-images/S005/001/S005_001_00000011.png`` and
    ``Emotion/S005/001/S005_001_00000011_emotion.txt``. As in the paper, the last three frames of each labelled
    sequence carry its emotion and the first frame is neutral (8 classes)."""
    root = Path(root)
    images_root, emotion_root = root / "cohn-kanade-images", root / "Emotion"
    if not images_root.is_dir() or not emotion_root.is_dir():
        raise DatasetError(f"{root} is not a CK+ distribution: expected cohn-kanade-images/ and Emotion/")
    paths: list[Path] = []
    label_names: list[str] = []
    subjects: list[str] = []
    for emotion_file in sorted(emotion_root.glob("S*/*/*_emotion.txt")):
        subject, sequence = emotion_file.parent.parent.name, emotion_file.parent.name
        frames = _images_in(images_root / subject / sequence) if (images_root / subject / sequence).is_dir() else []
        if len(frames) < 4:
            continue
        code = int(float(emotion_file.read_text().split()[0]))
        for frame, label in [(frames[0], "neutral")] + [(f, CK_EMOTION_CODES[code]) for f in frames[-3:]]:
            paths.append(frame)
            label_names.append(label)
            subjects.append(subject)
    cropper = FaceCropper() if face_crop else None
    return _build("ckplus", paths, label_names, image_size, subjects, cropper)


# FER+'s folders (the FER+ tools' names) for our split names, and the vote columns of its label.csv after the image
# name and the face box: eight emotions, then "unknown" and "not a face".
FERPLUS_SPLITS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
FERPLUS_VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FERPLUS_NON_EMOTION_COLUMNS = ("unknown", "not a face")
FERPLUS_FER2013_LABELS = "fer2013_labels.csv"


def majority_kept(votes: np.ndarray) -> np.ndarray:
    """Faces with a single most-voted column that is an emotion: FER+'s majority protocol leaves out ties and faces
    whose most votes say unknown or not a face. ``votes`` [N, 10] in label.csv's column order."""
    top = votes.max(axis=1, keepdims=True)
    unique = (votes == top).sum(axis=1) == 1
    return unique & (votes.argmax(axis=1) < len(FERPLUS_VOTE_COLUMNS))


def ferplus_votes(folder: Path) -> tuple[list[Path], np.ndarray]:
    """A FER+ split folder's images and their ten vote counts (label.csv's column order)."""
    label_file = folder / "label.csv"
    if not label_file.is_file():
        raise DatasetError(f"{folder} is not a FER+ split folder: no label.csv")
    paths, votes = [], []
    width = len(FERPLUS_VOTE_COLUMNS) + len(FERPLUS_NON_EMOTION_COLUMNS)
    with label_file.open(newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            try:
                counts = [float(value) for value in row[2 : 2 + width]]
            except ValueError as exc:
                raise DatasetError(f"{label_file}:{number}: vote counts are not numbers: {row}") from exc
            if len(counts) != width:
                raise DatasetError(f"{label_file}:{number}: expected image, box and {width} vote counts: {row}")
            paths.append(folder / row[0])
            votes.append(counts)
    if not paths:
        raise DatasetError(f"{label_file} lists no images")
    return paths, np.array(votes, dtype=np.float32)


def load_ferplus(
    root: Path | str, image_size: int = 48, splits: tuple[str, ...] = tuple(FERPLUS_SPLITS)
) -> dict[str, FaceDataset]:
    """FER+ as its tools lay it out: ``FER2013Train|Valid|Test/label.csv`` (the ten taggers' votes) beside the
    ``fer*.png`` faces (FER2013's original pixels). Eight classes, contempt included. A face's label is its majority
    vote and ``votes`` keeps the eight emotions' counts, the target of the vote-based training modes
    (``trainer.label_targets``); faces that the majority protocol leaves out (ties, unknown, not a face) are left
    out of every split, so every mode trains and is scored on the same faces."""
    root = Path(root)
    missing = [folder for folder in FERPLUS_SPLITS.values() if not (root / folder).is_dir()]
    if missing:
        raise DatasetError(f"{root} is not a FER+ folder: missing {', '.join(missing)}")
    classes = ordered_subset(FERPLUS_VOTE_COLUMNS)
    order = [FERPLUS_VOTE_COLUMNS.index(label) for label in classes]  # label.csv's columns in canonical order
    result = {}
    for split in splits:
        paths, votes = ferplus_votes(root / FERPLUS_SPLITS[split])
        kept = majority_kept(votes)
        emotion_votes = votes[kept][:, order]
        kept_paths = [p for p, keep in zip(paths, kept, strict=True) if keep]
        faces, ok = _load_faces(kept_paths, image_size)
        result[split] = FaceDataset(
            images=faces,
            labels=emotion_votes.argmax(axis=1).astype(np.int64)[ok],
            classes=classes,
            name=f"ferplus/{split}",
            paths=[str(p) for p, good in zip(kept_paths, ok, strict=True) if good],
            skipped=int((~ok).sum()),
            votes=emotion_votes[ok],
        )
    return result


def load_ferplus_fer2013_labels(
    root: Path | str, image_size: int = 48, splits: tuple[str, ...] = tuple(FERPLUS_SPLITS)
) -> dict[str, FaceDataset]:
    """FER+'s original pixels with FER2013's own labels (``fer2013_labels.csv``, seven classes), every face FER+
    kept: scores a model trained on original pixels against FER2013's labels."""
    root = Path(root)
    label_file = root / FERPLUS_FER2013_LABELS
    if not label_file.is_file():
        raise DatasetError(f"{root} has no {FERPLUS_FER2013_LABELS} (FER2013's label of each FER+ image)")
    by_usage: dict[str, dict[str, str]] = {}
    with label_file.open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_usage.setdefault(row["usage"], {})[row["image"]] = row["fer2013_emotion"]
    result = {}
    for split in splits:
        labelled = by_usage.get(FER2013_SPLITS[split], {})
        paths, _ = ferplus_votes(root / FERPLUS_SPLITS[split])
        paths = [p for p in paths if p.name in labelled]
        result[split] = _build(f"ferplus-fer2013/{split}", paths, [labelled[p.name] for p in paths], image_size)
    return result


# What each dataset kind's pixels are, for a model's provenance: a model trained on contrast-stretched faces sees
# something else than a camera gives (docs/results.md, FER+).
PIXEL_SOURCES = {
    "fer2013": "the folder's images as stored (the project's copy: contrast-stretched JPEGs, per-image histogram "
    "equalisation, mean/std 131/78)",
    "fer2013-csv": "FER2013's original pixels (fer2013.csv)",
    "ferplus": "FER2013's original pixels (FER+ folders, mean/std 129/65)",
    "ferplus-fer2013": "FER2013's original pixels (FER+ folders, mean/std 129/65)",
    "ckplus": "CK+ 48x48 face crops",
    "ckplus-original": "CK+ frames, faces cropped by the Haar cascade",
    "folder": "the folder's images as stored",
}
DATASET_KINDS = tuple(PIXEL_SOURCES)


def open_dataset(
    spec: str,
    subject_pattern: str | None = None,
    image_size: int = 48,
    fer_splits: tuple[str, ...] = tuple(FER2013_SPLITS),
) -> dict[str, FaceDataset]:
    """``KIND:PATH`` → named splits. FER2013 and FER+ give train/val/test (or ``fer_splits``); the others one split,
    ``all``."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in DATASET_KINDS:
        raise DatasetError(f"dataset must be KIND:PATH with KIND one of {', '.join(DATASET_KINDS)}; got {spec!r}")
    if not Path(path).exists():
        raise DatasetError(f"{path}: no such file or directory")
    if kind == "fer2013":
        return load_fer2013_folder(path, image_size, fer_splits)
    if kind == "fer2013-csv":
        return load_fer2013_csv(path, image_size)
    if kind == "ferplus":
        return load_ferplus(path, image_size, fer_splits)
    if kind == "ferplus-fer2013":
        return load_ferplus_fer2013_labels(path, image_size, fer_splits)
    if kind == "ckplus":
        return {"all": load_ckplus_folder(path, image_size)}
    if kind == "ckplus-original":
        return {"all": load_ckplus_original(path, image_size)}
    return {"all": load_image_folder(path, subject_pattern=subject_pattern, image_size=image_size)}
