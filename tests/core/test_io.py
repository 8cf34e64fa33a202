import json

import pytest
import torch
from safetensors.torch import load_file

import neat_core
from neat_core import NeatConfig, NeatLinear

from conftest import make_tiny, randomize_adapters, tiny_vit

QV = {"qkv": {"num_blocks": 3, "blocks": [0, 2]}}


def trained(seed=0):
    model = make_tiny(seed)
    neat_core.inject(model, NeatConfig(rank=3, depth=4, activation="sin", targets=["qkv"], slices=QV,
                                       modules_to_save=["head"]))
    randomize_adapters(model)
    with torch.no_grad():
        model.head.weight.add_(1.0)
    return model


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_save_writes_config_and_only_adapter_and_head_tensors(tmp_path):
    model = trained()
    neat_core.save_adapter(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    meta = json.loads((tmp_path / "adapter_config.json").read_text())
    assert meta["config"] == model.neat_configs["default"].to_dict()
    assert meta["library_version"] == neat_core.__version__
    assert meta["model_class"] == "TinyNet"
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    assert set(tensors) == {f"blocks.{i}.qkv.neat.{p}" for i in range(2)
                            for p in ("A", "B", "encoders.0", "decoders.0")} | {"head.weight", "head.bias"}
    assert tensors["blocks.0.qkv.neat.A"].shape == (2, 16, 3)


def test_round_trip_into_a_fresh_model_with_another_seed(tmp_path, x):
    model = trained()
    expected = model(x)
    neat_core.save_adapter(model, tmp_path)
    fresh = make_tiny(seed=0)  # same base weights ...
    torch.manual_seed(99)  # ... but the adapter it builds starts from another seed
    neat_core.load_adapter(fresh, tmp_path)
    assert torch.equal(fresh(x), expected)
    assert neat_core.trainable_parameters(fresh) == neat_core.trainable_parameters(model)


@pytest.mark.parametrize("existing", [
    dict(rank=3, depth=4, activation="sin", targets=["qkv"], slices=QV, modules_to_save=["head"]),  # same config
    dict(rank=5, targets=["proj"]),   # another config: replaced whole
], ids=["same-config", "other-config"])
def test_a_name_in_use_is_refused_untouched_and_replace_true_puts_the_file_in_its_place(tmp_path, x, existing):
    model = trained()
    neat_core.save_adapter(model, tmp_path)
    other = make_tiny(seed=0)
    neat_core.inject(other, NeatConfig(**existing))
    randomize_adapters(other, seed=5)
    before, out = state(other), other(x)
    with pytest.raises(ValueError) as err:
        neat_core.load_adapter(other, tmp_path)
    assert str(err.value) == (f"Adapter 'default' already exists on this model; load {tmp_path} under another name "
                              "(adapter=...), or pass replace=True to put it in place of the existing 'default'.")
    assert state(other).keys() == before.keys() and all(torch.equal(v, before[k]) for k, v in state(other).items())
    assert torch.equal(other(x), out) and neat_core.adapter_configs(other)["default"] == NeatConfig(**existing)
    neat_core.load_adapter(other, tmp_path, replace=True)
    assert torch.equal(other(x), model(x))
    assert neat_core.adapter_configs(other) == neat_core.adapter_configs(model)
    assert state(other).keys() == state(model).keys()


def test_base_model_name_is_recorded_for_timm(tmp_path):
    vit = tiny_vit()
    import neat_vision

    neat_vision.patch(vit, rank=2)
    neat_core.save_adapter(vit, tmp_path)
    meta = json.loads((tmp_path / "adapter_config.json").read_text())
    assert meta["base_model"].startswith("vit_tiny_patch16_224")


def test_adapter_from_another_architecture_is_refused_and_model_unchanged(tmp_path):
    model = trained()
    neat_core.save_adapter(model, tmp_path)
    wide = make_tiny(dim=24)
    before = state(wide)
    with pytest.raises(ValueError) as err:
        neat_core.load_adapter(wide, tmp_path)
    assert str(err.value).startswith(f"The adapter at {tmp_path} (saved for TinyNet) does not fit this TinyNet: "
                                     "blocks.0.qkv.neat.A: file has (2, 16, 3), model needs (2, 24, 3)")
    assert not any(isinstance(m, NeatLinear) for m in wide.modules())
    assert all(torch.equal(v, before[k]) for k, v in wide.state_dict().items())


def test_adapter_whose_tensor_names_do_not_fit_is_refused(tmp_path):
    model = trained()
    neat_core.save_adapter(model, tmp_path)
    vit = tiny_vit()
    before = state(vit)
    with pytest.raises(ValueError, match=r"\(saved for TinyNet\) does not fit this VisionTransformer: missing "
                                         r"blocks\.0\.attn\.qkv\.neat\.A; .* \(and 13 more\)\.$"):
        neat_core.load_adapter(vit, tmp_path)
    assert state(vit).keys() == before.keys()


def test_truncated_safetensors_is_refused(tmp_path):
    model = trained()
    neat_core.save_adapter(model, tmp_path)
    weights = tmp_path / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:300])
    fresh = make_tiny()
    with pytest.raises(ValueError, match=rf"{weights} is not a readable safetensors file \(.*\); it may be truncated "
                                         r"or corrupt: save or download the adapter again\."):
        neat_core.load_adapter(fresh, tmp_path)
    assert not hasattr(fresh, "neat_configs")


