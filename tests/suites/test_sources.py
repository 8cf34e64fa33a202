"""core.sources: pinned revisions, the lock file (round trip and refusal of a changed source), verification of a
loaded data set against its card's counts, and one message per way a Hub load fails (the libraries' own exception
classes, constructed as they raise them)."""

from __future__ import annotations

import json

import httpx
import pytest

from benchmarks.core import sources as S
from benchmarks.core.errors import SetupError

SHA1, SHA2, SHA3 = "1" * 40, "2" * 40, "3" * 40
PIN = S.Pin("org/data", None, S.AT_FIRST_DOWNLOAD)


def test_a_pin_is_a_full_commit_and_says_so():
    assert S.Pin("org/data", SHA1, "a card").label == f"org/data @ {SHA1}"
    assert PIN.label == "org/data @ recorded at first download"
    with pytest.raises(ValueError, match="org/data: a pinned revision is a 40-hex commit, got 'main'."):
        S.Pin("org/data", "main", "nowhere")
    with pytest.raises(ValueError, match="org/code: a GitHub file source needs its commit"):
        S.Pin("org/code", None, "nowhere", "github")
    code = S.Pin("org/code", SHA1, "its log", "github")
    assert code.url("data/test.json") == f"https://raw.githubusercontent.com/org/code/{SHA1}/data/test.json"
    assert code.url("data/test.json", SHA2).endswith(f"/org/code/{SHA2}/data/test.json")


def test_revision_flags_are_id_equals_sha():
    assert S.overrides([f"org/data={SHA1}"]) == {"org/data": SHA1}
    with pytest.raises(ValueError, match="--revision expects ID=SHA with a 40-hex commit, got 'org/data=main'."):
        S.overrides(["org/data=main"])


def _commits(monkeypatch, *shas):
    """The branch's head as current_commit reports it: the last of `shas` (append to move it)."""
    heads = list(shas)
    monkeypatch.setattr(S, "current_commit", lambda pin: heads[-1])
    return heads


def test_the_first_online_run_records_the_commit_and_later_runs_load_it(tmp_path, monkeypatch):
    heads = _commits(monkeypatch, SHA1)
    first = S.Sources(tmp_path, online=True)
    assert first.revision(PIN, "--data-dir DIR") == SHA1
    assert first.describe() == {"org/data": {
        "kind": "dataset", "revision": SHA1, "how": "the branch's commit at first download (recorded in the lock file)",
        "local_copy": None, "pinned_from": None}}
    assert not (tmp_path / S.LOCK).exists()   # nothing is written before the data passed verification
    first.write_lock()
    lock = json.loads((tmp_path / S.LOCK).read_text())
    assert lock["org/data"]["revision"] == SHA1 and lock["org/data"]["kind"] == "dataset"
    again = S.resolve(PIN, tmp_path)
    assert again.revision == SHA1 and again.how == f"{S.LOCK} (recorded {lock['org/data']['recorded']})"
    assert S.resolve(PIN, tmp_path, online=False).revision == SHA1   # offline: the recorded commit, no request
    heads.append(SHA2)   # the branch moved
    with pytest.raises(S.SourceChangedError) as err:
        S.resolve(PIN, tmp_path)
    assert str(err.value) == (
        f"org/data: {tmp_path / S.LOCK} records {SHA1}, but this run would load {SHA2} (the branch's commit at first "
        f"download): the results in {tmp_path} were made with the recorded commit. Write to another --out, or pass "
        f"--allow-source-change to load {SHA2} here, or --revision org/data={SHA1} to keep the recorded one.")
    assert isinstance(err.value, SetupError) and json.loads((tmp_path / S.LOCK).read_text()) == lock   # untouched
    assert S.resolve(PIN, tmp_path, {"org/data": SHA1}).revision == SHA1
    allowed = S.Sources(tmp_path, allow_change=True, online=True)
    assert allowed.revision(PIN, "--data-dir DIR") == SHA2
    allowed.write_lock()
    assert json.loads((tmp_path / S.LOCK).read_text())["org/data"]["revision"] == SHA2


