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
    ("benchmarks.vtab", ["--scale", "nan"], "python -m benchmarks.vtab: error: argument --scale: expected a finite "
                                            "non-zero number or 'auto', got 'nan'"),
    ("benchmarks.vtab", ["--data-dir", "/nowhere"], "python -m benchmarks.vtab: error: --data-dir /nowhere does not "
                                                    "exist."),
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
@pytest.mark.slow
def test_a_bad_flag_exits_2_before_any_heavy_import(module, argv, message):
    code, heavy, error = bad_flag(module, argv)
    assert (code, error) == (2, message)
    assert heavy == []


def test_the_plain_names_agree_with_the_registries():
    import neat_core
    import neat_vision
    from benchmarks.core import catalog, methods
    from benchmarks.glue import data as glue_data
    from benchmarks.glue import recipes as glue_recipes
    from benchmarks.vtab import data as vtab_data
    from benchmarks.vtab import recipes as vtab_recipes

    assert list(methods.BUILDERS) == list(catalog.METHODS)   # one registry: every name it lists, it builds
    assert catalog.methods_for("image") == ("neat", "lora", "dora", "fourierft", "peanut", "vera", "head", "full")
    assert catalog.methods_for("text") == ("neat-s", "neat-l", "lora", "dora", "fourierft", "peanut", "bitfit",
                                           "head", "full")
    assert catalog.methods_for("causal") == ("neat", "lora", "dora", "pissa", "milora", "peanut")
    assert catalog.PRESETS == tuple(neat_vision.PRESETS)
    assert catalog.ACTIVATIONS == tuple(neat_core.ACTIVATIONS)
    assert set(vtab_recipes.IMAGE_DATASETS) == set(vtab_data.DATASETS)
    assert glue_recipes.GLUE_TASKS == tuple(glue_data.TASKS)


@pytest.mark.slow
@pytest.mark.parametrize("module", ["benchmarks.vtab", "benchmarks.glue", "benchmarks.llm", "benchmarks.ablate",
                                    "benchmarks.speed"])
def test_every_suite_refuses_a_device_this_machine_lacks_at_once(module):
    """No GPU here: `--device cuda` is one argparse error before anything heavy loads (a GPU machine passes the
    light check and torch confirms it)."""
    argv = ["--device", "cuda:9"] + (["--study", "depth"] if module.endswith("ablate") else [])
    code, heavy, error = bad_flag(module, argv)
    assert code == 2 and heavy == []
    assert error.startswith(f"python -m {module}: error: argument --device: cuda:9 is not available on this "
                            "machine; available: cpu")


@pytest.mark.parametrize("module", ["benchmarks.vtab", "benchmarks.glue", "benchmarks.llm", "benchmarks.ablate"])
def test_every_suite_has_the_same_shared_flags(module):
    """One flag builder: the flags that mean the same thing are there in every suite."""
    import importlib

    parser = importlib.import_module(module + ".cli").parser()
    flags = {o for action in parser._actions for o in action.option_strings}
    assert {"--dry-run", "--seeds", "--lrs", "--out", "--device", "--no-progress", "--data-dir", "--model",
            "--model-path", "--threads"} <= flags


def test_the_suites_use_the_one_hub_probe():
    import neat_core.remote
    from benchmarks.core import models
    from benchmarks.glue import plan as glue_plan
    from benchmarks.llm import plan as llm_plan
    from benchmarks.vtab import data as vtab_data

    assert {m.hub_reachable for m in (models, glue_plan, llm_plan, vtab_data)} == {neat_core.remote.hub_reachable}


def test_no_progress_turns_the_libraries_bars_off_too():
    import datasets
    import transformers

    from benchmarks.core.runner import progress_bars

    try:
        datasets.enable_progress_bars()
        transformers.utils.logging.enable_progress_bar()
        progress_bars(True)   # bars wanted: left as they are
        assert datasets.is_progress_bar_enabled() and transformers.utils.logging.is_progress_bar_enabled()
        progress_bars(False)   # what --no-progress does before a suite runs
        assert not datasets.is_progress_bar_enabled() and not transformers.utils.logging.is_progress_bar_enabled()
    finally:
        datasets.enable_progress_bars()
        transformers.utils.logging.enable_progress_bar()