def test_missing_config_file_is_refused(tmp_path):
    model = trained()
    neat_core.save_adapter(model, tmp_path)
    (tmp_path / "adapter_config.json").unlink()
    with pytest.raises(FileNotFoundError) as err:
        neat_core.load_adapter(make_tiny(), tmp_path)
    assert str(err.value) == (f"No adapter_config.json in {tmp_path}: expected a folder written by "
                              "neat_core.save_adapter (adapter_config.json + adapter_model.safetensors).")


def test_a_peft_lora_folder_is_named_as_such(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    fresh = make_tiny()
    with pytest.raises(ValueError) as err:
        neat_core.load_adapter(fresh, tmp_path)
    assert str(err.value) == (f"{tmp_path} holds a PEFT LORA adapter, not a NEAT adapter folder: load it with "
                              "peft.PeftModel.from_pretrained(model, folder), or transformers' "
                              "model.load_adapter(folder).")
    assert not hasattr(fresh, "neat_configs")


def test_saving_a_model_without_adapters_says_so(tmp_path):
    with pytest.raises(ValueError) as err:
        neat_core.save_adapter(make_tiny(), tmp_path / "out")
    assert str(err.value) == ("This TinyNet has no NEAT adapter to save: add one first (neat_vision.patch, "
                              "neat_text.patch or neat_core.inject).")
    assert not (tmp_path / "out").exists()


def test_save_refuses_a_merged_model(tmp_path):
    model = trained()
    neat_core.merge(model)
    with pytest.raises(ValueError, match=r"call neat_core.unmerge\(model\) before saving"):
        neat_core.save_adapter(model, tmp_path)
    assert not (tmp_path / "adapter_model.safetensors").exists()


def test_adapter_whose_targets_match_nothing_is_refused(tmp_path):
    model = make_tiny()
    neat_core.inject(model, NeatConfig(rank=2, targets=["blocks.0.proj"]))
    neat_core.save_adapter(model, tmp_path)
    vit = tiny_vit()
    with pytest.raises(ValueError, match=r"\(saved for TinyNet\) does not fit this VisionTransformer: "
                                         r"NEAT target 'blocks\.0\.proj' matches no linear layer"):
        neat_core.load_adapter(vit, tmp_path)
    assert not any(isinstance(m, NeatLinear) for m in vit.modules())


def test_saved_files_are_world_readable_and_no_temporary_is_left(tmp_path):
    model = trained()
    neat_core.save_adapter(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in tmp_path.iterdir())
