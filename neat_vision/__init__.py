"""neat_vision: NEAT for timm models. `neat_vision.patch(timm_model, rank=7)`."""

from .hub import from_pretrained
from .patch import head_names, patch
from .presets import FAMILIES, PRESETS, family_of, preset_fields

__all__ = ["FAMILIES", "PRESETS", "family_of", "from_pretrained", "head_names", "patch", "preset_fields"]
