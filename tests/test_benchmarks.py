"""The model benchmark and the trade-off report on a real store with two families (short timings: the numbers are
not the point here, that every served model is timed and reaches the table, plot and targets is)."""

import json

from store_factory import publish_student

from benchmarks import model_speed, report, tradeoff
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
