import json

from trainer.report import report, selected_temperature


def _cell(root, name, mean, folds_val):
    cell = root / name
    cell.mkdir(parents=True)
    (cell / "result.json").write_text(json.dumps({"mean": mean, "std": 0.01}))
    for i, val in enumerate(folds_val):
        (cell / f"fold{i}").mkdir()
        (cell / f"fold{i}" / "result.json").write_text(json.dumps({"val_accuracy": val}))


def test_report_builds_the_papers_tables_and_picks_t_without_looking_at_test(tmp_path):
    grid = tmp_path / "ckplus" / "subject-k10"
    _cell(grid, "xxs-p12-vanilla", 0.70, [0.6, 0.6])
    _cell(grid, "xxs-p12-kd-T4", 0.80, [0.5, 0.5])  # best on test, worse on the selection splits
    _cell(grid, "xxs-p12-kd-T8", 0.75, [0.7, 0.7])
    _cell(tmp_path / "ckplus" / "random-k5", "m-p1-vanilla", 0.77, [0.7])
    fer = tmp_path / "fer2013" / "vanilla" / "xxs"
    fer.mkdir(parents=True)
    (fer / "result.json").write_text(json.dumps({"parameters": 64951, "val_accuracy": 0.51, "test_accuracy": 0.52,
                                                 "test_accuracy_8crop": 0.53, "temperature": None}))  # fmt: skip
    assert selected_temperature(grid, "XXS") == 8.0
    text = report(tmp_path)
    assert "| XXS | 70.0 ± 1.0 | 75.0 ± 1.0 | 8.0 | +5.0 |" in text
    assert "| MicroExpNet-XXS vanilla | 64,951 | 51.0 | 52.0 | 53.0 |  |" in text
    assert "| M | — | 77.0 ± 1.0 | — |" in text
    assert "*no finished cells yet*" in text
