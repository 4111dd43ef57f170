"""Recipes: each training experiment as a small named TOML file in ``trainer/recipes/``, not a Makefile target.

A recipe names one trainer command and its options, exactly the flags that command takes (``python -m trainer
student --help``), written as TOML keys with ``-`` or ``_``; ``run_dir`` is where its runs go. ``python -m trainer
run NAME [--seed N] [--device cuda]`` runs it (resuming, as every training command does) and ``python -m trainer
recipes`` lists them. A run's ``config.json`` records the recipe's name, and ``recipe.json`` beside it the resolved
recipe and the command line it became.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

RECIPES = Path(__file__).resolve().parent / "recipes"
# The commands a recipe may run: the training commands, each resumable.
Command = Literal["teacher", "student", "sweep", "cv", "ensemble"]


class RecipeError(ValueError):
    """A recipe that does not exist or does not validate."""


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = Field(min_length=1, description="what the recipe is for, in a sentence or two")
    command: Command
    run_dir: str = Field(description="where its runs go; --seed N appends -seedN")
    args: dict[str, str | int | float | bool | list[str | int | float]] = Field(default_factory=dict)

    def argv(self, seed: int | None = None, device: str | None = None) -> list[str]:
        """The command line this recipe stands for."""
        run_dir = self.run_dir if seed is None else f"{self.run_dir}-seed{seed}"
        argv = [self.command, "--run-dir", run_dir, "--recipe", self.name]
        overrides = {"seed": seed, "device": device}
        options = dict(self.args) | {key: value for key, value in overrides.items() if value is not None}
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is False:
                continue
            elif isinstance(value, list):
                argv += [flag, *(str(v) for v in value)]
            else:
                argv += [flag, str(value)]
        return argv

    def run_record(self, seed: int | None, device: str | None) -> str:
        return json.dumps({"recipe": self.model_dump(), "argv": self.argv(seed, device)}, indent=2)


def recipe_names(folder: Path = RECIPES) -> list[str]:
    return sorted(path.stem for path in folder.glob("*.toml"))


def load_recipe(name: str, folder: Path = RECIPES) -> Recipe:
    """The recipe ``name`` (a name from ``recipe_names`` or a path to a TOML file)."""
    path = Path(name) if name.endswith(".toml") else folder / f"{name}.toml"
    if not path.is_file():
        raise RecipeError(f"no recipe {name!r}; recipes: {', '.join(recipe_names(folder))}")
    try:
        data = tomllib.loads(path.read_text())
        return Recipe(name=path.stem, **data)
    except (tomllib.TOMLDecodeError, ValidationError, TypeError) as exc:
        raise RecipeError(f"recipe {path}: {exc}") from exc
