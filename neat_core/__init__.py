"""neat_core: NEAT (nonlinear parameter-efficient fine-tuning), model-agnostic.

    dW = s * sigma(W0 A) B,   y = x W^T + b + s * (x sigma(W0 A)) B
"""

__version__ = "0.1.0"

from .config import NeatConfig
from .inject import (
    active_adapter,
    adapter_configs,
    adapters_per_sample,
    base_state_dict,
    delete_adapter,
    disabled,
    inject,
    merge,
    merge_and_unload,
    neat_layers,
    print_trainable_parameters,
    set_adapter,
    trainable_parameters,
    unmerge,
)
from .io import load_adapter, read_adapter, resolve_adapter, save_adapter
from .peft_compat import from_peft, to_peft
from .hub import push_to_hub
from .remote import AdapterNotFoundError, HubUnreachableError
from .layer import NeatLinear
from .lora_export import to_lora, weighted_to_lora
from .network import ACTIVATIONS, NeatNetwork

__all__ = [
    "ACTIVATIONS", "AdapterNotFoundError", "HubUnreachableError", "NeatConfig", "NeatLinear", "NeatNetwork",
    "active_adapter", "adapter_configs", "adapters_per_sample", "base_state_dict", "delete_adapter", "disabled",
    "from_peft", "inject", "load_adapter", "merge", "merge_and_unload", "neat_layers", "print_trainable_parameters",
    "push_to_hub", "read_adapter", "resolve_adapter", "save_adapter", "set_adapter", "to_peft", "trainable_parameters",
    "to_lora", "unmerge", "weighted_to_lora",
]
