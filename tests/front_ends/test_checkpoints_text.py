"""transformers checkpoints of patched models: config.json names the adapters, Trainer resumes them exactly,
neat_text.from_pretrained reads single-file and sharded folders, bases load in fp32 unless asked."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Trainer, TrainingArguments

import neat_core
import neat_text
from neat_core import NeatConfig

from support.tiny_text import LabelledIds, logits, randomize, tiny_inputs, tiny_model


def test_model_config_follows_the_adapters():
    model = neat_text.patch(tiny_model("bert"), rank=2)
    neat_core.inject(model, NeatConfig(rank=3, targets=["key"]), adapter="k")
    config = model.config
    assert config.neat_active_adapter == "k"
    assert {k: v["rank"] for k, v in config.neat_configs.items()} == {"default": 2, "k": 3}
    neat_core.set_adapter(model, "default")
    assert config.neat_active_adapter == "default"
    neat_core.delete_adapter(model, "k")
    assert list(config.neat_configs) == ["default"]
    assert config.to_diff_dict()["neat_configs"]["default"] == model.neat_configs["default"].to_dict()
    neat_core.merge_and_unload(model)
    assert not hasattr(config, "neat_configs") and not hasattr(config, "neat_active_adapter")
    assert "neat_configs" not in config.to_diff_dict()


def test_sharded_checkpoint_with_two_adapters_and_a_merged_one(tmp_path):
    model = neat_text.patch(tiny_model("llama"), rank=2)
    neat_core.inject(model, NeatConfig(rank=3, depth=4, activation="sin", targets=["k_proj"]), adapter="other")
    randomize(model)
    neat_core.set_adapter(model, "default")
    inputs = tiny_inputs(model)
    expected = logits(model, inputs)
    neat_core.merge(model)
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    loaded = neat_text.from_pretrained(tmp_path)
    assert neat_core.active_adapter(loaded) == "default" and sorted(neat_core.adapter_configs(loaded)) == [
        "default", "other"]
    torch.testing.assert_close(logits(loaded, inputs), expected, atol=1e-5, rtol=1e-5)
    neat_core.set_adapter(loaded, "other")
    neat_core.unmerge(model)
    neat_core.set_adapter(model, "other")
    torch.testing.assert_close(logits(loaded, inputs), logits(model, inputs), atol=0, rtol=0)


def test_trainer_resume_from_checkpoint_restores_the_adapters_exactly(tmp_path):
    def trainer(model):
        args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                                 learning_rate=1e-2, report_to=[], save_strategy="steps", save_steps=2,
                                 logging_strategy="no", use_cpu=True, dataloader_num_workers=0)
        return Trainer(model=model, args=args, train_dataset=LabelledIds())

    trained = neat_text.patch(tiny_model("bert"), rank=4)
    randomize(trained, std=0.1)
    trainer(trained).train()
    checkpoint = tmp_path / "checkpoint-2"
    assert json.loads((checkpoint / "config.json").read_text())["neat_configs"]["default"]["rank"] == 4
    resumed = neat_text.patch(tiny_model("bert"), rank=4)  # fresh adapters
    trainer(resumed).train(resume_from_checkpoint=str(checkpoint))
    theirs, ours = trained.state_dict(), resumed.state_dict()
    assert theirs.keys() == ours.keys() and all(torch.equal(theirs[k], ours[k]) for k in theirs)
    inputs = tiny_inputs(trained)
    torch.testing.assert_close(logits(neat_text.from_pretrained(checkpoint), inputs),
                               logits(trained.eval(), inputs), atol=0, rtol=0)


def test_from_pretrained_loads_the_base_in_fp32_unless_a_dtype_is_given(tmp_path):
    model = neat_text.patch(tiny_model("bert"), rank=2)
    neat_core.save_adapter(model, tmp_path / "adapter")
    tiny_model("bert").to(torch.bfloat16).save_pretrained(tmp_path / "bf16-base")
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16-checkpoint")
    kinds = {"adapter": dict(model_path=tmp_path / "bf16-base"), "checkpoint": {}}
    for kind, kwargs in kinds.items():
        source = tmp_path / ("adapter" if kind == "adapter" else "bf16-checkpoint")
        loaded = neat_text.from_pretrained(source, **kwargs)
        assert loaded.bert.embeddings.word_embeddings.weight.dtype == torch.float32, kind
        half = neat_text.from_pretrained(source, dtype=torch.bfloat16, **kwargs)
        assert half.bert.embeddings.word_embeddings.weight.dtype == torch.bfloat16, kind
        assert {p.dtype for n, p in half.named_parameters() if ".neat." in n} == {torch.float32}, kind


def test_a_checkpoint_folder_without_neat_or_with_missing_tensors_is_refused(tmp_path, caplog):
    tiny_model("bert").save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match=r"is a transformers save_pretrained folder without NEAT adapters \(its "
                                         r"config\.json has no 'neat_configs'\): load it with transformers' "
                                         r"from_pretrained"):
        neat_text.from_pretrained(tmp_path / "plain")
    model = neat_text.patch(tiny_model("bert"), rank=2)
    model.save_pretrained(tmp_path / "cut")
    tensors = load_file(tmp_path / "cut" / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if "layer.2.attention.self.value.neat" not in k},
              tmp_path / "cut" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"does not hold every NEAT tensor its config\.json names \(2 missing, e\.g\. "
                                         r"bert\.encoder\.layer\.2\.attention\.self\.value\.neat\.default\.A\)"):
        neat_text.from_pretrained(tmp_path / "cut")
    with pytest.raises(ValueError, match="model_path= and revision= do not apply"):
        neat_text.from_pretrained(tmp_path / "cut", model_path=tmp_path / "plain")


def test_neat_text_from_pretrained_holds_back_the_unexpected_neat_keys_report(tmp_path, caplog):
    model = neat_text.patch(tiny_model("bert"), rank=2)
    model.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="transformers"):
        neat_text.from_pretrained(tmp_path)
    assert "LOAD REPORT" not in caplog.text
    type(model).from_pretrained(tmp_path)  # the plain class lists the adapter's tensors as UNEXPECTED
    assert "bert.encoder.layer.{0, 1, 2}.attention.self.query.neat.default.A | UNEXPECTED" in caplog.text
