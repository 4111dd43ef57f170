import csv

import cv2
import numpy as np
import pytest
from fer_subset import fer_subset

from model_store.labels import CANONICAL_LABELS, canonical_label
from trainer.data import (
    FER2013_CSV_LABELS,
    DatasetError,
    load_ckplus_folder,
    load_ckplus_original,
    load_fer2013_csv,
    load_fer2013_folder,
    load_image_folder,
    open_dataset,
)

USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


def test_canonical_vocabulary_and_aliases():
    assert CANONICAL_LABELS == (
        "neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise",
    )  # fmt: skip
    assert canonical_label("Happy") == "happiness"
    assert canonical_label("angry") == "anger"
    with pytest.raises(ValueError, match="unknown"):
        canonical_label("boredom")


def test_fer2013_csv_and_folder_readers_agree(fer2013_dir, tmp_path):
    tree = fer_subset(fer2013_dir, tmp_path / "fer", per_class=6)
    folder = load_fer2013_folder(tree)
    csv_path = tmp_path / "fer2013.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for split, usage in USAGE.items():
            for class_dir in sorted((tree / split).iterdir()):
                code = FER2013_CSV_LABELS.index(canonical_label(class_dir.name))
                for image in sorted(class_dir.iterdir()):
                    pixels = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
                    writer.writerow([code, " ".join(map(str, pixels.ravel())), usage])
    from_csv = load_fer2013_csv(csv_path)
    for split in USAGE:
        assert from_csv[split].classes == folder[split].classes
        assert len(from_csv[split]) == len(folder[split]) > 0
        np.testing.assert_array_equal(from_csv[split].images, folder[split].images)
        np.testing.assert_array_equal(from_csv[split].labels, folder[split].labels)
    assert folder["train"].classes == ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise")


def test_csv_reader_skips_bad_rows_and_refuses_wrong_columns(tmp_path):
    good = " ".join(["128"] * 2304)
    path = tmp_path / "fer.csv"
    rows = [("3", good, "Training"), ("3", "1 2 3", "Training"), ("9", good, "Training"),
            ("0", good, "PublicTest"), ("6", good, "PrivateTest")]  # fmt: skip
    path.write_text("emotion,pixels,Usage\n" + "\n".join(",".join(r) for r in rows) + "\n")
    splits = load_fer2013_csv(path)
    assert len(splits["train"]) == 1 and splits["train"].skipped == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("label,image\n1,2\n")
    with pytest.raises(DatasetError, match="emotion,pixels,Usage"):
        load_fer2013_csv(bad)


def test_ckplus_folder_has_subjects(ckplus_dir):
    data = load_ckplus_folder(ckplus_dir)
    assert len(data) == 981
    assert len(np.unique(data.subjects)) == 118
    assert "contempt" in data.classes and "neutral" not in data.classes
    assert data.images.shape[1:] == (48, 48)


def _write_png(path, value=100, size=(64, 80)):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full(size, value, np.uint8)
    image[10:30, 10:30] = 255 - value  # not uniform, so a resize is observable
    cv2.imwrite(str(path), image)


def test_ckplus_original_layout_takes_last_three_frames_and_first_as_neutral(tmp_path):
    root = tmp_path / "ck"
    for subject, seq, code in [("S005", "001", 3), ("S010", "002", 7)]:
        for frame in range(1, 7):
            _write_png(root / "cohn-kanade-images" / subject / seq / f"{subject}_{seq}_{frame:08d}.png")
        emotion = root / "Emotion" / subject / seq / f"{subject}_{seq}_00000006_emotion.txt"
        emotion.parent.mkdir(parents=True)
        emotion.write_text(f"   {code:.7e}\n")
    # a sequence with no emotion file is unlabelled and left out
    _write_png(root / "cohn-kanade-images" / "S011" / "001" / "S011_001_00000001.png")
    data = load_ckplus_original(root, face_crop=False)
    assert len(data) == 8
    names = [data.classes[i] for i in data.labels]
    assert names.count("neutral") == 2 and names.count("disgust") == 3 and names.count("surprise") == 3
    assert sorted(set(data.subjects)) == ["S005", "S010"]
    assert [p.rsplit("_", 1)[1] for p in data.paths[:4]] == ["00000001.png", "00000004.png", "00000005.png",
                                                            "00000006.png"]  # fmt: skip


def test_generic_folder_with_subject_regex_and_unreadable_files(tmp_path):
    root = tmp_path / "mine"
    _write_png(root / "happy" / "alice_1.png")
    _write_png(root / "happy" / "bob_1.png")
    _write_png(root / "sad" / "alice_2.png")
    (root / "sad" / "carol_9.png").write_bytes(b"not an image")
    data = load_image_folder(root, subject_pattern=r"^([a-z]+)_", image_size=32)
    assert len(data) == 3 and data.skipped == 1
    assert data.images.shape == (3, 32, 32)
    assert list(data.subjects) == ["alice", "bob", "alice"]
    with pytest.raises(DatasetError, match="does not match"):
        load_image_folder(tmp_path / "mine", subject_pattern=r"^(\d+)_")


def test_clear_errors_for_wrong_paths_layouts_and_empty_classes(tmp_path):
    with pytest.raises(DatasetError, match="KIND:PATH"):
        open_dataset(str(tmp_path))
    with pytest.raises(DatasetError, match="no such"):
        open_dataset(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(DatasetError, match="not a FER2013 folder"):
        open_dataset(f"fer2013:{tmp_path}")
    (tmp_path / "happy").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        load_image_folder(tmp_path)
    (tmp_path / "boredom").mkdir()
    with pytest.raises(ValueError, match="unknown expression"):
        load_image_folder(tmp_path)
