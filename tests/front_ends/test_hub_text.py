"""neat_text.from_pretrained on a tiny BERT saved locally (no downloads): local folder and offline Hub cache."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig

import neat_core
import neat_text

from conftest import randomize_adapters
from support.hub_cache import REPO, fill_cache

TOKENS = torch.randint(1, 100, (2, 7), generator=torch.Generator().manual_seed(0))


@pytest.fixture
def trained_bert(tmp_path):
    """A tiny BERT classifier saved with save_pretrained (its base_model is that folder), with a trained adapter."""
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=100, max_position_embeddings=32, num_labels=4)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "base")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base").eval()
    neat_text.patch(model, rank=4)
    randomize_adapters(model)
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    neat_core.save_adapter(model, tmp_path / "adapter")
    return model


def logits(model):
    with torch.no_grad():
        return model(input_ids=TOKENS).logits


def test_text_from_pretrained_local_folder(tmp_path, trained_bert):
    loaded = neat_text.from_pretrained(tmp_path / "adapter")
    assert type(loaded).__name__ == "BertForSequenceClassification" and not loaded.training
    assert loaded.config.num_labels == 4
    assert torch.equal(logits(loaded), logits(trained_bert))
    assert neat_core.trainable_parameters(loaded) == neat_core.trainable_parameters(trained_bert)


def test_text_from_pretrained_hub_id_offline(tmp_path, trained_bert, offline_cache):
    fill_cache(offline_cache, REPO, tmp_path / "adapter")
    assert torch.equal(logits(neat_text.from_pretrained(REPO, model_path=tmp_path / "base")), logits(trained_bert))


def test_text_from_pretrained_without_the_base_says_so(tmp_path, trained_bert):
    missing = tmp_path / "gone"
    with pytest.raises(FileNotFoundError, match=rf"^Cannot load base model '{missing}' \(.*\)\. Pass model_path="):
        neat_text.from_pretrained(tmp_path / "adapter", model_path=missing)


def test_card_of_a_transformers_adapter(monkeypatch, trained_bert):
    from support.hub_cache import RecordingApi, front_matter

    api = RecordingApi(monkeypatch)
    glue = {"suite": "glue", "method": "neat-s", "dataset": "cola", "metric": "matthews", "score": 0.61,
            "config": {"data": {"title": "CoLA"}}}
    neat_core.push_to_hub(trained_bert, REPO, results=[glue])
    readme = api.calls[1][1]["README.md"].decode()
    meta = front_matter(readme)
    assert meta == {"library_name": "neat-peft", "tags": ["neat", "peft", "transformers"], "metrics": ["matthews"],
                    "model-index": [{"name": REPO, "results": [{
                        "task": {"type": "text-classification"}, "dataset": {"name": "CoLA", "type": "cola"},
                        "metrics": [{"type": "matthews", "value": 0.61}]}]}]}  # a local base: no base_model id
    assert "| CoLA | matthews | 0.6100 |" in readme
    assert f'model = neat_text.from_pretrained("{REPO}")' in readme
