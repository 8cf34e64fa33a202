"""The three suites' real loaders on the recorded schemas of every data set they use (tests/suites/data/schemas: each
card's features and split names, a few rows), without network: the Hub's one entry point, `datasets.load_dataset`,
answers from the recorded rows (support.recorded_schemas.RecordedHub) and logs what was asked, so a column renamed
upstream or in our code fails here and not on a GPU. Everything after that call runs as in a run: column renames,
the label column and its class count, the card's counts (verify), the splits we make, the reasoning schema and its
answers; and the --data-dir copies of the same rows."""

from __future__ import annotations

import pytest

import benchmarks.core.sources as sources_module
import benchmarks.vtab.data as vtab_data
from benchmarks.core.sources import DataVerificationError, Sources
from benchmarks.glue.data import PIN as GLUE_PIN
from benchmarks.glue.data import TASKS as GLUE_TASKS
from benchmarks.glue.data import GlueDataUnavailableError, load_task
from benchmarks.llm import data as llm_data
from benchmarks.llm.data import ReasoningDataError
from benchmarks.llm.tasks import COMMONSENSE, MATH, METAMATHQA, SCHEMA, TASKS
from benchmarks.vtab.data import DATASETS, DataUnavailableError, load_splits

from support.recorded_schemas import RecordedHub, dataset, rows, write_rows

IMAGE = [name for name, spec in DATASETS.items() if spec.source == "hub"]
HEAD = "f" * 40   # stands for a branch's commit at first download (a source without a pin)
SUBSET = (" If this copy is a subset on purpose, pass --accept-subset; otherwise download the data set again "
          "(--data-dir: a complete copy).")


@pytest.fixture
def hub(monkeypatch, tmp_path, datasets_cache):
    """datasets.load_dataset answered from the recorded schemas; online as far as the loaders can tell (nothing
    reaches the network: the Hub's call is the stand-in, a branch's head is HEAD)."""
    import datasets

    recorded = RecordedHub(datasets.load_dataset, tmp_path / "raw")
    monkeypatch.setattr(datasets, "load_dataset", recorded)
    for flag in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(flag, raising=False)
    monkeypatch.setattr(vtab_data, "hub_reachable", lambda: True)
    monkeypatch.setattr(sources_module, "current_commit", lambda pin: HEAD)
    return recorded


# --- image suites ------------------------------------------------------------------------------------------------
def _image_requests(spec):
    """(repository, config, revision, splits) the image loader should ask for: the splits used, at the pins."""
    asked = [(spec.pin.repo, None, spec.pin.revision, spec.used)]
    return asked + ([(spec.test_pin.repo, None, spec.test_pin.revision, [spec.test])] if spec.test_pin else [])


def _recorded_splits(spec):
    """{split: recorded Dataset} of the splits the suite uses (the test split from test_pin where there is one)."""
    return {split: dataset(pin.repo, None, split) for pin, split in
            [*((spec.pin, s) for s in spec.used), *([(spec.test_pin, spec.test)] if spec.test_pin else [])]}


@pytest.mark.parametrize("name", IMAGE)
def test_the_image_loader_reads_each_recorded_data_set(hub, name):
    spec = DATASETS[name]
    loaded = load_splits(name, accept_subset=True)
    assert hub.calls == _image_requests(spec)
    assert loaded.num_classes == spec.num_classes == spec.expected.num_classes   # the ClassLabel's, as on the Hub
    for part in (loaded.train, loaded.val, loaded.test):
        assert part.column_names == ["image", "label"] and part[0]["image"].size == (8, 8)
    recorded = {split: list(data[spec.label_key]) for split, data in _recorded_splits(spec).items()}
    assert sorted(loaded.test["label"]) == sorted(recorded[spec.test])
    assert sorted([*loaded.train["label"], *loaded.val["label"]]) == sorted(recorded[spec.train] +
                                                                         recorded.get(spec.val, []))
    if spec.val is None:   # held out of train: 10% (at least one row)
        assert (len(loaded.train), len(loaded.val)) == (len(recorded[spec.train]) - 1, 1)


def test_the_recorded_rows_are_not_the_cards_counts_so_a_run_without_accept_subset_stops(hub):
    with pytest.raises(DataVerificationError) as err:
        load_splits("pets")
    assert str(err.value) == (
        "Dataset 'pets' (timm/oxford-iiit-pet @ 10b688881011725fa2fa3d856a47536c9a7e6968), split 'train': expected "
        "3,680 rows (TFDS oxford_iiit_pet catalog (train 3,680 / test 3,669); mmpretrain OxfordIIITPet (trainval "
        "3,680 / test 3,669, 37 categories)), found 4." + SUBSET)
    with pytest.raises(DataVerificationError) as err:
        load_splits("fgvc")
    assert str(err.value).startswith(
        "Dataset 'fgvc' (Multimodal-Fatima/FGVC_Aircraft_train @ 5b3589f31d91b16f10515e3157e2579cd936b438 + "
        "Multimodal-Fatima/FGVC_Aircraft_test @ 4ea216fbb2553126232cb077b897ddd57fe23e9c), split 'train': expected "
        "3,334 rows (FourierFT paper (arXiv 2405.03003) Table 8: ")
    assert str(err.value).endswith("found 4." + SUBSET)


