"""core.sources: pinned revisions, the lock file (round trip and refusal of a moved source), verification of a loaded
data set against its card's counts, and one message per way a Hub load fails (fakes of the libraries' errors)."""

from __future__ import annotations

import json

import pytest

from benchmarks.core import sources as S
from benchmarks.core.errors import SetupError

SHA1, SHA2 = "1" * 40, "2" * 40
PIN = S.Pin("org/data", None, S.AT_FIRST_DOWNLOAD)


def test_a_pin_is_a_full_commit_and_says_so():
    assert S.Pin("org/data", SHA1, "a card").label == f"org/data @ {SHA1}"
    assert PIN.label == "org/data @ recorded at first download"
    with pytest.raises(ValueError, match="org/data: a pinned revision is a 40-hex commit, got 'main'."):
        S.Pin("org/data", "main", "nowhere")


def test_revision_flags_are_id_equals_sha():
    assert S.overrides([f"org/data={SHA1}"]) == {"org/data": SHA1}
    with pytest.raises(ValueError, match="--revision expects ID=SHA with a 40-hex commit, got 'org/data=main'."):
        S.overrides(["org/data=main"])


def test_the_first_online_run_records_the_commit_and_later_runs_load_it(tmp_path, monkeypatch):
    commits = [SHA1]
    monkeypatch.setattr(S, "current_commit", lambda pin: commits[-1])
    assert S.resolve(PIN, tmp_path) == (SHA1, f"{S.LOCK} (recorded now: the branch's commit at first download)")
    lock = json.loads((tmp_path / S.LOCK).read_text())
    assert lock["org/data"]["revision"] == SHA1 and lock["org/data"]["kind"] == "dataset"
    revision, where = S.resolve(PIN, tmp_path)
    assert revision == SHA1 and where.startswith(f"{S.LOCK} (recorded ")
    offline = S.resolve(PIN, tmp_path, online=False)   # no network: the recorded commit, no request
    assert offline[0] == SHA1
    commits.append(SHA2)   # the branch moved
    with pytest.raises(S.SourceChangedError) as err:
        S.resolve(PIN, tmp_path)
    assert str(err.value) == (
        f"org/data has moved since {tmp_path / S.LOCK} recorded it ({SHA1} -> {SHA2}): the results in {tmp_path} "
        "were made with the old data. Write to another --out, or pass --allow-source-change to load the new commit "
        f"here, or --revision org/data={SHA1} to keep the old one.")
    assert isinstance(err.value, SetupError) and json.loads((tmp_path / S.LOCK).read_text()) == lock   # untouched
    assert S.resolve(PIN, tmp_path, allow_change=True)[0] == SHA2
    assert S.resolve(PIN, tmp_path, {"org/data": SHA1}) == (SHA1, "--revision")


def test_a_pinned_source_needs_no_network_and_no_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "current_commit", lambda pin: pytest.fail("no request for a pinned source"))
    assert S.resolve(S.Pin("org/data", SHA1, "its card"), tmp_path) == (SHA1, "its card")
    assert not (tmp_path / S.LOCK).exists()
    assert S.resolve(PIN, tmp_path, online=False) == (
        None, "unknown: offline, no pin and no lock file entry (the cached copy is used)")


def test_a_torn_lock_file_is_one_clear_error(tmp_path):
    (tmp_path / S.LOCK).write_text("{")
    with pytest.raises(SetupError, match=r"sources.lock.json is not readable JSON .*remove it to record the sources"):
        S.resolve(PIN, tmp_path, online=False)


# --- verification -----------------------------------------------------------------------------------------------------
def _data(labels, images=None, ids=None):
    import datasets

    columns = {"label": labels}
    if images is not None:
        columns["image"] = images
    if ids is not None:
        columns["id"] = ids
    return datasets.Dataset.from_dict(columns)


EXPECTED = S.Expected({"train": 4, "test": 2}, 2, "the card", id_key="id")


def test_a_complete_copy_passes():
    S.verify("toy", {"train": _data([0, 1, 0, 1]), "test": _data([0, 1])}, EXPECTED)


