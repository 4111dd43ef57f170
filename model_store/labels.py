"""The project's one label vocabulary.

Every dataset maps its own class names onto these, and every model declares the subset it predicts,
in output order, using these names.
"""

from __future__ import annotations

from collections.abc import Iterable

CANONICAL_LABELS: tuple[str, ...] = (
    "neutral",
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
)

# Names used by FER2013, CK+ and common folder layouts, mapped to the canonical vocabulary.
_ALIASES: dict[str, str] = {
    "angry": "anger",
    "anger": "anger",
    "contempt": "contempt",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "happy": "happiness",
    "happiness": "happiness",
    "joy": "happiness",
    "neutral": "neutral",
    "sad": "sadness",
    "sadness": "sadness",
    "surprise": "surprise",
    "surprised": "surprise",
}


def canonical_label(name: str) -> str:
    """Map a dataset's class name (any case) onto the canonical vocabulary."""
    key = name.strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown expression label {name!r}; known: {', '.join(sorted(_ALIASES))}")
    return _ALIASES[key]


def ordered_subset(labels: Iterable[str]) -> tuple[str, ...]:
    """The canonical labels among `labels`, in canonical order (the output order of a model)."""
    wanted = {canonical_label(label) for label in labels}
    return tuple(label for label in CANONICAL_LABELS if label in wanted)
