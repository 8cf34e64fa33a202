"""neat_vision: NEAT for timm models. `neat_vision.patch(timm_model, rank=7)`."""

from .patch import head_names, patch
from .presets import FAMILIES, PRESETS, family_of, preset_fields

__all__ = ["FAMILIES", "PRESETS", "family_of", "head_names", "patch", "preset_fields"]
