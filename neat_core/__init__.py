"""neat_core: NEAT (nonlinear parameter-efficient fine-tuning), model-agnostic.

    dW = s * sigma(W0 A) B,   y = x W^T + b + s * (x sigma(W0 A)) B
"""

__version__ = "0.1.0"

from .config import NeatConfig
from .inject import (
    active_adapter,
    adapter_configs,
    delete_adapter,
    disabled,
    inject,
    merge,
    merge_and_unload,
    neat_layers,
    set_adapter,
    trainable_parameters,
    unmerge,
)
from .io import from_peft, load_adapter, read_adapter, save_adapter, to_peft
from .hub import AdapterNotFoundError, push_to_hub, resolve_adapter
from .layer import NeatLinear
from .lora_export import to_lora
from .network import ACTIVATIONS, NeatNetwork

__all__ = [
    "ACTIVATIONS", "AdapterNotFoundError", "NeatConfig", "NeatLinear", "NeatNetwork", "active_adapter",
    "adapter_configs", "delete_adapter", "disabled", "inject", "load_adapter", "merge", "merge_and_unload",
    "neat_layers", "push_to_hub", "read_adapter", "resolve_adapter", "save_adapter", "set_adapter", "to_peft",
    "from_peft", "trainable_parameters", "unmerge", "to_lora",
]
