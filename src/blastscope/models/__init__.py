"""Registered models, one module per paper. Importing this package registers them all."""
from blastscope.models import leukemianet, leukonet, sdct, spike_resnet  # noqa: F401  (registers)
from blastscope.models._registry import create_model, list_models, model_info, register_model

__all__ = ["create_model", "list_models", "model_info", "register_model"]
