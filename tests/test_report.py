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
    sweep = tmp_path / "ckplus" / "subject-k5"  # the temperature sweep picks T for the 10-fold table
    _cell(sweep, "xxs-p12-kd-T4", 0.80, [0.5, 0.5])  # best on test, worse on the selection splits
    _cell(sweep, "xxs-p12-kd-T8", 0.75, [0.7, 0.7])
    grid = tmp_path / "ckplus" / "subject-k10"
    _cell(grid, "xxs-p12-vanilla", 0.70, [0.6, 0.6])
    _cell(grid, "xxs-p12-kd-T4", 0.60, [0.9, 0.9])  # an extra cell: the sweep's choice, not this, counts
    _cell(grid, "xxs-p12-kd-T8", 0.75, [0.7, 0.7])
    _cell(tmp_path / "ckplus" / "random-k5", "m-p1-vanilla", 0.77, [0.7])
    test = {"accuracy": 0.55, "confusion_matrix": [[3, 1], [0, 4]], "classes": ["happiness", "sadness"]}
    for kind, accuracy, temperature in (("vanilla", 0.52, None), ("kd", 0.55, 4.0)):
        fer = tmp_path / "fer2013" / kind / "xxs"
        fer.mkdir(parents=True)
        (fer / "result.json").write_text(json.dumps({
            "arch": "microexpnet_xxs", "parameters": 64951, "val_accuracy": 0.51, "test_accuracy": accuracy,
            "test_accuracy_8crop": 0.53, "temperature": temperature, "test": test,
        }))  # fmt: skip
    fer_sweep = tmp_path / "fer2013" / "sweep" / "xxs"
    fer_sweep.mkdir(parents=True)
    results = {"2.0": {"val_accuracy": 0.40}, "4.0": {"val_accuracy": 0.45}}
    (fer_sweep / "sweep.json").write_text(json.dumps({"best_temperature": 4.0, "results": results}))
    assert selected_temperature(sweep, "XXS") == 8.0
    text = report(tmp_path, tmp_path / "figures")
    assert "| XXS | 70.0 ± 1.0 | 75.0 ± 1.0 | 8.0 | +5.0 |" in text
    assert "| MicroExpNet-XXS vanilla | 64,951 | 51.0 | 52.0 | 53.0 |  |" in text
    assert "| M | — | 77.0 ± 1.0 | — |" in text
    assert "| XXS | 80.0 ± 1.0 | 75.0 ± 1.0 |" in text  # accuracy vs temperature (Fig. 1)
    assert "| XXS | 52.0 | 55.0 | +3.0 | 53.0 | 53.0 |" in text  # KD vs vanilla on FER2013
    assert "| XXS | 40.0 | 45.0 | 4 |" in text  # the sweep and the T it chose
    figures = {path.name for path in (tmp_path / "figures").iterdir()}
    assert figures == {"fer2013_kd_xxs.png", "fer2013_sweep.png", "ckplus_accuracy_vs_temperature.png"}


def _fer_run(root, name, arch, val, test_accuracy, temperature=None, **extra):
    run = root / "fer2013" / name
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({
        "arch": arch, "parameters": 1000, "val_accuracy": val, "test_accuracy": test_accuracy,
        "test_accuracy_8crop": test_accuracy, "temperature": temperature, **extra,
    }))  # fmt: skip


def test_report_compares_teachers_and_picks_each_sizes_family_on_val_not_test(tmp_path):
    _fer_run(tmp_path, "teacher", "fer_vgg", 0.66, 0.678)
    _fer_run(tmp_path, "ensemble", "fer_vgg + fer_vgg", 0.68, 0.695)
    _fer_run(tmp_path, "vanilla/xxs", "microexpnet_xxs", 0.51, 0.522)
    _fer_run(tmp_path, "smoothing/xxs", "microexpnet_xxs", 0.52, 0.525)
    _fer_run(tmp_path, "kd/xxs", "microexpnet_xxs", 0.53, 0.530, 4.0)
    _fer_run(tmp_path, "kd-ensemble/xxs", "microexpnet_xxs", 0.54, 0.545, 4.0)
    _fer_run(tmp_path, "families/dsresnet_xxs", "dsresnet_xxs", 0.58, 0.570, 4.0)
    _fer_run(tmp_path, "families/dsvgg_xxs", "dsvgg_xxs", 0.57, 0.600, 4.0)  # better on test, worse on val
    _fer_run(tmp_path, "families-e60/dsresnet_xs", "dsresnet_xs", 0.59, 0.590, 8.0)
    _fer_run(tmp_path, "families/dsresnet_xs", "dsresnet_xs", 0.58, 0.595, 8.0)
    text = report(tmp_path)
    assert "| teacher ensemble (fer_vgg + fer_vgg) | 1,000 | 68.0 | 69.5 | 69.5 |  |" in text
    assert "| dsresnet_xxs kd | 1,000 | 58.0 | 57.0 | 57.0 | 4.0 |" in text
    assert "| size | T | from 67.8 teacher | from 69.5 teacher | difference |" in text
    assert "| XXS | 4.0 | 53.0 | 54.5 | +1.5 |" in text
    assert "| XXS | dsresnet_xxs kd | 58.0 | 57.0 | 54.5 | +2.5 |" in text
    assert "| dsresnet_xs kd, 60 epochs | 1,000 | 59.0 | 59.0 | 59.0 | 8.0 |" in text
    assert "| XS | dsresnet_xs kd, 60 epochs | 59.0 | 59.0 | — | — |" in text  # the run, not only the architecture
    assert "| XXS | 52.2 | 52.5 | 53.0 |" in text  # label smoothing beside vanilla and KD


def test_report_says_which_runs_stopped_before_their_last_epoch(tmp_path):
    stopped = {"finished": False, "epochs_run": 32, "epochs_planned": 60}
    _fer_run(tmp_path, "families-e60-ensemble/dsvgg_s", "dsvgg_s", 0.645, 0.650, 2.0, **stopped)
    _fer_run(tmp_path, "families-e90/dsvgg_xxs", "dsvgg_xxs", 0.62, 0.615, 4.0, finished=True)
    text = report(tmp_path)
    label = "dsvgg_s kd from the ensemble, 60 epochs (stopped at epoch 32 of 60)"
    assert f"| {label} | 1,000 | 64.5 | 65.0 | 65.0 | 2.0 |" in text
    assert f"| S | {label} | 64.5 | 65.0 | — | — |" in text
    assert "| dsvgg_xxs kd, 90 epochs | 1,000 | 62.0 | 61.5 | 61.5 | 4.0 |" in text


def test_report_labels_seed_runs_by_recipe_in_seed_order(tmp_path):
    for seed, val in ((10, 0.60), (2, 0.61)):
        _fer_run(tmp_path, f"families-e60-ensemble-seed{seed}/dsvgg_xxs", "dsvgg_xxs", val, 0.62, 4.0)
    _fer_run(tmp_path, "families-e60-ensemble-nodropout-seed3/dsvgg5_xxs", "dsvgg5_xxs", 0.63, 0.62, 4.0)
    text = report(tmp_path)
    seed2 = text.index("| dsvgg_xxs kd from the ensemble, 60 epochs, seed 2 | 1,000 | 61.0 |")
    seed10 = text.index("| dsvgg_xxs kd from the ensemble, 60 epochs, seed 10 | 1,000 | 60.0 |")
    # Each recipe's seeds under that recipe's own name, after the previous recipe's.
    assert (
        seed2 < seed10 < text.index("| dsvgg5_xxs kd from the ensemble, no dropout, 60 epochs, seed 3 | 1,000 | 63.0 |")
    )
