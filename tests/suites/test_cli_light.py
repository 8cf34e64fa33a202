"""Every command line rejects a bad flag before torch, timm, transformers or gradio load (a fresh interpreter per
CLI: the test process itself has torch imported), and the plain-data names the CLIs check agree with the
registries that build the methods and load the data."""

from __future__ import annotations


import pytest

from support.cli import bad_flag





@pytest.mark.parametrize("module, argv, message", [
    ("benchmarks.vtab", ["--method", "neat,bogus"],
     "python -m benchmarks.vtab: error: Unknown method(s) bogus; choose from neat, lora, dora, fourierft, peanut, "
     "vera, head, full."),
    ("benchmarks.vtab", ["--lrs", "1e-3,fast"],
     "python -m benchmarks.vtab: error: argument --lrs: expected a comma list of numbers such as 1e-3,3e-3,1e-2, "
     "got '1e-3,fast'"),
    ("benchmarks.glue", ["--tasks", "sst2,wnli"],
     "python -m benchmarks.glue: error: Unknown GLUE task 'wnli'; choose from cola, sst2, mrpc, stsb, qqp, mnli, "
     "qnli, rte."),
    ("benchmarks.speed", ["--methods", "neat,bogus"],
     "python -m benchmarks.speed: error: unknown method(s) bogus; choose from floor, head, full, lora, peanut, dora, "
     "fourierft, neat"),
    ("benchmarks.report", ["results", "--bogus"], "python -m benchmarks.report: error: unrecognized arguments: --bogus"),
    ("demo.app", ["--port", "http"], "python -m demo.app: error: argument --port: invalid int value: 'http'"),
    # numbers out of range and names the method would only refuse after torch, data and model had loaded
    ("benchmarks.vtab", ["--rank", "0"], "python -m benchmarks.vtab: error: argument --rank: expected a positive "
                                         "integer, got '0'"),
    ("benchmarks.vtab", ["--depth", "3"], "python -m benchmarks.vtab: error: argument --depth: expected an even "
                                          "integer >= 2 (2 = A, B; 4 = A, e1, d1, B; ...), got '3'"),
    ("benchmarks.vtab", ["--activation", "swish"], "python -m benchmarks.vtab: error: Unknown activation 'swish'; "
                                                   "choose from relu, sin, gelu, silu, tanh, identity."),
    ("benchmarks.vtab", ["--lora-dropout", "1.5"], "python -m benchmarks.vtab: error: argument --lora-dropout: "
                                                   "expected a number from 0 to below 1, got '1.5'"),
    ("benchmarks.vtab", ["--scale", "auto", "--method", "neat,peanut"],
     "python -m benchmarks.vtab: error: --scale auto is NEAT's: PEFT's peanut takes one number. Drop peanut from "
     "--method or give --scale a number."),
    ("benchmarks.vtab", ["--seeds", "0,one"], "python -m benchmarks.vtab: error: --seeds must be a comma list of "
                                              "integers, got '0,one'."),
    ("benchmarks.glue", ["--epochs", "0"], "python -m benchmarks.glue: error: argument --epochs: expected a positive "
                                           "integer, got '0'"),
    ("benchmarks.glue", ["--lr", "0"], "python -m benchmarks.glue: error: argument --lr: expected a positive "
                                           "number, got '0'"),
    ("benchmarks.glue", ["--max-length", "0"], "python -m benchmarks.glue: error: argument --max-length: expected a "
                                               "positive integer, got '0'"),
    ("benchmarks.ablate", ["--study", "depth", "--rank", "-2"], "python -m benchmarks.ablate: error: argument "
                                                                "--rank: expected a positive integer, got '-2'"),
    ("benchmarks.llm", ["--seeds", "0,x"], "python -m benchmarks.llm: error: --seeds must be a comma list of "
                                           "integers, got '0,x'."),
    ("benchmarks.speed", ["--rank", "0"], "python -m benchmarks.speed: error: argument --rank: expected a positive "
                                          "integer, got '0'"),
    ("benchmarks.speed", ["--warmup", "-1"], "python -m benchmarks.speed: error: argument --warmup: expected a "
                                             "non-negative integer, got '-1'"),
])
def test_a_bad_flag_exits_2_before_any_heavy_import(module, argv, message):
    code, heavy, error = bad_flag(module, argv)
    assert (code, error) == (2, message)
    assert heavy == []


def test_the_plain_names_agree_with_the_registries():
    import neat_core
    import neat_text.glue
    import neat_vision
    import neat_vision.data
    from benchmarks import catalog, methods, recipes, text_methods

    assert list(methods.METHODS) == list(catalog.DESCRIPTIONS)
    assert list(text_methods.TEXT_METHODS) == list(catalog.TEXT_DESCRIPTIONS)
    assert catalog.PRESETS == tuple(neat_vision.PRESETS)
    assert catalog.ACTIVATIONS == tuple(neat_core.ACTIVATIONS)
    assert set(recipes.IMAGE_DATASETS) == set(neat_vision.data.DATASETS)
    assert recipes.GLUE_TASKS == tuple(neat_text.glue.TASKS)
    assert set(catalog.SIZE_KNOBS) <= set(catalog.DESCRIPTIONS) | set(catalog.TEXT_DESCRIPTIONS)