def test_a_renamed_image_column_stops_the_loader_with_its_message(hub):
    hub.renames["uoft-cs/cifar10"] = {"img": "picture"}
    with pytest.raises(DataUnavailableError) as err:
        load_splits("cifar10", accept_subset=True)
    assert str(err.value) == ("Dataset 'cifar10' has columns ['picture', 'label']; expected 'img' and 'label' (or "
                              "image / label).")
    hub.renames["uoft-cs/cifar100"] = {"fine_label": "fine"}
    with pytest.raises(DataUnavailableError) as err:
        load_splits("cifar100", accept_subset=True)
    assert str(err.value) == ("Dataset 'cifar100' has columns ['image', 'fine', 'coarse_label']; expected 'img' and "
                              "'fine_label' (or image / label).")
    hub.renames["uoft-cs/cifar10"] = {"img": "image"}   # the name local copies use
    assert load_splits("cifar10", accept_subset=True).test.column_names == ["image", "label"]


def test_a_revision_flag_is_the_commit_asked_for(hub):
    other = "e" * 40
    load_splits("dtd", accept_subset=True, sources=Sources(None, {"tanganke/dtd": other}))
    assert hub.calls == [("tanganke/dtd", None, other, ["train", "test"])]


@pytest.mark.parametrize("name", IMAGE)
def test_a_save_to_disk_copy_of_the_recorded_rows_loads_as_the_hub_copy_does(hub, tmp_path, name):
    import datasets

    datasets.DatasetDict(_recorded_splits(DATASETS[name])).save_to_disk(tmp_path / "data" / name)
    local = load_splits(name, tmp_path / "data", accept_subset=True)
    assert hub.calls == []
    remote = load_splits(name, accept_subset=True)
    for mine, theirs in zip((local.train, local.val, local.test), (remote.train, remote.val, remote.test)):
        assert list(mine["label"]) == list(theirs["label"]) and mine.column_names == theirs.column_names
    assert local.num_classes == remote.num_classes == DATASETS[name].num_classes


def test_an_image_folder_of_the_recorded_rows_loads_and_is_checked_as_a_subset(hub, tmp_path):
    names = dataset("timm/oxford-iiit-pet", None, "train").features["label"].names
    for split in ("train", "test"):
        for row in dataset("timm/oxford-iiit-pet", None, split):
            (tmp_path / "pets" / split / names[row["label"]]).mkdir(parents=True, exist_ok=True)
            row["image"].save(tmp_path / "pets" / split / names[row["label"]] / f"{row['image_id']}.png")
    loaded = load_splits("pets", tmp_path, accept_subset=True)
    assert hub.calls == []
    assert loaded.num_classes == 2   # an ImageFolder's classes are its folders: american_bulldog, maine_coon
    assert sorted(loaded.test["label"]) == [0, 1] and len(loaded.train) + len(loaded.val) == 4
    with pytest.raises(DataVerificationError) as err:
        load_splits("pets", tmp_path)
    assert str(err.value).startswith(f"Dataset 'pets' (--data-dir {tmp_path / 'pets'}: a local copy), split 'train': "
                                     "expected 3,680 rows (TFDS oxford_iiit_pet catalog")


# --- GLUE --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", GLUE_TASKS)
def test_the_glue_loader_reads_each_recorded_task(hub, name):
    task = GLUE_TASKS[name]
    loaded = load_task(name, accept_subset=True)
    assert hub.calls == [("nyu-mll/glue", name, GLUE_PIN.revision, ["train", task.validation])]
    for split, recorded_split in (("train", "train"), ("validation", task.validation)):
        recorded = rows("nyu-mll/glue", name, recorded_split)
        assert loaded[split].column_names == [*task.keys, "label"]
        for key in task.keys:
            assert list(loaded[split][key]) == [row[key] for row in recorded]
        assert list(loaded[split]["label"]) == pytest.approx([r["label"] for r in recorded])   # STS-B: float32 scores


def test_glue_rows_against_the_counts_and_a_renamed_column(hub):
    with pytest.raises(DataVerificationError) as err:
        load_task("mnli")
    assert str(err.value) == (
        "Dataset 'mnli' (nyu-mll/glue @ bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c), split 'train': expected 392,702 "
        "rows (huggingface/datasets datasets/glue/dataset_infos.json @ 040102f100964a33fd334e2695f1c493fa6b92db (the "
        "nyu-mll/glue card gives the same)), found 3." + SUBSET)
    hub.renames["nyu-mll/glue"] = {"sentence": "text"}
    with pytest.raises(GlueDataUnavailableError) as err:
        load_task("sst2", accept_subset=True)
    assert str(err.value) == ("GLUE task 'sst2': the train split lacks column(s) ['sentence'] (it has ['text', "
                              "'label', 'idx']).")


