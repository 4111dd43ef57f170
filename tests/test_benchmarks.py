"""The benchmarks' own code: the model benchmark and the trade-off report on a real store with two families (short
timings: the numbers are not the point here, that every served model is timed and reaches the table, plot and targets
is); the scene benchmark's generator on made-up faces, its scoring on boxes whose answers are known, and its tables."""

import json
import math

import numpy as np
import pytest
from conftest import CKPLUS48, SHARED, YUNET, need
from store_factory import publish_student

from benchmarks import detection, end_to_end, model_speed, photo_sizes, report, scenes, tradeoff, yunet_reach
from model_store.faces import Face, HaarDetector, YuNetDetector
from model_store.preprocess import ViewCount
from model_store.store import ModelStore


def test_every_family_is_timed_and_reaches_the_tradeoff_table_plot_and_targets(tmp_path):
    store = ModelStore(tmp_path / "store", create=True)
    publish_student(store, "XXS", metrics={"val_accuracy": 0.53, "test_accuracy": 0.52})
    publish_student(store, "XXS", family="dsresnet", metrics={"val_accuracy": 0.58, "test_accuracy": 0.57})
    publish_student(store, "XXS", family="dsvgg")  # untrained: timed, but nothing to plot
    rows = model_speed.run(store, seconds=0.02, rounds=1, eager=False)
    expected = {(name, count) for name in store.models() for count in model_speed.thread_counts()}
    assert {(row["model"], row["threads"]) for row in rows} == expected
    assert all(row["engines"]["onnxruntime"]["throughput"]["256"] > 0 for row in rows)

    history = tmp_path / "history"
    history.mkdir()
    (history / "20260101T000000Z-test.json").write_text(json.dumps({"label": "test", "quick": True, "model": rows}))
    run = tradeoff.newest_timed(history, set(store.models()))
    assert run is not None and tradeoff.newest_timed(history, {"dsvgg_m"}) is None
    points = tradeoff.points(store, run)
    assert [(p["model"], p["accuracy"]) for p in points] == [("dsresnet_xxs", 0.57), ("microexpnet_xxs", 0.52)]
    assert all(p["throughput"] > 0 and p["latency_ms"] > 0 for p in points)
    assert "| dsresnet_xxs | 1 | " in tradeoff.table(points)
    tradeoff.plots.tradeoff(points, tradeoff.REFERENCES, tmp_path / "tradeoff.png")
    assert (tmp_path / "tradeoff.png").stat().st_size > 10_000

    targets = report.family_targets(run)
    assert [line.split(":")[0] for line in targets] == ["| dsresnet XXS", "| dsvgg XXS"]
    assert all("batch 256 ≥ 1,000 images/s" in line and "(MicroExpNet-XXS: " in line for line in targets)


def test_a_runs_file_name_needs_no_quoting_whatever_its_label():
    from benchmarks.__main__ import history_name

    name = history_name("20261126T020000Z", "dsvgg_s v1 (GPU), trainers paused", quick=False)
    assert name == "20261126T020000Z-dsvgg_s-v1-GPU-trainers-paused.json"
    assert history_name("20261126T020000Z", "  ", quick=True) == "20261126T020000Z-run-quick.json"


def flat_faces(source: str, tones: list[int]) -> list[scenes.LabelledFace]:
    """48x48 'faces' of one grey each: where a face went can be read back from the scene's pixels."""
    return [
        scenes.LabelledFace(np.full((48, 48), tone, np.uint8), label, source, f"{source}-{tone}")
        for tone, label in zip(tones, ["happiness", "sadness", "anger"] * len(tones), strict=False)
    ]


POOLS = [flat_faces("fer2013", [40, 90, 140]), flat_faces("ckplus", [200, 230])]


