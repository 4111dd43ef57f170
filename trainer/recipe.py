"""Recipes: every training experiment as a small named TOML file in ``trainer/recipes/``, not a Makefile target.

A recipe names one trainer command and its options, exactly the flags that command takes (``python -m trainer
student --help``), written as TOML keys with ``-`` or ``_``::

    description = "what it is for, in a sentence or two"
    command = "student"                      # teacher, student, sweep, cv or ensemble
    run_dir = "runs/fer2013/kd/{size}"       # where its runs go; {flag} is a run's value of that flag
    extends = "fer2013-vanilla"              # optional: start from that recipe (command, args, runs, grid, seeds)
    runs = [{family = "dsvgg", size = "xs"}] # optional: one run per entry, its flags over [args]
    grid = {size = ["m", "s", "xs", "xxs"]}  # optional: one run per combination (with runs: per entry)
    seeds = [0, 2]                           # optional: every run once per seed

    [args]
    teacher = ["recipe:fer2013-teacher"]     # recipe:NAME is that recipe's checkpoint, <its run_dir>/best.pt
    temperature = {m = 2, s = 2, xs = 8, xxs = 4}  # a table by size: each run takes its own size's value

``extends`` merges ``args`` flag by flag; ``runs`` or ``grid`` given here replace both of the parent's; the
description and run_dir are each file's own. A run on a seed other than the recipe's own (its ``seed`` flag,
default 0) goes to ``<run_dir>-seed<N>``.

``python -m trainer run NAME [--seed N] [--device cuda] [--only FLAG=VALUE]`` runs a recipe (resuming, as every
training command does) and ``python -m trainer recipes [NAME]`` lists them, or shows one's command lines. Each run's
``config.json`` records the recipe's name, and ``recipe.json`` in its run folder the resolved recipe and the command
lines of its runs there (several for a cross-validation grid, whose runs share a folder). Every recipe has run folders
of its own.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from model_store.vocabulary import SIZES

RECIPES = Path(__file__).resolve().parent / "recipes"
RECIPE_REFERENCE = "recipe:"
# The commands a recipe may run: the training commands, each resumable.
Command = Literal["teacher", "student", "sweep", "cv", "ensemble"]
Scalar = str | int | float | bool
Value = Scalar | list[Scalar] | dict[str, Scalar]  # a table: one value per size
_SIZE_KEYS = {size.lower() for size in SIZES}
# What a recipe that extends another takes from it; description and run_dir are its own.
_INHERITED = ("command", "args", "runs", "grid", "seeds")


class RecipeError(ValueError):
    """A recipe that does not exist, does not validate or cannot be resolved."""


def _flags(table: Mapping[str, Any]) -> dict[str, Any]:
    return {key.replace("-", "_"): value for key, value in table.items()}


@dataclass(frozen=True)
class RecipeRun:
    """One run of a recipe: a trainer command line."""

    recipe: str
    command: Command
    run_dir: str
    args: dict[str, Scalar | list[Scalar]]

    def argv(self, positional: Collection[str] = ()) -> list[str]:
        """The command line; flags named in ``positional`` (e.g. ensemble's checkpoints) go first, unflagged."""
        head: list[str] = [self.command]
        argv = ["--run-dir", self.run_dir]
        for key, value in self.args.items():
            values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
            if key in positional:
                head += values
            elif value is True:
                argv.append("--" + key.replace("_", "-"))
            elif value is not False:
                argv += ["--" + key.replace("_", "-"), *values]
        return head + argv


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = Field(min_length=1, description="what the recipe is for, in a sentence or two")
    command: Command
    run_dir: str = Field(description="where its runs go; {flag} is a run's value of that flag")
    extends: str | None = Field(None, description="the recipe this one starts from")
    args: dict[str, Value] = Field(default_factory=dict)
    runs: list[dict[str, Scalar]] = Field(default_factory=list, description="one run per entry")
    grid: dict[str, list[Scalar]] = Field(default_factory=dict, description="one run per combination")
    seeds: list[int] = Field(default_factory=list, description="every run once per seed")

    @field_validator("args", "grid", mode="before")
    @classmethod
    def _flag_names(cls, table: object) -> object:
        return _flags(table) if isinstance(table, Mapping) else table

    @field_validator("runs", mode="before")
    @classmethod
    def _run_flag_names(cls, runs: object) -> object:
        return [_flags(run) if isinstance(run, Mapping) else run for run in runs] if isinstance(runs, list) else runs

    @field_validator("args")
    @classmethod
    def _by_size(cls, args: dict[str, Value]) -> dict[str, Value]:
        for key, value in args.items():
            if isinstance(value, dict) and not set(map(str.lower, value)) <= _SIZE_KEYS:
                raise ValueError(f"{key}: a table gives one value per size ({', '.join(sorted(_SIZE_KEYS))})")
        return args

    def plan(
        self,
        seed: int | None = None,
        device: str | None = None,
        only: Mapping[str, str] | None = None,
        folder: Path | None = None,
    ) -> list[RecipeRun]:
        """Every run of the recipe (on ``seed`` instead of its seeds, on ``device``), those whose flags match
        ``only``; ``recipe:NAME`` references are looked up in ``folder`` (default: the recipes' folder)."""
        own_seed = int(self.args.get("seed", 0))  # type: ignore[arg-type]
        seeds = [seed] if seed is not None else self.seeds or [own_seed]
        combinations = [dict(zip(self.grid, values, strict=True)) for values in itertools.product(*self.grid.values())]
        runs = []
        for run_seed, entry, combination in itertools.product(seeds, self.runs or [{}], combinations):
            flags = self.args | entry | combination | ({"seed": run_seed} if run_seed != own_seed else {})
            flags |= {"device": device} if device is not None else {}
            args = {key: self._resolve(key, value, flags, folder) for key, value in flags.items()}
            if only and any(str(args.get(key, "")).lower() != value.lower() for key, value in only.items()):
                continue
            run_dir = self._run_dir(args) + (f"-seed{run_seed}" if run_seed != own_seed else "")
            runs.append(RecipeRun(self.name, self.command, run_dir, args))
        return runs

    def _resolve(
        self, key: str, value: Value, flags: Mapping[str, Value], folder: Path | None
    ) -> Scalar | list[Scalar]:
        if isinstance(value, dict):
            size = str(flags.get("size", "")).lower()
            by_size = {k.lower(): v for k, v in value.items()}
            if size not in by_size:
                raise RecipeError(f"recipe {self.name}: {key} is given by size, and a run of size {size!r} has none")
            return by_size[size]
        if isinstance(value, list):
            return [_checkpoint(item, folder) for item in value]
        return _checkpoint(value, folder)

    def _run_dir(self, args: Mapping[str, Scalar | list[Scalar]]) -> str:
        try:
            return self.run_dir.format_map({key: str(value).lower() for key, value in args.items()})
        except (KeyError, ValueError) as exc:
            raise RecipeError(f"recipe {self.name}: run_dir {self.run_dir!r} names no flag of a run ({exc})") from None

    def run_record(self, runs: Collection[RecipeRun], positional: Collection[str] = ()) -> str:
        """``recipe.json`` of a run folder: this recipe, resolved, and the command lines of its runs there."""
        return json.dumps({"recipe": self.model_dump(), "runs": [run.argv(positional) for run in runs]}, indent=2)


def _checkpoint(value: Scalar, folder: Path | None) -> Scalar:
    """``recipe:NAME`` → the checkpoint that recipe's one run leaves, ``<its run_dir>/best.pt``."""
    if not (isinstance(value, str) and value.startswith(RECIPE_REFERENCE)):
        return value
    name = value.removeprefix(RECIPE_REFERENCE)
    runs = load_recipe(name, folder or RECIPES).plan(folder=folder)
    if len(runs) != 1:
        raise RecipeError(f"{value}: that recipe has {len(runs)} runs, so it names no one checkpoint")
    return f"{runs[0].run_dir}/best.pt"


def recipe_names(folder: Path = RECIPES) -> list[str]:
    return sorted(path.stem for path in folder.glob("*.toml"))


def _recipe_data(name: str, folder: Path, seen: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    """A recipe file's name and its table, with what it extends merged in."""
    path = Path(name) if name.endswith(".toml") else folder / f"{name}.toml"
    if not path.is_file():
        raise RecipeError(f"no recipe {name!r}; recipes: {', '.join(recipe_names(folder))}")
    if path.stem in seen:
        raise RecipeError(f"recipe {path.stem} extends itself: {' → '.join((*seen, path.stem))}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"recipe {path}: {exc}") from exc
    parent = data.get("extends")
    if isinstance(parent, str):
        base = _recipe_data(parent, folder, (*seen, path.stem))[1]
        inherited = {key: base[key] for key in _INHERITED if key in base}
        if "runs" in data or "grid" in data:
            inherited = {key: value for key, value in inherited.items() if key not in ("runs", "grid")}
        args = _flags(base.get("args", {})) | _flags(data.get("args", {}))
        data = inherited | data | {"args": args}
    return path.stem, data


def load_recipe(name: str, folder: Path = RECIPES) -> Recipe:
    """The recipe ``name`` (a name from ``recipe_names`` or a path to a TOML file)."""
    stem, data = _recipe_data(name, folder)
    try:
        return Recipe(name=stem, **data)
    except (ValidationError, TypeError) as exc:
        raise RecipeError(f"recipe {stem}: {exc}") from exc