@pytest.mark.parametrize("splits, message", [
    ({"train": _data([0, 1, 0]), "test": _data([0, 1])},
     "Dataset 'toy', split 'train': expected 4 rows (the card), found 3."),
    ({"train": _data([0, 1, 0, 1])}, "Dataset 'toy': no split 'test' (found ['train']); expected train 4 / test 2; "
                                     "2 classes (the card)."),
    ({"train": _data([0, 1, 2, 1]), "test": _data([0, 1])},
     "Dataset 'toy', split 'train': expected 2 classes (the card), found 3."),
    ({"train": _data([0, 0, 0, 1]), "test": _data([0, 0])}, "Dataset 'toy': splits 'train' and 'test' have different "
                                                            "label sets (2 vs 1 labels; in one only: [1])"),
    ({"train": _data([0, 1, 0, 1], ids=[1, 2, 3, 4]), "test": _data([0, 1], ids=[4, 5])},
     "Dataset 'toy': 1 id(s) in both 'train' and 'test' (e.g. [4]): test images would be trained on."),
])
def test_each_mismatch_stops_with_one_message_naming_what_and_where(splits, message):
    with pytest.raises(S.DataVerificationError) as err:
        S.verify("toy", splits, EXPECTED)
    assert str(err.value).startswith(message)


def test_a_subset_on_purpose_passes_with_the_flag_and_never_a_superset():
    subset = {"train": _data([0, 1]), "test": _data([0, 1])}
    with pytest.raises(S.DataVerificationError, match="If this copy is a subset on purpose, pass --accept-subset"):
        S.verify("toy", subset, EXPECTED)
    S.verify("toy", subset, EXPECTED, accept_subset=True)
    with pytest.raises(S.DataVerificationError, match="expected 4 rows"):
        S.verify("toy", {"train": _data([0, 1] * 3), "test": _data([0, 1])}, EXPECTED, accept_subset=True)


def test_images_must_decode_to_a_picture():
    from PIL import Image

    good, empty = Image.new("RGB", (4, 4)), Image.new("RGB", (0, 4))
    expected = S.Expected({"train": 2, "test": 1}, 1, "the card")
    S.verify("toy", {"train": [{"image": good, "label": 0}] * 2, "test": [{"image": good, "label": 0}]}, expected,
             image_key="image", label_key=None)
    splits = {"train": _ListSplit([{"image": empty, "label": 0}] * 2), "test": _ListSplit([{"image": good, "label": 0}])}
    with pytest.raises(S.DataVerificationError, match=r"Dataset 'toy': item 0 is not a decodable image \(mode 'RGB', "
                                                      r"size \(0, 4\)\)\."):
        S.verify("toy", splits, expected, image_key="image")


class _ListSplit(list):
    """A list of rows that also answers split[column] (as a datasets.Dataset does)."""

    def __getitem__(self, key):
        return [row[key] for row in self] if isinstance(key, str) else super().__getitem__(key)


# --- the Hub's failures ------------------------------------------------------------------------------------------------
def _error(kind: type, text: str) -> Exception:
    err = kind.__new__(kind)
    Exception.__init__(err, text)
    return err


def test_each_hub_failure_says_what_to_do():
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import errors

    model = S.Pin("meta-llama/Llama-2-7b-hf", None, S.AT_FIRST_DOWNLOAD, kind="model")
    gated = S.hub_error(_error(errors.GatedRepoError, "401"), model, None, "--model-path DIR")
    assert gated == ("meta-llama/Llama-2-7b-hf @ main is gated: request access on "
                     "https://huggingface.co/meta-llama/Llama-2-7b-hf, then log in with `hf auth login` (or set "
                     "HF_TOKEN) and run again; or pass --model-path DIR.")
    data = S.Pin("org/data", SHA1, "its card")
    for kind in (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, DatasetNotFoundError):
        assert S.hub_error(_error(kind, "404"), data, SHA1, "--data-dir DIR") == (
            f"org/data @ {SHA1} was not found on the Hub: check the id (https://huggingface.co/datasets/org/data) and "
            "the revision (a commit of that repository), and that you are logged in if it is private; or pass "
            "--data-dir DIR.")
    script = S.hub_error(RuntimeError("Dataset scripts are no longer supported, but found data.py"), data, SHA1,
                         "--data-dir DIR")
    assert script.startswith(f"org/data @ {SHA1} is a script-based repository, which `datasets` >= 4 no longer runs")
    assert S.hub_error(ValueError("something else"), data, SHA1, "--data-dir DIR") is None