def test_a_pin_or_revision_other_than_the_recorded_commit_is_refused(tmp_path, monkeypatch):
    _commits(monkeypatch, SHA1)
    run = S.Sources(tmp_path, online=True)
    run.revision(S.Pin("org/data", SHA1, "its card"), "--data-dir DIR")
    run.write_lock()
    with pytest.raises(S.SourceChangedError, match=rf"org/data: .*records {SHA1}, but this run would load {SHA3} "
                                                   r"\(--revision\)"):
        S.Sources(tmp_path, {"org/data": SHA3}).revision(PIN, "--data-dir DIR")
    with pytest.raises(S.SourceChangedError, match=rf"would load {SHA2} \(pinned\)"):
        S.resolve(S.Pin("org/data", SHA2, "a newer pin"), tmp_path)
    assert S.resolve(S.Pin("org/data", SHA2, "a newer pin"), tmp_path, allow_change=True).revision == SHA2


def test_a_pinned_source_needs_no_network_and_no_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "current_commit", lambda pin: pytest.fail("no request for a pinned source"))
    pinned = S.resolve(S.Pin("org/data", SHA1, "its card"), tmp_path)
    assert (pinned.revision, pinned.how, pinned.describe()["pinned_from"]) == (SHA1, "pinned", "its card")
    assert not (tmp_path / S.LOCK).exists()
    offline = S.resolve(PIN, tmp_path, online=False)
    assert (offline.revision, offline.how) == (None, "unknown: offline, no pin and no lock file entry (the cached "
                                                     "copy is used)")
    run = S.Sources(tmp_path, online=False)
    run.revision(PIN, "--data-dir DIR")
    run.local(PIN, "pets", tmp_path / "pets", "--data-dir")
    run.generated("digits", "sklearn's digits")
    run.write_lock()   # nothing with a known commit: no lock file
    assert not (tmp_path / S.LOCK).exists()
    assert run.describe()["pets"] == {"kind": "dataset", "revision": None, "local_copy": str(tmp_path / "pets"),
                                      "how": "a local copy (--data-dir): its commit is unknown; verified by counts",
                                      "pinned_from": None}
    assert run.describe()["digits"]["kind"] == "generated"


def test_a_torn_lock_file_is_one_clear_error(tmp_path):
    (tmp_path / S.LOCK).write_text("{")
    with pytest.raises(SetupError, match=r"sources.lock.json is not readable JSON .*remove it to record the sources"):
        S.resolve(PIN, tmp_path, online=False)


def test_the_dry_run_shows_the_commit_a_run_would_load_without_asking_the_network(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "current_commit", lambda pin: pytest.fail("a dry run makes no request"))
    assert S.shown_revision(PIN, tmp_path) == "org/data @ recorded at first download"
    assert S.shown_revision(PIN, tmp_path, {"org/data": SHA2}) == f"org/data @ {SHA2} (--revision)"
    (tmp_path / S.LOCK).write_text(json.dumps({"org/data": {"revision": SHA1, "kind": "dataset", "recorded": "t"}}))
    assert S.shown_revision(PIN, tmp_path) == f"org/data @ {SHA1} ({S.LOCK})"


# --- verification -----------------------------------------------------------------------------------------------------
def _data(labels, images=None, ids=None, num_classes=None):
    import datasets

    columns = {"label": labels}
    features = {"label": datasets.ClassLabel(num_classes=num_classes) if num_classes else datasets.Value("int64")}
    if images is not None:
        columns["image"], features["image"] = images, datasets.Image()
    if ids is not None:
        columns["id"], features["id"] = ids, datasets.Value("int64")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


EXPECTED = S.Expected({"train": 4, "test": 2}, 2, "the card", id_key="id")


def test_a_complete_copy_passes():
    S.verify("toy", {"train": _data([0, 1, 0, 1]), "test": _data([0, 1])}, EXPECTED)


