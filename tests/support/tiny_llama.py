"""A tiny random LLaMA (CPU, no downloads)."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM


H, INTER, LAYERS, RANK = 32, 64, 2, 4


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=H, intermediate_size=INTER, num_hidden_layers=LAYERS, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=8, vocab_size=64, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()

