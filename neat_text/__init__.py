"""neat_text: NEAT for Hugging Face transformers models. `neat_text.patch(hf_model, preset="neat_l")`."""

from .hub import from_pretrained
from .patch import HEAD_NAMES, head_names, patch
from .presets import FAMILIES, PRESETS, TextLayout, layout_of, model_type, preset_fields

__all__ = ["FAMILIES", "HEAD_NAMES", "PRESETS", "TextLayout", "from_pretrained", "head_names", "layout_of", "model_type",
           "patch", "preset_fields"]
