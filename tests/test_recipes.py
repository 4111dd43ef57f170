"""Recipes (trainer/recipes/*.toml): each resolves into command lines the trainer accepts, each has run folders of
its own, every published model names the recipe that trains it, and a tiny recipe goes from training to a served
model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, add_detector
from fastapi.testclient import TestClient
from fer_subset import fer_subset
from server_fixture import astronaut, encode

from model_store.store import ModelStore
from model_store.vocabulary import parse_sizes
from service.app import create_app
from service.settings import Settings
from trainer.cli import _positional, build_parser, main
from trainer.recipe import RecipeError, RecipeRun, load_recipe, recipe_names

STORE = ModelStore(REPO / "models")
PUBLISHED = [(name, version) for name in STORE.models() for version in STORE.versions(name)]


def _runs(name: str) -> list[RecipeRun]:
    return load_recipe(name).plan()


@pytest.mark.parametrize("name", recipe_names())
def test_a_recipe_resolves_into_command_lines_the_trainer_accepts(name):
    recipe = load_recipe(name)
    runs = recipe.plan()
    assert runs and recipe.description
    for run in runs:
        args = build_parser().parse_args(run.argv(_positional(recipe.command)))
        assert (args.command, str(args.run_dir)) == (recipe.command, run.run_dir)


def test_no_two_recipes_share_a_run_folder():
    owners: dict[str, str] = {}
    for name in recipe_names():
        for run in _runs(name):
            assert owners.setdefault(run.run_dir, name) == name, f"{run.run_dir}: {owners[run.run_dir]} and {name}"


def _architectures(run: RecipeRun) -> set[str]:
    family = str(run.args.get("family", "microexpnet"))
    return {f"{family}_{size.lower()}" for size in parse_sizes(str(run.args.get("size", "all")))}


@pytest.mark.parametrize(("name", "version"), PUBLISHED)
def test_a_published_model_names_a_recipe_with_a_run_that_trains_it_as_recorded(name, version):
    metadata = STORE.metadata(name, version)
    provenance = metadata.provenance
    assert provenance.recipe_name in recipe_names()
    runs = [run for run in _runs(provenance.recipe_name) if metadata.architecture in _architectures(run)]
    seeds = {int(run.args.get("seed", 0)) for run in runs}
    assert provenance.seed in seeds
    run = next(run for run in runs if int(run.args.get("seed", 0)) == provenance.seed)
    teachers = run.args.get("teacher", [])
    assert isinstance(teachers, list) and len(teachers) == len(
        (provenance.teacher or "").split(", ") if teachers else []
    )
    assert provenance.temperature == (float(run.args["temperature"]) if teachers else None)  # type: ignore[arg-type]
    assert provenance.epochs is not None and provenance.epochs <= int(run.args["epochs"])  # type: ignore[arg-type]
    assert metadata.preprocess.input_size == int(run.args.get("input_size", metadata.preprocess.input_size))  # type: ignore[arg-type]


def test_the_recipe_listing_names_every_published_version(capsys):
    assert main(["recipes", "--store", str(STORE.root)]) == 0
    listing = capsys.readouterr().out
    for name, version in PUBLISHED:
        assert f"{name} v{version}" in listing


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(text)


def test_extends_grids_runs_seeds_size_tables_and_recipe_references_resolve(tmp_path):
    _write(tmp_path, "base", 'description = "b"\ncommand = "teacher"\nrun_dir = "r/base"\n[args]\nepochs = 3\n')
    _write(
        tmp_path,
        "child",
        'description = "c"\nextends = "base"\ncommand = "student"\nrun_dir = "r/{family}_{size}"\nseeds = [0, 2]\n'
        'runs = [{family = "dsvgg", size = "xxs"}, {family = "dsvgg5", size = "m"}]\n'
        "grid = {lr = [0.1, 0.2]}\n"
        '[args]\nteacher = ["recipe:base"]\ntemperature = {m = 2, xxs = 4}\n',
    )
    runs = load_recipe("child", tmp_path).plan(folder=tmp_path)
    assert len(runs) == 8  # 2 seeds x 2 runs x 2 learning rates
    first, seeded = runs[0], runs[4]
    assert first.args == {"epochs": 3, "teacher": ["r/base/best.pt"], "temperature": 4, "family": "dsvgg",
                          "size": "xxs", "lr": 0.1}  # fmt: skip
    assert (first.run_dir, seeded.run_dir, seeded.args["seed"]) == ("r/dsvgg_xxs", "r/dsvgg_xxs-seed2", 2)
    assert [run.args["temperature"] for run in runs[:4]] == [4, 4, 2, 2]
    only = load_recipe("child", tmp_path).plan(seed=5, only={"family": "dsvgg5", "lr": "0.2"}, folder=tmp_path)
    assert [(run.run_dir, run.args["seed"]) for run in only] == [("r/dsvgg5_m-seed5", 5)]
    _write(tmp_path, "loop", 'description = "l"\nextends = "loop"\nrun_dir = "r"\n')
    with pytest.raises(RecipeError, match="extends itself"):
        load_recipe("loop", tmp_path)
    _write(tmp_path, "sizeless", 'description = "s"\nextends = "child"\nrun_dir = "r/s"\nruns = [{size = "xs"}]\n')
    with pytest.raises(RecipeError, match="temperature is given by size"):
        load_recipe("sizeless", tmp_path).plan(folder=tmp_path)


def test_a_tiny_recipe_trains_publishes_and_is_served(fer2013_dir, tmp_path, capsys):
    data = fer_subset(fer2013_dir, tmp_path / "fer2013", per_class=6)
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        f'description = "a tiny student"\ncommand = "student"\nrun_dir = "{tmp_path / "run"}/{{size}}"\n'
        f'grid = {{size = ["xxs"]}}\n[args]\ndata = "fer2013:{data}"\nepochs = 1\nbatch_size = 32\nquiet = true\n'
    )
    assert main(["run", str(recipe)]) == 0
    run = tmp_path / "run" / "xxs"
    assert json.loads((run / "config.json").read_text())["recipe"] == "tiny"
    assert json.loads((run / "recipe.json").read_text())["runs"][0][:2] == ["student", "--run-dir"]

    store = tmp_path / "store"
    assert main(["publish", str(run / "best.pt"), "--store", str(store), "--promote"]) == 0
    assert "published microexpnet_xxs version 1; serving version 1" in capsys.readouterr().out
    add_detector(store)
    with TestClient(create_app(Settings(store=store, reload_interval=0))) as client:
        face = encode(astronaut()[65:165, 178:270])
        answer = client.post("/v1/predict?model=xxs&detect=false", content=face, headers={"content-type": "image/jpeg"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["name"] == "microexpnet_xxs"
        versions = client.get("/v1/models").json()["models"][0]["versions"]
        assert versions[0]["provenance"]["recipe_name"] == "tiny"


def test_the_makefile_keeps_to_conveniences_and_leaves_experiments_to_recipes():
    makefile = (REPO / "Makefile").read_text()
    assert len(makefile.splitlines()) <= 60
    assert "python -c" not in makefile and "fer2013-" not in makefile and "ckplus-" not in makefile
    assert {"serve:", "test:", "bench:", "report:"} <= {line.split()[0] for line in makefile.splitlines() if line}
