"""How PEFT (checked against peft 0.21.2) reads a model's module names: what both PEFT exports (`to_peft`, PEANuT;
`to_lora`, LoRA) and the PEANuT import need to agree with it, without importing peft.

- PEFT sees the base model: a NEAT layer is one module, its insides do not exist.
- list-form `target_modules` select a module whose name is a target or ends with "." + a target; never one on or
  inside a module that `modules_to_save` names (peft.tuners.tuners_utils.check_target_module_exists);
- `modules_to_save` wraps every module whose name ends with an entry (peft.utils.other._set_trainable); its
  tensors are saved under their plain names, as adapter tensors are, after the prefix `base_model.model.`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn

from .config import NeatConfig
from .inject import plain_modules, saved_parameters, transformers_config
from .io import base_model_name

PEFT_PREFIX = "base_model.model."

# PEFT's task_type by the transformers Auto* mapping a model class is in (peft.utils.peft_types.TaskType), and the
# heads PEFT's task model adds to modules_to_save itself (peft/peft_model.py PeftModelForSequenceClassification /
# ...TokenClassification: classifier_module_names; ...QuestionAnswering: qa_module_names).
TASK_MAPPINGS = (
    ("SEQ_CLS", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"),
    ("TOKEN_CLS", "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES"),
    ("QUESTION_ANS", "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES"),
    ("CAUSAL_LM", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
    ("SEQ_2_SEQ_LM", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
    ("FEATURE_EXTRACTION", "MODEL_MAPPING_NAMES"),
)
TASK_HEADS = {"SEQ_CLS": ("classifier", "score"), "TOKEN_CLS": ("classifier", "score"),
              "QUESTION_ANS": ("qa_outputs",)}


def peft_module_names(model: nn.Module) -> list[str]:
    """The model's module names as PEFT sees them (NEAT layers count, their insides do not; no root "")."""
    return [name for name in plain_modules(model) if name]


def inside_saved(name: str, modules_to_save: list[str]) -> bool:
    """Whether module `name` is on or inside a module that `modules_to_save` names (PEFT never adapts it there)."""
    return any(re.match(rf"(^|.*\.){m}($|\..*)", name) for m in modules_to_save)


def peft_adapts(names: list[str], targets: list[str], modules_to_save: list[str]) -> set[str]:
    """The names that PEFT's list-form `target_modules` select (check_target_module_exists)."""
    chosen = set(targets)
    return {n for n in names if (n in chosen or any(n.endswith("." + t) for t in targets))
            and not inside_saved(n, modules_to_save)}


def peft_targets(names: list[str], candidates: list[list[str]], adapted: list[str],
                 modules_to_save: list[str]) -> list[str] | None:
    """The first candidate `target_modules` with which PEFT adapts exactly `adapted`, else None."""
    for candidate in candidates:
        if candidate and peft_adapts(names, candidate, modules_to_save) == set(adapted):
            return candidate
    return None


def peft_saved_modules(model: nn.Module, patterns: list[str],
                       keep: Callable[[str, nn.Module], bool] = lambda name, module: True) -> list[str]:
    """The modules PEFT wraps for `modules_to_save` (a name ending with an entry, outermost only) that have parameters
    and pass `keep`."""
    chosen: list[str] = []
    for name, module in plain_modules(model).items():
        if (name and any(name.endswith(p) for p in patterns) and not any(name.startswith(c + ".") for c in chosen)
                and any(True for _ in module.parameters()) and keep(name, module)):
            chosen.append(name)
    return chosen


def parameter_entries(model: nn.Module, config: NeatConfig) -> list[str]:
    """The `modules_to_save` entries that name a parameter, not a module (PEFT's modules_to_save names modules)."""
    params = dict(model.named_parameters())
    return [n for n in config.modules_to_save if n in params]


def peft_task_type(model: nn.Module) -> str | None:
    """PEFT's `task_type` for a transformers model (from the Auto* mapping its class is in: LlamaForCausalLM ->
    CAUSAL_LM, BertForSequenceClassification -> SEQ_CLS...), None for other models (timm: PEFT's custom models)."""
    if transformers_config(model) is None:
        return None
    try:
        from transformers.models.auto import modeling_auto
    except ImportError:
        return None
    name = type(model).__name__
    for task, mapping in TASK_MAPPINGS:
        for classes in getattr(modeling_auto, mapping, {}).values():
            if name == classes or (isinstance(classes, (tuple, list)) and name in classes):
                return task
    return None


def peft_modules_to_save(model: nn.Module, entries: list[str]) -> list[str]:
    """An adapter's modules_to_save `entries` as PEFT will hold them on this model: the entries, then the heads PEFT's
    task model adds itself (a sequence classifier's `classifier` / `score`), which the export must then carry too."""
    names = peft_module_names(model)
    added = [h for h in TASK_HEADS.get(peft_task_type(model), ()) if any(n.endswith(h) for n in names)]
    return list(dict.fromkeys([*entries, *added]))


def saved_tensors(model: nn.Module, modules_to_save: list[str], adapter: str) -> dict:
    """The tensors of the modules PEFT wraps for `modules_to_save`, as `adapter` runs them (its own copy, or the
    model's module when the adapter keeps none), under PEFT's names."""
    return {PEFT_PREFIX + k: p for head in peft_saved_modules(model, modules_to_save)
            for k, p in saved_parameters(model, head, adapter).items()}


def peft_header(peft_type: str, model: nn.Module, modules_to_save: list[str], base_model_name_or_path: str | None
                ) -> dict:
    """The entries every PEFT adapter_config.json we write shares: the type, PEFT's task_type, the base (the
    model's own name or path unless given), and modules_to_save."""
    return {"peft_type": peft_type, "task_type": peft_task_type(model),
            "base_model_name_or_path": base_model_name_or_path or base_model_name(model), "revision": None,
            "inference_mode": True, "modules_to_save": modules_to_save or None}