def test_scenes_are_the_same_for_a_seed_and_a_shorter_run_is_a_prefix():
    first, again, longer = scenes.scenes(6, POOLS), scenes.scenes(6, POOLS), scenes.scenes(9, POOLS)
    for a, b, c in zip(first, again, longer, strict=False):
        assert a.faces == b.faces == c.faces and a.name == c.name
        assert np.array_equal(a.bgr, b.bgr) and np.array_equal(a.bgr, c.bgr)
    other = scenes.scenes(6, POOLS, seed=1)
    assert [s.faces for s in other] != [s.faces for s in first]


def test_every_placed_face_is_where_its_box_says_with_its_label_and_turn():
    width, height = scenes.SCENE_SIZE
    tones = {face.name: int(face.gray[0, 0]) for pool in POOLS for face in pool}
    labels = {face.name: face.label for pool in POOLS for face in pool}
    made = scenes.scenes(40, POOLS)
    placed = [face for scene in made for face in scene.faces]
    assert {face.source for face in placed} == {"fer2013", "ckplus"}
    assert {face.angle for face in placed} == set(scenes.ANGLES)
    for scene in made:
        assert scene.bgr.shape == (height, width, 3) and 1 <= len(scene.faces) <= scenes.MAX_FACES
        for face in scene.faces:
            x, y, w, h = face.box
            assert w == h and scenes.FACE_SIDES[0] - 1 <= w <= scenes.FACE_SIDES[1] + 1
            assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
            assert face.label == labels[face.name]
            # The middle of the box lies inside the face square at any of the turns: the face's own grey there.
            inner = scene.bgr[y + h * 3 // 10 : y + h * 7 // 10, x + w * 3 // 10 : x + w * 7 // 10]
            assert np.abs(inner.astype(int) - tones[face.name]).max() <= 2
        for a in scene.faces:  # faces never overlap one another
            for b in scene.faces:
                assert a is b or detection.iou(a.box, b.box) == 0.0


def test_a_pasted_face_fades_into_the_scene_without_a_hard_edge():
    alpha = scenes.feathered_oval(72, 72, feather=10)
    assert alpha[36, 36] == 1.0 and alpha[0, 0] == 0.0 and alpha[36, 0] < 0.1
    row = alpha[36, :36]
    assert np.all(np.diff(row) >= 0) and np.abs(np.diff(row)).max() <= 1 / 10 + 1e-6


def test_face_free_scenes_hold_no_face_and_cover_every_background():
    empty = scenes.empty_scenes(len(scenes.BACKGROUNDS))
    assert all(not scene.faces for scene in empty)
    assert {scene.background for scene in empty} == set(scenes.BACKGROUNDS)


def test_the_real_photographs_are_found_where_their_boxes_say():
    upright = [scene for scene in scenes.photo_scenes() if scene.faces[0].angle == 0]
    assert {scene.faces[0].name for scene in upright} >= {"astronaut", "cameraman"}
    # Haar's frontal cascade never finds the cameraman's three-quarter face; YuNet finds every face.
    expected = {"haar": {"astronaut", "grace_hopper"}, "yunet": {"astronaut", "cameraman", "grace_hopper"}}
    detectors = [HaarDetector(), *([YuNetDetector(YUNET, max_side=640)] if YUNET.is_file() else [])]
    for detector in detectors:
        found = {
            scene.faces[0].name
            for scene in upright
            if detection.score(detector, [(scene, detection.decoded(scene))])["found"] == 1
        }
        assert found == expected[detector.name] & {scene.faces[0].name for scene in upright}, detector.name


def turned_astronaut(angle: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """skimage's astronaut turned by `angle` about her face, the face 160 px, on a grey 640x480 scene off its centre
    (about which the turned looks turn: a box turned back the wrong way lands elsewhere)."""
    image, (x, y, w, h) = scenes.photos()["astronaut"]
    canvas = np.full((480, 640, 3), 128, np.uint8)
    scale, centre = 160 / max(w, h), (200.0, 170.0)
    alpha = scenes.feathered_oval(*image.shape[:2], feather=min(image.shape[:2]) * 0.1)
    scenes.paste(canvas, image, alpha, scenes.transform((x + w / 2, y + h / 2), scale, angle, centre))
    return canvas, (
        round(centre[0] - w * scale / 2),
        round(centre[1] - h * scale / 2),
        round(w * scale),
        round(h * scale),
    )


def test_yunets_turned_looks_find_a_turned_face_where_it_is_and_the_sweep_counts_them():
    detector = YuNetDetector(need(YUNET), max_side=320, score_threshold=0.3)
    canvas, truth = turned_astronaut(45)
    upright = yunet_reach.candidates(detector, canvas, turns=False)
    looks = yunet_reach.candidates(detector, canvas, turns=True)
    assert len(upright) == 1 and len(looks) == 3
    # The look turned against the face sees it nearly upright: surer, and its box, turned back, sits on the face.
    best_box, best_score = max(looks, key=lambda look: look[1])
    assert best_score > upright[0][1] and detection.iou(best_box, truth) > 0.85
    assert yunet_reach.merged(looks, 0.3) == [best_box]  # one face, one box
    assert yunet_reach.merged(looks, 0.99) == []

    scene = scenes.Scene("turned", "grey", canvas, (scenes.PlacedFace(truth, None, "photo", "astronaut", 45),))
    blank = np.full((480, 640, 3), 128, np.uint8)
    rows = yunet_reach.sweep(detector, [(scene, canvas)], [(scenes.Scene("e", "grey", blank, ()), blank)], turns=True)
    assert [row["threshold"] for row in rows] == list(yunet_reach.THRESHOLDS)
    assert [row["recall"] for row in rows] == [1.0 if t <= best_score else 0.0 for t in yunet_reach.THRESHOLDS]
    assert all(row["false_positives_per_scene"] == row["false_positives_per_empty_scene"] == 0 for row in rows)
    table = report.yunet_reach_table(
        {"scenes": 1, "empty_scenes": 1, "rows": [{"max_side": 320, "turns": [0, 25, -25], **row} for row in rows]}
    )
    assert "| 320 | upright, ±25° |" in table[-1] and "100.0% / 0.00 (0.00)" in table[-1]


def test_camera_sized_photos_are_decoded_reduced_with_the_same_face_and_reach_the_docs(tmp_path):
    need(YUNET)
    store = ModelStore(tmp_path / "store", create=True)
    publish_student(store, "M", family="dsvgg5")
    result = photo_sizes.run(store, seconds=0.0)
    rows = {(row["width"], row["height"]): row for row in result["rows"]}
    assert list(rows) == list(photo_sizes.SIZES)
    assert rows[(640, 480)]["default"]["decoded"] == [640, 480]
    assert rows[(4032, 3024)]["default"]["decoded"] == [2016, 1512]  # past twice the default 1600 px: half scale
    assert rows[(6000, 4000)]["default"]["decoded"] == [3000, 2000]
    for row in rows.values():
        assert row["whole"]["decoded"] == [row["width"], row["height"]]
        assert row["whole"]["faces"] == row["default"]["faces"] == 1
        assert row["box_iou"] > 0.9 and row["truth_iou"]["default"] > 0.6
    run = {"label": "t", "quick": False, "file": "20260101T000000Z-t.json", "photos": result}
    run["machine"] = {"other_load": {"loadavg_1m": 0.0, "busy_processes": []}}
    table = report.photos_section(run)
    assert table[-1].startswith("| 6000x4000 | ") and "| 3000x2000 | " in table[-1]


def test_matching_pairs_each_detection_with_one_face_largest_overlap_first():
    truths = [(0, 0, 100, 100), (200, 0, 100, 100)]
    assert detection.iou(truths[0], (50, 0, 100, 100)) == pytest.approx(1 / 3)
    # One detection on each face, the second's overlapping the first face a little too, and one elsewhere.
    found = [(5, 5, 100, 100), (90, 0, 200, 100), (400, 400, 50, 50)]
    assert detection.match(truths, found) == [0, 1]
    assert detection.match(truths, [(90, 0, 200, 100)]) == [None, 0]
    assert detection.match(truths, [(5, 5, 100, 100)]) == [0, None]
    assert detection.match(truths[:1], [(0, 0, 100, 100), (0, 0, 100, 100)]) == [0]  # a tie: the more confident
    assert detection.match(truths[:1], [(50, 0, 100, 100)]) == [None]  # IoU 1/3 < 0.4


class Scripted:
    """A detector answering set boxes per scene (by the image's first pixel), counting its calls."""

    name = "scripted"

    def __init__(self, answers: dict[int, list[tuple[int, int, int, int]]]) -> None:
        self.answers = answers
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Face]:
        self.calls += 1
        return [Face(box, 1.0) for box in self.answers.get(int(image[0, 0, 0]), [])]


def test_a_detectors_score_counts_found_faces_and_false_positives():
    face = scenes.PlacedFace((100, 100, 80, 80), "happiness", "fer2013", "a", 10)
    other = scenes.PlacedFace((300, 100, 160, 160), None, "ckplus", "b", 0)
    images = []
    for tone, faces in ((1, (face, other)), (2, ())):
        image = np.full((480, 640, 3), tone, np.uint8)
        images.append((scenes.Scene(f"s{tone}", "test", image, faces), image))
    detector = Scripted({1: [(104, 100, 80, 84), (0, 0, 30, 30)], 2: [(0, 0, 30, 30)]})
    result = detection.score(detector, images)
    assert (result["faces"], result["found"], result["false_positives"]) == (2, 1, 2)
    assert result["recall"] == 0.5 and result["false_positives_per_scene"] == 1.0
    assert result["by"]["angle"] == {"0": {"faces": 1, "found": 0}, "10": {"faces": 1, "found": 1}}
    assert result["by"]["size"] == {"151-240": {"faces": 1, "found": 0}, "60-94": {"faces": 1, "found": 1}}


def test_the_accuracy_grid_detects_once_per_image_and_pairs_its_comparisons():
    scripted = Scripted({1: [(0, 0, 10, 10)]})
    memo = end_to_end.LastImageDetector(scripted)
    image = np.full((48, 64, 3), 1, np.uint8)
    assert memo.detect(image) == memo.detect(image.copy()) and scripted.calls == 1
    memo.detect(np.full((48, 64, 3), 2, np.uint8))
    assert scripted.calls == 2

    base = end_to_end.Config("yunet", False, ViewCount.CENTRE, "XXS")
    aligned = end_to_end.Config("yunet", True, ViewCount.CENTRE, "XXS")
    outcomes = {base: [True, False, False, True], aligned: [True, True, False, True]}
    rows = {row["config"]: row for row in end_to_end.rows(outcomes, {base: [(3.0, 2), (1.0, 2)]})}
    assert rows["yunet/plain/1/XXS"]["accuracy"] == 0.5
    assert rows["yunet/plain/1/XXS"]["se"] == pytest.approx(math.sqrt(0.25 / 4))
    assert rows["yunet/plain/1/XXS"]["classify_ms_per_face"] == 1.0
    gain = rows["yunet/align/1/XXS"]["align_gain"]
    assert gain["difference"] == 0.25 and gain["se"] == pytest.approx(0.25)  # differences 0, 1, 0, 0


def test_the_scene_tables_reach_the_docs(tmp_path):
    face = scenes.PlacedFace((100, 100, 80, 80), "happiness", "fer2013", "a", 0)
    image = np.full((480, 640, 3), 1, np.uint8)
    images = [(scenes.Scene("s", "test", image, (face,)), image)]
    row = {"detector": "yunet", "max_side": 320, "default": True}
    row.update({key: detection.score(Scripted({1: [(100, 100, 80, 80)]}), images) for key in ("scenes", "photos")})
    row["empty"] = detection.score(Scripted({}), [(scenes.Scene("e", "test", image, ()), image)])
    det = {"sets": {"scenes": {"scenes": 1, "faces": 1}, "photos": {"scenes": 1, "faces": 1}, "empty": {"scenes": 1}}}
    det.update(iou_threshold=0.4, angles=[0], detectors=[row], pipeline=[])
    base = end_to_end.Config("yunet", False, ViewCount.CENTRE, "XXS")
    accuracy = {"faces": 1, "scenes": 1, "labels": "test", "models": {"XXS": "dsvgg5_xxs"}}
    accuracy.update(defaults={"XXS": base.key()}, rows=end_to_end.rows({base: [True]}, {base: [(1.0, 1)]}))
    point = {"requests_per_s": 200.0, "latency_ms": {"p50": 30.0, "p99": 60.0}, "error_count": 0}
    http = {"default_detector": "yunet", "connections": 8, "points": [{"detector": "default", **point}]}
    run = {"label": "t", "quick": False, "file": "20260101T000000Z-t.json", "detection": det, "accuracy": accuracy}
    run["http_detectors"] = http
    run["machine"] = {"other_load": {"loadavg_1m": 0.0}}
    text = report.render([run])
    assert "Group photographs from registry packages: left out (not part of this run)." in text
    row["registry"] = detection.score(Scripted({1: [(100, 100, 80, 80), (300, 300, 50, 50)]}), images)
    det["sets"]["registry"] = {"scenes": 1, "faces": 1}
    text = report.render([run])
    assert "| 1/1 | 1/1, 1 |" in text  # real photos; group photos: found, false
    assert "| yunet at 320 px: recall ≥ 97% on the scene benchmark | 100.0% of 1 faces" in text
    assert "| default server, 640x480 JPEG with one face, 8 connections: ≥ 150 req/s, 0 errors | 200 req/s" in text
    assert "| yunet **default (XXS)** | 0.0 | off | 1 | 100.0% (1.0 ms) |" in text
    results = tmp_path / "results.md"
    results.write_text(f"# R\n\n{report.RESULTS_BEGIN}\nold\n{report.RESULTS_END}\n\nkept\n")
    history = tmp_path / "history"
    history.mkdir()
    (history / run["file"]).write_text(json.dumps(run))
    (history / "20260102T000000Z-api-accuracy-x.json").write_text("{}")  # another tool's result: passed over
    report.write_results(history, results)
    written = results.read_text()
    assert "old" not in written and written.endswith(f"{report.RESULTS_END}\n\nkept\n") and "100.0% (1.0 ms)" in written


def test_fer_and_ck_faces_come_with_their_labels_without_the_ones_ferplus_calls_no_face():
    need(SHARED / "datasets" / "ferplus")
    need(CKPLUS48)
    fer, ck = scenes.labelled_pools()
    dropped = scenes.not_faces(SHARED / "datasets" / "ferplus" / "FER2013Test")
    assert len(dropped) > 0 and not dropped & {f"{face.name}.png" for face in fer}
    assert {face.label for face in fer} == {
        "neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise"
    }  # fmt: skip
    assert "contempt" in {face.label for face in ck} and all(face.gray.shape == (48, 48) for face in fer + ck)


def test_the_registry_photographs_annotations_name_their_packages_and_hold_plausible_boxes():
    from benchmarks.registry_photos import ANNOTATIONS

    annotations = json.loads(ANNOTATIONS.read_text())
    for name, photo in annotations["photos"].items():
        assert photo["package"] in annotations["packages"], name
        assert len(photo["sha256"]) == 64
        for x, y, width, height in photo["faces"]:
            assert x >= 0 and y >= 0 and 50 <= width <= 400 and 50 <= height <= 400, name
    assert sum(len(photo["faces"]) for photo in annotations["photos"].values()) == 28
