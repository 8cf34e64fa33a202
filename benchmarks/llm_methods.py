"""The reasoning suite's methods on a causal LM: NEAT through neat_text, the baselines through PEFT.

Every method adapts the same layers (the task's targets: q, k, v, up, down by default, NEAT's `paper_llm`
preset). PiSSA is PEFT's `init_lora_weights="pissa"`; MiLoRA has no PEFT option, so it is PEFT's LoRA
re-initialised from the minor singular components (`milora_init`), as MiLoRA's svd_init.py does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import neat_core
import neat_text

from . import methods
from .llm_recipes import LLMRecipe, SetupError


def resolve_targets(model: nn.Module, targets: tuple[str, ...] | None) -> list[str]:
    """The layers every method adapts: `targets` when given (each must name linear layers of the model), else
    the model type's `paper_llm` preset; a SetupError otherwise (for a model type without a preset it suggests
    --targets with the model's linear layer names)."""
    linear = {name.rpartition(".")[2] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    if not targets:
        try:
            return neat_text.preset_fields(model, "paper_llm")["targets"]
        except ValueError as err:
            raise SetupError(f"{err} On the command line: --targets with some of {', '.join(sorted(linear))}.") from None
    missing = [t for t in targets if not any(name == t or name.endswith("." + t) for name, m in model.named_modules()
                                             if isinstance(m, nn.Linear))]
    if missing:
        raise SetupError(f"--targets {', '.join(missing)} match(es) no linear layer of {type(model).__name__}; its "
                         f"linear layers are named {', '.join(sorted(linear))}.")
    return list(targets)


def minor_components(weight: torch.Tensor, rank: int, scaling: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MiLoRA's initialisation of one weight W (out x in, any float dtype; computed in fp32): with
    W = U S V^T and the `rank` smallest singular values S_r, A = sqrt(S_r / s) V_r^T (r x in),
    B = U_r sqrt(S_r / s) (out x r), so that s * B A = U_r S_r V_r^T; returns (A, B, W - s * B A)."""
    u, s, vh = torch.linalg.svd(weight.float(), full_matrices=False)
    root = torch.sqrt(s[-rank:] / scaling)
    lora_a = root[:, None] * vh[-rank:]
    lora_b = u[:, -rank:] * root[None, :]
    return lora_a, lora_b, weight.float() - scaling * lora_b @ lora_a


@torch.no_grad()
def milora_init(model: nn.Module, adapter: str = "default") -> int:
    """Re-initialise every PEFT LoRA layer of `adapter` from the minor singular components of its base
    weight and subtract that part from the weight, so the model's output is unchanged; returns the count."""
    from peft.tuners.lora import LoraLayer

    done = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and adapter in module.lora_A:
            base = module.get_base_layer()
            lora_a, lora_b, residual = minor_components(base.weight, module.r[adapter], module.scaling[adapter])
            module.lora_A[adapter].weight.copy_(lora_a)
            module.lora_B[adapter].weight.copy_(lora_b)
            base.weight.copy_(residual.to(base.weight.dtype))
            done += 1
    return done


def _lora(model: nn.Module, recipe: LLMRecipe, targets: list[str], init: bool | str = True, dora: bool = False):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, lora_dropout=recipe.dropout, target_modules=targets,
                        init_lora_weights=init, use_dora=dora, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _peanut(model: nn.Module, recipe: LLMRecipe, targets: list[str]):
    from peft import PeanutConfig, get_peft_model

    # depth 0 (PEFT counts encoder/decoder pairs) = NEAT's two matrices A, B; ReLU as the paper's LLM code
    config = PeanutConfig(r=recipe.rank, depth=0, act_fn="relu", scaling=recipe.scale, target_modules=targets,
                          task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def build(method: str, model: nn.Module, recipe: LLMRecipe, targets: list[str]) -> nn.Module:
    """The model to train for `method` (only the method's parameters need gradients)."""
    if method == "neat":
        return neat_text.patch(model, preset="paper_llm", rank=recipe.rank, scale=recipe.scale, targets=targets)
    if method in ("lora", "dora"):
        return _lora(model, recipe, targets, dora=method == "dora")
    if method == "pissa":
        return _lora(model, recipe, targets, init="pissa")
    if method == "milora":
        built = _lora(model, recipe, targets)
        milora_init(built)
        return built
    if method == "peanut":
        return _peanut(model, recipe, targets)
    raise ValueError(f"Unknown method {method!r}; choose from neat, lora, dora, pissa, milora, peanut.")


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable parameters (a causal LM has no classifier head: all of them are the method's)."""
    return methods.parameter_counts(model, heads=[])


def save_initial(method: str, model: nn.Module, folder: Path) -> Path | None:
    """PiSSA / MiLoRA: the adapter as initialised (before training), which PEFT needs to convert the trained
    one into a plain LoRA of the original base weights."""
    if method not in ("pissa", "milora"):
        return None
    path = folder / "initial"
    model.peft_config["default"].init_lora_weights = True  # as PEFT asks: loading it back must not re-run the SVD
    model.save_pretrained(str(path))
    return path


def save_trained(method: str, model: nn.Module, folder: Path, initial: Path | None,
                 state_dict: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Write the trained adapter under `folder`: NEAT in its own format and, where PEFT can express it, as a
    PEFT PEANuT folder too; the baselines as PEFT folders (PiSSA / MiLoRA converted to a LoRA of the original
    weights when `initial` is given). Returns the paths and, for what could not be written, why."""
    saved: dict[str, Any] = {}
    if neat_core.adapter_configs(model):
        saved["neat_adapter"] = str(neat_core.save_adapter(model, folder / "neat"))
        try:
            saved["peft_adapter"] = str(neat_core.to_peft(model, folder / "peft"))
        except ValueError as err:  # orientation 'in' (the paper's LLM setting) has no PEFT form
            saved["peft_adapter_unavailable"] = str(err)
        return saved
    kwargs = {"state_dict": state_dict} if state_dict is not None else {}
    if initial is not None and state_dict is None:
        kwargs["path_initial_model_for_weight_conversion"] = str(initial)
        saved["converted_to_lora_of_the_original_weights"] = True
    elif initial is not None:
        saved["converted_to_lora_of_the_original_weights"] = False  # FSDP: the residual-form adapter only
    model.save_pretrained(str(folder / "peft"), **kwargs)
    saved["peft_adapter"] = str(folder / "peft")
    return saved

