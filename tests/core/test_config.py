import pytest

from neat_core import NeatConfig


def test_defaults_match_the_paper():
    cfg = NeatConfig()
    assert (cfg.rank, cfg.depth, cfg.activation, cfg.scale, cfg.orientation) == (8, 2, "relu", 1.0, "out")


def test_json_round_trip_keeps_every_field():
    cfg = NeatConfig(rank=7, depth=6, activation="sin", scale=0.1, orientation="in", targets=["attn.qkv", r".*fc\d"],
                     layers=[0, 3], layers_pattern="blocks", exclude=["head"],
                     slices={"attn.qkv": {"num_blocks": 3, "blocks": [0, 2]}}, modules_to_save=["head"],
                     compute="factored")
    again = NeatConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()


def test_single_strings_are_accepted_as_lists():
    cfg = NeatConfig(targets="qkv", exclude="proj", layers=2)
    assert (cfg.targets, cfg.exclude, cfg.layers) == (["qkv"], ["proj"], [2])


@pytest.mark.parametrize("fields, message", [
    ({"rank": 0}, "NeatConfig.rank must be a positive integer, got 0."),
    ({"rank": -3}, "NeatConfig.rank must be a positive integer, got -3."),
    ({"depth": 3}, "NeatConfig.depth must be an even integer >= 2 (2 = A,B; 4 = A,e1,d1,B; ...), got 3."),
    ({"depth": 0}, "NeatConfig.depth must be an even integer >= 2 (2 = A,B; 4 = A,e1,d1,B; ...), got 0."),
    ({"activation": "swish2"},
     "NeatConfig.activation 'swish2' is unknown; choose one of relu, sin, gelu, silu, tanh, identity."),
    ({"orientation": "sideways"}, "NeatConfig.orientation must be 'out' or 'in', got 'sideways'."),
    ({"compute": "fast"}, "NeatConfig.compute must be one of auto, factored, materialized, got 'fast'."),
    *[({"scale": bad}, f"NeatConfig.scale must be finite and non-zero (s multiplies the update; 0 would never train "
                       f"the adapter), or 'auto'; got {bad!r}.") for bad in (float("nan"), float("inf"), -float("inf"), 0, 0.0)],
    ({"scale": "1.0"}, "NeatConfig.scale must be a number or 'auto', got '1.0'."),
    ({"slices": {"qkv": {"num_blocks": 3, "blocks": [0, 3]}}},
     "NeatConfig.slices['qkv'] needs num_blocks >= 2 and distinct blocks in [0, 3), got "
     "{'num_blocks': 3, 'blocks': [0, 3]}."),
])
def test_bad_values_are_refused_with_a_clear_message(fields, message):
    with pytest.raises(ValueError) as err:
        NeatConfig(**fields)
    assert str(err.value) == message


def test_unknown_field_in_json_is_refused():
    with pytest.raises(ValueError, match=r"Unknown NeatConfig field\(s\) \['alpha'\]"):
        NeatConfig.from_dict({"rank": 4, "alpha": 16})