@pytest.mark.parametrize("splits, message", [
    ({"train": _data([0, 1, 0]), "test": _data([0, 1])},
     "Dataset 'toy' (org/data @ 1111), split 'train': expected 4 rows (the card), found 3."),
    ({"train": _data([0, 1, 0, 1])}, "Dataset 'toy' (org/data @ 1111): no split 'test' (found ['train']); expected "
                                     "train 4 / test 2; 2 classes (the card)."),
    ({"train": _data([0, 1, 2, 1]), "test": _data([0, 1])},
     "Dataset 'toy' (org/data @ 1111), split 'train': expected 2 classes (the card), found 3."),
    ({"train": _data([0, 1, 0, 1], num_classes=70), "test": _data([0, 1], num_classes=70)},
     "Dataset 'toy' (org/data @ 1111), split 'train': expected 2 classes (the card), found 70."),   # declared
    ({"train": _data([0, 0, 0, 1]), "test": _data([0, 0])},
     "Dataset 'toy' (org/data @ 1111): splits 'train' and 'test' have different label sets (2 vs 1 labels; in one "
     "only: [1]); a copy of another granularity (e.g. FGVC families instead of variants) or a broken download."),
    ({"train": _data([0, 1, 0, 1], ids=[1, 2, 3, 4]), "test": _data([0, 1], ids=[4, 5])},
     ("Dataset 'toy' (org/data @ 1111): 1 id(s) in both 'train' and 'test' (e.g. [4]): evaluation images would be "
      "trained on.")),
])
def test_each_mismatch_stops_with_one_message_naming_what_and_where(splits, message):
    with pytest.raises(S.DataVerificationError) as err:
        S.verify("toy", splits, EXPECTED, where="org/data @ 1111")
    assert str(err.value).startswith(message)
    assert isinstance(err.value, SetupError)   # a command line prints it as one line


def test_every_split_is_compared_with_the_first():
    expected = S.Expected({"train": 4, "validation": 2, "test": 2}, 2, "the card", id_key="id")
    splits = {"train": _data([0, 1, 0, 1], ids=[1, 2, 3, 4]), "validation": _data([0, 1], ids=[5, 6]),
              "test": _data([0, 1], ids=[6, 7])}
    with pytest.raises(S.DataVerificationError, match=r"1 id\(s\) in both 'validation' and 'test' \(e.g. \[6\]\)"):
        S.verify("toy", splits, expected)
    splits["test"] = _data([0, 0], ids=[7, 8])
    with pytest.raises(S.DataVerificationError, match="splits 'train' and 'test' have different label sets"):
        S.verify("toy", splits, expected)


def test_a_subset_on_purpose_passes_with_the_flag_and_never_a_superset():
    subset = {"train": _data([0, 1]), "test": _data([0, 1])}
    with pytest.raises(S.DataVerificationError, match="If this copy is a subset on purpose, pass --accept-subset"):
        S.verify("toy", subset, EXPECTED)
    S.verify("toy", subset, EXPECTED, accept_subset=True)
    with pytest.raises(S.DataVerificationError, match="expected 4 rows"):
        S.verify("toy", {"train": _data([0, 1] * 3), "test": _data([0, 1])}, EXPECTED, accept_subset=True)
    with pytest.raises(S.DataVerificationError, match="expected 2 classes .*, found 3"):
        S.verify("toy", {"train": _data([0, 1, 2]), "test": _data([0, 2])}, EXPECTED, accept_subset=True)


def test_unknown_counts_are_left_unchecked():
    unknown = S.Expected({}, None, "not found")
    assert unknown.text() == "rows not checked"
    S.verify("toy", {"train": _data([0, 1, 2])}, unknown)


def test_images_must_decode_to_a_picture():
    from PIL import Image

    good, empty = Image.new("RGB", (4, 4)), Image.new("RGB", (0, 4))
    expected = S.Expected({"train": 2, "test": 1}, 1, "the card")
    S.verify("toy", {"train": [{"image": good, "label": 0}] * 2, "test": [{"image": good, "label": 0}]}, expected,
             image_key="image", label_key=None)
    splits = {"train": _ListSplit([{"image": good, "label": 0}] * 2),
              "test": _ListSplit([{"image": empty, "label": 0}])}
    with pytest.raises(S.DataVerificationError, match=r"Dataset 'toy', split 'test': item 0 is not a decodable image "
                                                      r"\(mode 'RGB', size \(0, 4\)\)\."):
        S.verify("toy", splits, expected, image_key="image")


class _ListSplit(list):
    """A list of rows that also answers split[column] (as a datasets.Dataset does)."""

    def __getitem__(self, key):
        return [row[key] for row in self] if isinstance(key, str) else super().__getitem__(key)


