"""Model architectures; importing this package registers them all."""

from trainer.models import lightweight, microexpnet, teachers
from trainer.models.registry import count_parameters, create_model, list_models, register_model

__all__ = [
    "count_parameters",
    "create_model",
    "lightweight",
    "list_models",
    "microexpnet",
    "register_model",
    "teachers",
]
