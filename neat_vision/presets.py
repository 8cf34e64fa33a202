"""Where NEAT goes in each timm model family: plain data, looked up by the model's class."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class FamilyLayout:
    """Names (dotted suffixes) of a family's transformer-block linears."""

    qkv: str = "attn.qkv"                     # fused q, k, v projection: 3 equal row blocks
    proj: str = "attn.proj"
    mlp: tuple[str, ...] = ("mlp.fc1", "mlp.fc2", "mlp.fc1_g", "mlp.fc1_x")  # whichever exist
    layers_pattern: str = "blocks"             # `layers=` counts the integer after this name


# timm class name -> layout. Subclasses (VisionTransformerDistilled, ...) find their base class here.
FAMILIES: dict[str, FamilyLayout] = {
    "VisionTransformer": FamilyLayout(),        # vit_*, deit_*, *_dinov2, ...
    "Eva": FamilyLayout(),                      # eva_*, eva02_*
    "SwinTransformer": FamilyLayout(layers_pattern="layers"),
    "SwinTransformerV2": FamilyLayout(layers_pattern="layers"),
}

QKV_BLOCKS = {"q": 0, "k": 1, "v": 2}

PRESETS: dict[str, str] = {
    "qv": "q and v slices of every attn.qkv (the paper's ViT setting)",
    "qv_mlp": "q and v slices of attn.qkv, plus mlp.fc1 and mlp.fc2 (the paper's second setting)",
    "all_linear": "all of attn.qkv, attn.proj, mlp.fc1 and mlp.fc2",
}


def family_of(model: nn.Module) -> tuple[str, FamilyLayout] | None:
    for cls in type(model).__mro__:
        if cls.__name__ in FAMILIES:
            return cls.__name__, FAMILIES[cls.__name__]
    return None


def preset_fields(model: nn.Module, preset: str) -> dict:
    """NeatConfig fields (targets, slices, layers_pattern) that `preset` means for this model."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown neat_vision preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    found = family_of(model)
    if found is None:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:6]
        raise ValueError(
            f"neat_vision has no preset for timm model family {type(model).__name__} (known: "
            f"{', '.join(FAMILIES)}). Pass targets= with the layers to adapt, e.g. "
            f"neat_vision.patch(model, targets={linears[:2] or ['fc']}); linear layers here: {', '.join(linears)}.")
    _, layout = found
    names = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    mlp = [s for s in layout.mlp if any(n.endswith("." + s) for n in names)]
    if preset == "all_linear":
        return {"targets": [layout.qkv, layout.proj, *mlp], "layers_pattern": layout.layers_pattern}
    qv = {"num_blocks": 3, "blocks": [QKV_BLOCKS["q"], QKV_BLOCKS["v"]]}
    extra = mlp if preset == "qv_mlp" else []
    return {"targets": [layout.qkv, *extra], "slices": {layout.qkv: qv}, "layers_pattern": layout.layers_pattern}
