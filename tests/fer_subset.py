"""Small FER2013-layout trees for tests, linking (not copying) a few real images from ../shared."""

from __future__ import annotations

from pathlib import Path


def fer_subset(source: Path, target: Path, per_class: int, splits: tuple[str, ...] = ("train", "val", "test")) -> Path:
    for split in splits:
        for class_dir in sorted((source / split).iterdir()):
            out = target / split / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for image in sorted(class_dir.iterdir())[:per_class]:
                (out / image.name).symlink_to(image)
    return target
