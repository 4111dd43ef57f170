"""The project's vocabulary, written once: size tiers, families, model names and labels (docs/glossary.md).

The store, the service and the trainer all take these from here, so a size, a family or a model name means the
same thing in a run config, a store folder and a request.

- **size** (tier): ``M``, ``S``, ``XS``, ``XXS`` — a parameter budget, MicroExpNet's four sizes (the paper's
  Table I); user text in any case.
- **family**: an architecture built at every size, e.g. ``microexpnet`` or ``dsvgg5``; the store accepts any
  family name that is safe as a folder name (models trained elsewhere), the trainer builds ``FAMILIES``.
- **model name**: ``<family>_<size>`` in lower case, e.g. ``dsvgg5_xxs``: the trainer's registered architecture
  and the store's folder.
- **labels**: the canonical expression labels (``model_store.labels``), re-exported here.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from model_store.labels import CANONICAL_LABELS as CANONICAL_LABELS
from model_store.labels import canonical_label as canonical_label
from model_store.labels import ordered_subset as ordered_subset

Size = Literal["M", "S", "XS", "XXS"]
SIZES: tuple[Size, ...] = get_args(Size)

# The student families the trainer builds at every size; MicroExpNet is the paper's.
FAMILIES: tuple[str, ...] = ("microexpnet", "dsresnet", "dsvgg", "dsvgg5")
DEFAULT_FAMILY = "microexpnet"

# Model names become folder names, so families are restricted to what is safe in a path on every filesystem.
_FAMILY = r"[a-z][a-z0-9-]{0,47}"
FAMILY_PATTERN = re.compile(rf"^{_FAMILY}$")
MODEL_NAME_PATTERN = re.compile(rf"^{_FAMILY}_({'|'.join(size.lower() for size in SIZES)})$")


def parse_size(text: str) -> Size:
    """A size tier from user text, case-insensitive."""
    size = text.strip().upper()
    if size not in SIZES:
        raise ValueError(f"unknown size {text!r}; sizes: {', '.join(SIZES)}")
    return size  # type: ignore[return-value]


def parse_sizes(text: str) -> list[Size]:
    """``all`` (every size, largest first) or one size tier."""
    return list(SIZES) if text.strip().lower() == "all" else [parse_size(text)]


def check_family(family: str) -> str:
    if not FAMILY_PATTERN.match(family):
        raise ValueError(f"invalid model family {family!r}: lower-case letters, digits and '-' only")
    return family


def model_name(family: str, size: str) -> str:
    """The name of one size tier of a family, e.g. ``microexpnet_xxs``."""
    return f"{check_family(family)}_{parse_size(size).lower()}"


def split_model_name(name: str) -> tuple[str, Size]:
    """``microexpnet_xxs`` → (``microexpnet``, ``XXS``); ValueError for a name that is not ``<family>_<size>``."""
    if not MODEL_NAME_PATTERN.match(name):
        raise ValueError(f"{name!r} is not a model name (<family>_<size>, e.g. microexpnet_xxs)")
    family, _, size = name.rpartition("_")
    return family, parse_size(size)