# --- the Hub's failures ------------------------------------------------------------------------------------------------
def _http(kind: type, status: int, text: str) -> Exception:
    """The error huggingface_hub raises for an HTTP answer of `status`."""
    return kind(text, response=httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/x")))


MODEL = S.Pin("meta-llama/Llama-2-7b-hf", None, S.AT_FIRST_DOWNLOAD, kind="model")
DATA = S.Pin("org/data", SHA1, "its card")


def test_a_gated_model_names_its_access_page_and_the_login(monkeypatch):
    from huggingface_hub import errors

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    gated = _http(errors.GatedRepoError, 401, "Access to model meta-llama/Llama-2-7b-hf is restricted.")
    message = ("meta-llama/Llama-2-7b-hf @ main is gated: request access on "
               "https://huggingface.co/meta-llama/Llama-2-7b-hf, then log in with `hf auth login` (or set HF_TOKEN) "
               "and run again; or pass --model-path DIR.")
    assert S.hub_error(gated, MODEL, None, "--model-path DIR") == message
    try:   # transformers raises its own OSError from the Hub's: the chain is read
        try:
            raise gated
        except errors.GatedRepoError as inner:
            raise OSError("You are trying to access a gated repo.") from inner
    except OSError as wrapped:
        assert S.hub_error(wrapped, MODEL, None, "--model-path DIR") == message
    with pytest.raises(S.HubError) as err:
        S.hub_call(lambda: (_ for _ in ()).throw(gated), MODEL, None, "--model-path DIR", "Pretrained weights of 'x'")
    assert str(err.value) == "Pretrained weights of 'x': " + message


def test_not_found_names_the_id_the_revision_and_what_to_check(monkeypatch):
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import errors

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for err in (_http(errors.RepositoryNotFoundError, 404, "404 Client Error"),
                _http(errors.RevisionNotFoundError, 404, "Invalid rev id"),
                DatasetNotFoundError("Dataset 'org/data' doesn't exist on the Hub or cannot be accessed.")):
        assert S.hub_error(err, DATA, SHA1, "--data-dir DIR") == (
            f"org/data @ {SHA1} was not found on the Hub: check the id (https://huggingface.co/datasets/org/data) and "
            "the revision (a commit of that repository), and that you are logged in if it is private; or pass "
            "--data-dir DIR.")


def test_a_script_based_repository_says_what_to_do_instead(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    script = RuntimeError("Dataset scripts are no longer supported, but found cifar10.py")   # what datasets raises
    assert S.hub_error(script, DATA, SHA1, "--data-dir DIR") == (
        f"org/data @ {SHA1} is a script-based repository, which `datasets` >= 4 no longer runs: load its parquet "
        "conversion (--revision org/data=<the commit of its refs/convert/parquet branch>) or download the data and "
        "pass --data-dir DIR.")


def test_offline_with_an_empty_cache_says_what_to_download_and_the_flag(monkeypatch):
    from huggingface_hub import errors

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    empty = ConnectionError("Couldn't reach 'org/data' on the Hub (OfflineModeIsEnabled)")   # datasets' words
    assert S.hub_error(empty, DATA, SHA1, "--data-dir DIR") == (
        f"org/data @ {SHA1} is not in the local cache and HF_HUB_OFFLINE is set: run once where the Hub is reachable "
        "(it fills the Hugging Face cache, HF_HOME; copy that here), or download it and pass --data-dir DIR.")
    assert S.hub_error(ValueError('Unknown split "test"'), DATA, SHA1, "--data-dir DIR") is None   # not the cache
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert S.hub_error(errors.LocalEntryNotFoundError("no cached file"), MODEL, None, "--model-path DIR").startswith(
        "meta-llama/Llama-2-7b-hf @ main is not in the local cache and the Hub cannot be reached: run once where")


def test_other_failures_pass_or_become_one_network_message(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert S.hub_error(ValueError("something else"), DATA, SHA1, "--data-dir DIR") is None
    with pytest.raises(ValueError, match="something else"):   # not a Hub failure: its own traceback
        S.hub_call(lambda: (_ for _ in ()).throw(ValueError("something else")), DATA, SHA1, "--data-dir DIR")
    with pytest.raises(S.HubError) as err:
        S.hub_call(lambda: (_ for _ in ()).throw(ConnectionError("reset by peer\nmore")), DATA, SHA1, "--data-dir DIR")
    assert str(err.value) == (f"org/data @ {SHA1} could not be loaded (ConnectionError: reset by peer); check the "
                              "network, or pass --data-dir DIR.")
