"""The report's tables pick runs by the recipe each run records, wherever its folder is."""

import json

from trainer.config import KDConfig, TrainConfig
from trainer.records import CellResult, RunResult, SweepResult, TestMetrics
from trainer.report import find_cells, report, selected_temperature

TEST = TestMetrics(
    accuracy=0.55, per_class_precision={}, per_class_recall={}, confusion_matrix=[[3, 1], [0, 4]],
    classes=["happiness", "sadness"], count=8,
)  # fmt: skip


def _run(root, folder, recipe, arch, val, test, temperature=None, seed=0, **extra):
    run = root / folder
    run.mkdir(parents=True)
    kd = KDConfig(temperature) if temperature else None
    (run / "config.json").write_text(json.dumps(TrainConfig(arch=arch, seed=seed, recipe=recipe, kd=kd).to_dict()))
    RunResult(
        arch=arch, parameters=1000, val_accuracy=val, test_accuracy=test, test_accuracy_8crop=test,
        temperature=temperature, test=TEST, **extra,
    ).write(run / "result.json")  # fmt: skip
    return run


def _cell(root, folder, recipe, size, accuracies, selection, mode="subject", pooling="p12", temperature=None):
    cell = root / "ckplus" / folder
    arch = f"microexpnet_{size}"
    kd = KDConfig(temperature) if temperature else None
    config = TrainConfig(arch=arch, model_kwargs={"pooling": pooling}, recipe=recipe, kd=kd)
    for i, val in enumerate(selection):
        (cell / f"fold{i}").mkdir(parents=True)
        (cell / f"fold{i}" / "config.json").write_text(json.dumps(config.to_dict()))
        RunResult(arch=arch, parameters=1000, val_accuracy=val).write(cell / f"fold{i}" / "result.json")
    CellResult(mode=mode, folds=len(accuracies), fold_accuracies=accuracies, arch=arch, kd=kd is not None).write(
        cell / "result.json"
    )


def test_tables_pick_runs_by_their_recorded_recipe_and_t_without_looking_at_test(tmp_path):
    # Folder names say nothing: the recipes the runs record place them.
    _cell(tmp_path, "a/one", "ckplus-temperature", "xxs", [0.79, 0.81], [0.5, 0.5], temperature=4.0)  # best on test
    _cell(tmp_path, "a/two", "ckplus-temperature", "xxs", [0.74, 0.76], [0.7, 0.7], temperature=8.0)
    _cell(tmp_path, "b/one", "ckplus-vanilla", "xxs", [0.69, 0.71], [0.6, 0.6])
    _cell(tmp_path, "b/two", "ckplus-kd", "xxs", [0.74, 0.76], [0.7, 0.7], temperature=8.0)
    _cell(tmp_path, "c", "ckplus-pooling", "m", [0.76, 0.78], [0.7], mode="random", pooling="p1")
    _run(tmp_path, "fer2013/x", "fer2013-vanilla", "microexpnet_xxs", 0.51, 0.52)
    _run(tmp_path, "fer2013/y", "fer2013-kd", "microexpnet_xxs", 0.51, 0.55, 4.0)
    sweep = tmp_path / "fer2013" / "z"
    sweep.mkdir(parents=True)
    results = {t: RunResult(arch="microexpnet_xxs", parameters=1, val_accuracy=v) for t, v in ((2.0, 0.4), (4.0, 0.45))}
    SweepResult(best_temperature=4.0, results=results).write(sweep / "sweep.json")

    assert selected_temperature(find_cells(tmp_path / "ckplus"), "XXS") == 8.0
    text = report(tmp_path, tmp_path / "figures")
    assert "| XXS | 70.0 ± 1.0 | 75.0 ± 1.0 | 8.0 | 8.0 | +5.0 |" in text  # CK+ vanilla vs KD
    assert "| microexpnet_xxs | fer2013-vanilla | 1,000 | 51.0 | 52.0 | 52.0 |  |" in text
    assert "| M | — | 77.0 ± 1.0 | — |" in text  # pooling p1, random folds
    assert "| XXS | 80.0 ± 1.0 | 75.0 ± 1.0 |" in text  # accuracy vs temperature (Fig. 1)
    assert "| XXS | 52.0 | 55.0 | +3.0 | 52.0 | 55.0 |" in text  # KD vs vanilla on FER2013
    assert "| XXS | 40.0 | 45.0 | 4 |" in text  # the sweep and the T it chose
    figures = {path.name for path in (tmp_path / "figures").iterdir()}
    assert figures == {"fer2013_kd_xxs.png", "fer2013_sweep.png", "ckplus_accuracy_vs_temperature.png"}


