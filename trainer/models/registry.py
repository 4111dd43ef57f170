"""Architectures registered by name, so a run config or CLI flag picks one by a string (as timm does)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

ModelFactory = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    def decorator(factory: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorator


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered architecture, e.g. ``create_model("microexpnet_xxs", num_classes=7)``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _REGISTRY[name](**kwargs)


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
