"""The sources tables of the paper suites as a whole: every Hub data set, GitHub file and pretrained model is pinned
to a commit (or, where none was found, says it is recorded at first download), and every data source carries the
counts it is checked against (or says why not); plus the figures issue 20 names."""

from __future__ import annotations

import pytest

from benchmarks.core.models import MODEL_PINS, model_pin
from benchmarks.core.sources import AT_FIRST_DOWNLOAD, SHA
from benchmarks.glue.cli import DEFAULT_MODEL as GLUE_MODEL
from benchmarks.glue.data import PIN as GLUE_PIN
from benchmarks.glue.data import TASKS as GLUE_TASKS
from benchmarks.llm.recipes import SUITES as LLM_SUITES
from benchmarks.llm.tasks import TASKS as LLM_TASKS
from benchmarks.vtab.data import DATASETS
from benchmarks.vtab.recipes import SUITES as IMAGE_SUITES

IMAGE = {name: spec for name, spec in DATASETS.items() if spec.source == "hub"}   # all but the digits smoke sets
LLM_SOURCES = {f"{task.name}: {split}": source for task in LLM_TASKS.values()
               for split, source in [("train", task.train), *((t.name, t.source) for t in task.tests)]}
DATA_PINS = {**{f"vtab {name}": spec.pin for name, spec in IMAGE.items()},
             **{f"vtab {name} (test)": spec.test_pin for name, spec in IMAGE.items() if spec.test_pin},
             "glue": GLUE_PIN, **{f"llm {name}": source.pin for name, source in LLM_SOURCES.items()}}
DEFAULT_MODELS = {"vtab": (IMAGE_SUITES["paper"].model, "timm"), "glue": (GLUE_MODEL, "transformers"),
                  **{f"llm {suite}": (LLM_SUITES[suite].model, "transformers") for suite in LLM_SUITES
                     if suite != "smoke"}}


def test_the_tables_hold_every_paper_source():
    assert sorted(IMAGE) == ["cars", "cifar10", "cifar100", "dtd", "eurosat", "fgvc", "pets", "resisc45"]
    assert len(LLM_SOURCES) == 1 + 8 + 1 + 2 + 1 + 1   # commonsense, math and metamathqa: train + tests
    assert {name: model for name, (model, _) in DEFAULT_MODELS.items()} == {
        "vtab": "vit_base_patch16_224.orig_in21k", "glue": "roberta-base", "llm paper": "meta-llama/Llama-2-7b-hf",
        "llm peft-metamathqa": "meta-llama/Llama-3.2-3B"}


def _at_a_commit_or_recorded_at_first_download(pin) -> bool:
    if pin.revision is None:
        return AT_FIRST_DOWNLOAD in pin.cite and pin.kind != "github"
    return bool(SHA.match(pin.revision) and pin.cite)


@pytest.mark.parametrize("pin", [*DATA_PINS.values(), *MODEL_PINS.values()],
                         ids=[*DATA_PINS, *(f"model {name}" for name in MODEL_PINS)])
def test_every_source_is_at_a_commit_or_says_it_is_recorded_at_first_download(pin):
    assert _at_a_commit_or_recorded_at_first_download(pin)


@pytest.mark.parametrize("suite", DEFAULT_MODELS)
def test_the_model_each_suite_uses_by_default_has_its_own_pin(suite):
    name, library = DEFAULT_MODELS[suite]
    assert model_pin(name, library) is MODEL_PINS[name] and MODEL_PINS[name].kind == "model"
    assert _at_a_commit_or_recorded_at_first_download(MODEL_PINS[name])


@pytest.mark.parametrize("name", IMAGE)
def test_every_image_data_set_expects_the_rows_of_each_split_it_loads_and_its_classes(name):
    spec = IMAGE[name]
    assert list(spec.expected.splits) == [*spec.used, *([spec.test] if spec.test_pin else [])]
    assert all(rows > 0 for rows in spec.expected.splits.values())
    assert spec.expected.num_classes == spec.num_classes and spec.expected.cite


@pytest.mark.parametrize("name", GLUE_TASKS)
def test_every_glue_task_expects_train_and_validation_rows_and_its_labels(name):
    task = GLUE_TASKS[name]
    assert list(task.expected.splits) == ["train", task.validation] and all(task.rows)
    assert task.expected.num_classes == (None if name == "stsb" else task.num_labels)   # STS-B: a regression
    assert task.expected.cite.startswith("huggingface/datasets datasets/glue/dataset_infos.json @ ")


@pytest.mark.parametrize("name", LLM_SOURCES)
def test_every_reasoning_source_expects_its_rows_or_says_why_not(name):
    source = LLM_SOURCES[name]
    if source.rows is None:
        assert source.rows_cite.startswith(("not checked", "not counted")) and source.expected.splits == {}
    else:
        assert source.rows > 0 and source.expected.splits == {source.split: source.rows} and source.rows_cite


def test_the_figures_issue_20_names():
    counts = {name: (dict(IMAGE[name].expected.splits), IMAGE[name].expected.num_classes)
              for name in ("pets", "cars", "fgvc")}
    assert counts == {"pets": ({"train": 3680, "test": 3669}, 37), "cars": ({"train": 8144, "test": 8041}, 196),
                      "fgvc": ({"train": 3334, "test": 3333}, 100)}
