"""neat_vision: NEAT for timm models. `neat_vision.patch(timm_model, rank=7)`."""

from neat_core.io import register_base_model_args

from .hub import from_pretrained
from .patch import head_names, patch
from .presets import FAMILIES, PRESETS, family_of, preset_fields
from .rebuild import create_args

register_base_model_args(create_args)  # save_adapter records the create_model arguments of timm bases

__all__ = ["FAMILIES", "PRESETS", "create_args", "family_of", "from_pretrained", "head_names", "patch",
           "preset_fields"]