def test_a_copy_without_a_split_is_named_as_such_online_and_offline(hub, monkeypatch):
    hub.dropped["nyu-mll/glue"] = {"validation_matched"}
    message = ("GLUE task 'mnli' (nyu-mll/glue @ bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c): Unknown split "
               "\"validation_matched\". Should be one of ['train', 'validation_mismatched', 'test_matched', "
               "'test_mismatched']. (expected splits train, validation_matched).")
    for offline in ("", "1"):   # offline (a cached copy): not taken for an empty cache
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        with pytest.raises(GlueDataUnavailableError) as err:
            load_task("mnli", accept_subset=True)
        assert str(err.value) == message


# --- reasoning ---------------------------------------------------------------------------------------------------
def _recorded(source):
    """The recorded rows of a reasoning source: a Hub split, or a GitHub file (one 'train' split when read)."""
    return rows(source.pin.repo, source.path if source.is_url else source.config,
                "train" if source.is_url else source.split)


def _request(source):
    if source.is_url:
        return source.pin.repo, source.path, source.pin.revision, "train"
    return source.pin.repo, source.config, source.pin.revision or HEAD, source.split


def _sources(task):
    return [task.train, *(t.source for t in task.tests)]


@pytest.mark.parametrize("name", TASKS)
def test_the_reasoning_loader_reads_each_recorded_source_into_the_schema(hub, name):
    task = TASKS[name]
    run = Sources(None)
    loaded = llm_data.load_task(task, accept_subset=True, sources=run)
    assert hub.calls == [_request(source) for source in _sources(task)]
    for data in (loaded["train"], *loaded["tests"].values()):
        assert data.column_names == list(SCHEMA)
    train = _recorded(task.train)
    instruction = {new: old for old, new in task.train.rename.items()}.get("instruction", "instruction")
    assert list(loaded["train"]["instruction"]) == [row[instruction] for row in train]
    if task.train.pin.revision is None:   # no pin: the branch's commit, recorded in the lock file after the check
        assert run.describe()[task.train.pin.repo]["how"] == ("the branch's commit at first download (recorded in "
                                                              "the lock file)")


def test_each_sources_answers_are_read_as_its_rule_says(hub):
    commonsense = llm_data.load_task(COMMONSENSE, accept_subset=True)
    for test in COMMONSENSE.tests:   # LLM-Adapters' files carry their answers
        assert list(commonsense["tests"][test.name]["answer"]) == [row["answer"] for row in _recorded(test.source)]
    assert list(commonsense["tests"]["boolq"]["answer"]) == ["false", "true"]
    math = llm_data.load_task(MATH, accept_subset=True)
    assert list(math["train"]["answer"]) == ["12", "1024"]          # after "The answer is:"
    assert list(math["tests"]["gsm8k"]["answer"]) == ["18", "3"]    # after "####"
    assert list(math["tests"]["MATH"]["answer"]) == ["\\frac{5}{6}", "7"]   # the last \boxed{}
    peft = llm_data.load_task(METAMATHQA, accept_subset=True, train=False)
    gsm8k = _recorded(METAMATHQA.test("gsm8k_peft").source)
    assert list(peft["tests"]["gsm8k_peft"]["answer"]) == [row["answer"] for row in gsm8k]   # the whole solution


def test_reasoning_rows_against_the_counts_and_a_renamed_column(hub):
    boolq = COMMONSENSE.test("boolq").source
    with pytest.raises(DataVerificationError) as err:
        llm_data.load_split("BoolQ test set", boolq)
    assert str(err.value) == (
        "Dataset 'BoolQ test set' (https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/"
        "ae07636f948d5536c3566267bb467661bfa4e90b/dataset/boolq/test.json), split 'test': expected 3,270 rows (rows "
        "counted in AGI-Edgerunners/LLM-Adapters dataset/<name>/test.json at 816657208af4db747803f87ba40a4c71383fed7a "
        "(unchanged since ae07636)), found 2." + SUBSET)
    hub.renames["openai/gsm8k"] = {"question": "problem"}
    with pytest.raises(ReasoningDataError) as err:
        llm_data.load_split("GSM8K test set", MATH.test("gsm8k").source, accept_subset=True)
    assert str(err.value) == ("GSM8K test set (openai/gsm8k) lacks field(s) ['instruction'] (it has ['answer', "
                              "'output', 'problem']); expected instruction, input, output, answer (or question, "
                              "answer).")


@pytest.mark.parametrize("task", [COMMONSENSE, MATH], ids=lambda t: t.name)
def test_a_data_dir_in_the_lineages_layout_loads_as_the_hub_copy_does(hub, tmp_path, task):
    for source in _sources(task):
        write_rows(tmp_path / "data" / source.local[0], _recorded(source))
    local = llm_data.load_task(task, tmp_path / "data", accept_subset=True)
    assert hub.calls == []
    remote = llm_data.load_task(task, accept_subset=True)
    assert local["train"].to_list() == remote["train"].to_list()
    assert {name: data.to_list() for name, data in local["tests"].items()} == \
        {name: data.to_list() for name, data in remote["tests"].items()}