def test_report_compares_teachers_and_picks_each_sizes_family_on_val_not_test(tmp_path):
    _run(tmp_path, "fer2013/t", "fer2013-teacher", "fer_vgg", 0.66, 0.678)
    ensemble = tmp_path / "fer2013" / "e"
    ensemble.mkdir(parents=True)
    RunResult(
        arch="fer_vgg + fer_vgg", parameters=2000, val_accuracy=0.68, test_accuracy=0.695, recipe="fer2013-ensemble"
    ).write(ensemble / "result.json")
    _run(tmp_path, "fer2013/1", "fer2013-vanilla", "microexpnet_xxs", 0.51, 0.522)
    _run(tmp_path, "fer2013/2", "fer2013-smoothing", "microexpnet_xxs", 0.52, 0.525)
    _run(tmp_path, "fer2013/3", "fer2013-kd", "microexpnet_xxs", 0.53, 0.530, 4.0)
    _run(tmp_path, "fer2013/4", "fer2013-kd-ensemble", "microexpnet_xxs", 0.54, 0.545, 4.0)
    _run(tmp_path, "fer2013/5", "fer2013-families", "dsresnet_xxs", 0.58, 0.570, 4.0)
    _run(tmp_path, "fer2013/6", "fer2013-families", "dsvgg_xxs", 0.57, 0.600, 4.0)  # better on test, worse on val
    text = report(tmp_path)
    assert "| fer_vgg + fer_vgg | fer2013-ensemble | 2,000 | 68.0 | 69.5 | — |  |" in text
    assert "| dsresnet_xxs | fer2013-families | 1,000 | 58.0 | 57.0 | 57.0 | 4.0 |" in text
    assert "| size | T | from 67.8 teacher | from 69.5 teacher | difference |" in text
    assert "| XXS | 4.0 | 53.0 | 54.5 | +1.5 |" in text
    assert "| XXS | dsresnet_xxs fer2013-families | 58.0 | 57.0 | 54.5 | +2.5 |" in text
    assert "| XXS | 52.2 | 52.5 | 53.0 |" in text  # label smoothing beside vanilla and KD
    assert text.index("| fer_vgg | fer2013-teacher |") < text.index("| fer_vgg + fer_vgg |") < text.index("dsresnet")


def test_report_names_other_seeds_and_runs_that_stopped_before_their_last_epoch(tmp_path):
    stopped = {"finished": False, "epochs_run": 32, "epochs_planned": 60}
    _run(tmp_path, "fer2013/s", "fer2013-families-ensemble", "dsvgg_s", 0.645, 0.650, 2.0, **stopped)
    for seed, val in ((10, 0.60), (2, 0.61)):
        _run(tmp_path, f"fer2013/seed{seed}", "fer2013-families-ensemble", "dsvgg_xxs", val, 0.62, 4.0, seed=seed)
    _run(tmp_path, "fer2013/t2", "fer2013-teacher2", "fer_vgg", 0.63, 0.655, seed=1)  # the recipe's own seed
    text = report(tmp_path)
    label = "fer2013-families-ensemble (stopped at epoch 32 of 60)"
    assert f"| dsvgg_s | {label} | 1,000 | 64.5 | 65.0 | 65.0 | 2.0 |" in text
    assert f"| S | dsvgg_s {label} | 64.5 | 65.0 | — | — |" in text
    seed2 = text.index("| dsvgg_xxs | fer2013-families-ensemble, seed 2 | 1,000 | 61.0 |")
    assert seed2 < text.index("| dsvgg_xxs | fer2013-families-ensemble, seed 10 | 1,000 | 60.0 |")
    assert "| fer_vgg | fer2013-teacher2 | 1,000 |" in text


def test_runs_that_record_no_recipe_belong_to_the_recipe_whose_folder_they_are_in(tmp_path):
    _run(tmp_path, "fer2013/kd/xxs", "", "microexpnet_xxs", 0.53, 0.530, 4.0)
    _run(tmp_path, "fer2013/somewhere/else", "", "microexpnet_xs", 0.50, 0.500, 8.0)
    text = report(tmp_path)
    assert "| microexpnet_xxs | fer2013-kd | 1,000 | 53.0 |" in text
    assert "| microexpnet_xs | fer2013/somewhere/else | 1,000 | 50.0 |" in text
