"""Where data sets, files and pretrained models come from, pinned, and checked on load.

* `Pin`: a Hub repository (data set or model) or a GitHub repository whose raw files are read, at a commit, with
  where that commit was found. A Hub source whose commit could not be found from here has `revision=None`: the first
  online run resolves the branch's current commit and records it in the results folder's lock file
  (`sources.lock.json`); later runs into that folder load that commit. `--revision ID=SHA` overrides any pin.
  A run whose commit differs from the one the lock file records (a moved branch, another pin, another --revision) is
  refused unless told (`--allow-source-change`): the results in that folder were made with the recorded one.
* `Sources`: the sources of one run, each resolved once; local copies (--data-dir, --model-path) and generated data
  are named as such. Every result records them (`describe`); the lock file records the commits once the data passed
  verification (`write_lock`). Offline (HF_HUB_OFFLINE) nothing is asked of the network: a pin or the lock file gives
  the commit, else the cached copy loads and the result says its commit is unknown.
* `Expected`: the rows per split and the class count a data set's card or paper gives, cited; `verify` checks a
  loaded copy (from the Hub or --data-dir alike) against them before any model is loaded, and stops with one message
  naming the data set, the split, what was expected and what was found (`accept_subset`: fewer rows or classes on
  purpose).
* `hub_error` / `hub_call`: one message per way a Hub load fails (gated, not found, a script-based repository,
  offline with an empty cache), each saying what to do.

Light at import (huggingface_hub and datasets load inside the functions that need them).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from .errors import SetupError

LOCK = "sources.lock.json"
SHA = re.compile(r"^[0-9a-f]{40}$")
AT_FIRST_DOWNLOAD = "recorded at first download"
WEIGHTS = "pretrained weights"   # what a model source's row of a dry run loads
KINDS = ("dataset", "model", "github")
T = TypeVar("T")


class DataVerificationError(SetupError):
    """A loaded data set is not the one its card describes (rows, classes, labels, images, overlapping ids)."""


class SourceChangedError(SetupError):
    """A source's commit differs from the one the results folder's lock file records."""


class HubError(SetupError):
    """A Hub (or raw file) load failed in a way with a known remedy."""


@dataclass(frozen=True)
class Pin:
    """A Hub repository (`kind` "dataset" or "model") or a GitHub repository whose raw files are read ("github"), at
    a commit. `revision`: a 40-hex commit, or None (Hub only: recorded at first download); `cite`: where the commit was
    found."""

    repo: str
    revision: str | None
    cite: str
    kind: str = "dataset"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.repo}: kind is one of {', '.join(KINDS)}, got {self.kind!r}.")
        if self.revision is not None and not SHA.match(self.revision):
            raise ValueError(f"{self.repo}: a pinned revision is a 40-hex commit, got {self.revision!r}.")
        if self.kind == "github" and self.revision is None:
            raise ValueError(f"{self.repo}: a GitHub file source needs its commit (no lock file resolves it).")

    @property
    def label(self) -> str:
        return f"{self.repo} @ {self.revision or AT_FIRST_DOWNLOAD}"

    @property
    def page(self) -> str:
        if self.kind == "github":
            return f"https://github.com/{self.repo}"
        return f"https://huggingface.co/{'datasets/' if self.kind == 'dataset' else ''}{self.repo}"

    def url(self, path: str, revision: str | None = None) -> str:
        """The raw URL of `path` in a GitHub repository at `revision` (default: the pin's)."""
        return f"https://raw.githubusercontent.com/{self.repo}/{revision or self.revision}/{path}"


@dataclass(frozen=True)
class Expected:
    """The rows per split a data set's card or paper gives (the splits this suite loads, train first), its class
    count (None: not a classification data set, or not found), and where both come from. A split whose count was not
    found is left out (and so unchecked)."""

    splits: Mapping[str, int]
    num_classes: int | None
    cite: str
    id_key: str | None = None   # a column of ids that must not repeat between splits

    def text(self) -> str:
        rows = " / ".join(f"{split} {n:,}" for split, n in self.splits.items()) or "rows not checked"
        return rows + (f"; {self.num_classes} classes" if self.num_classes else "")


# --- revisions, the lock file, the sources of a run ---------------------------------------------------------------
def overrides(given: list[str] | None) -> dict[str, str]:
    """--revision ID=SHA flags as {id: sha}, or a ValueError saying what is expected."""
    found = {}
    for item in given or []:
        repo, _, sha = item.partition("=")
        if not repo or not SHA.match(sha):
            raise ValueError(f"--revision expects ID=SHA with a 40-hex commit, got {item!r}.")
        found[repo] = sha
    return found


def read_lock(out: str | os.PathLike | None) -> dict[str, Any]:
    if out is None:
        return {}
    path = Path(out) / LOCK
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as err:
        raise SetupError(f"{path} is not readable JSON ({err}); restore it or remove it to record the sources "
                         "again.") from None


def current_commit(pin: Pin) -> str:
    """The commit the repository's default branch points at now (a network request)."""
    from huggingface_hub import HfApi

    api = HfApi()
    info = api.dataset_info(pin.repo) if pin.kind == "dataset" else api.model_info(pin.repo)
    return info.sha


@dataclass(frozen=True)
class Resolved:
    """What a run loads of one source: its commit (None: unknown) and how it was chosen, or a local copy's path."""

    pin: Pin | None
    revision: str | None
    how: str
    local: str | None = None

    def describe(self) -> dict[str, Any]:
        pinned = self.pin is not None and self.pin.revision is not None and self.revision == self.pin.revision
        return {"kind": self.pin.kind if self.pin else "generated", "revision": self.revision, "how": self.how,
                "local_copy": self.local, "pinned_from": self.pin.cite if pinned and not self.local else None}


def resolve(pin: Pin, out: str | os.PathLike | None, given: Mapping[str, str] | None = None,
            allow_change: bool = False, online: bool = True) -> Resolved:
    """The commit to load: --revision, else the pin, else the lock file under `out` (checked against the branch when
    online), else (online) the branch's current commit, else (offline) None: the cached copy. A commit other than the
    one the lock file records is refused (SourceChangedError) unless `allow_change`. Writes nothing."""
    lock = read_lock(out)
    recorded = (lock.get(pin.repo) or {}).get("revision")
    if given and pin.repo in given:
        chosen = Resolved(pin, given[pin.repo], "--revision")
    elif pin.revision:
        chosen = Resolved(pin, pin.revision, "pinned")
    elif not online:
        return (Resolved(pin, recorded, f"{LOCK} (recorded {lock[pin.repo]['recorded']})") if recorded else
                Resolved(pin, None, "unknown: offline, no pin and no lock file entry (the cached copy is used)"))
    else:
        now = current_commit(pin)
        chosen = Resolved(pin, now, f"{LOCK} (recorded {lock[pin.repo]['recorded']})" if now == recorded else
                          "the branch's commit at first download (recorded in the lock file)")
    if recorded and chosen.revision != recorded and not allow_change:
        raise SourceChangedError(
            f"{pin.repo}: {Path(out) / LOCK} records {recorded}, but this run would load {chosen.revision} "
            f"({chosen.how.split(' (')[0]}): the results in {out} were made with the recorded commit. Write to "
            f"another --out, or pass --allow-source-change to load {chosen.revision} here, or --revision "
            f"{pin.repo}={recorded} to keep the recorded one.")
    return chosen


class Sources:
    """The sources of one run into `out`, each resolved once (see `resolve`); `online` defaults to "HF_HUB_OFFLINE is
    not set". `instead` names the flag that takes a local copy of a source, for the messages of failed requests."""

    def __init__(self, out: str | os.PathLike | None, given: Mapping[str, str] | None = None,
                 allow_change: bool = False, online: bool | None = None) -> None:
        from neat_core.remote import offline_mode

        self.out, self.given, self.allow_change = out, dict(given or {}), allow_change
        self.online = not offline_mode() if online is None else online
        self.found: dict[str, Resolved] = {}

    @classmethod
    def of_run(cls, args: Any) -> Sources:
        """The sources of a suite run: its --out, --revision flags (args.revisions) and --allow-source-change."""
        return cls(args.out, getattr(args, "revisions", None), getattr(args, "allow_source_change", False))

    def revision(self, pin: Pin, instead: str) -> str | None:
        """The commit to load `pin` at (resolved once per run)."""
        if pin.repo not in self.found:
            self.found[pin.repo] = hub_call(lambda: resolve(pin, self.out, self.given, self.allow_change,
                                                            self.online), pin, None, instead)
        return self.found[pin.repo].revision

    def local(self, pin: Pin | None, name: str, path: str | os.PathLike, flag: str) -> None:
        """A local copy of `pin` (or of source `name`) from `flag` PATH: its commit is unknown, its counts checked."""
        self.found[name] = Resolved(pin, None, f"a local copy ({flag}): its commit is unknown; verified by counts",
                                    str(path))

    def generated(self, name: str, what: str) -> None:
        self.found[name] = Resolved(None, None, what)

    def describe(self) -> dict[str, dict[str, Any]]:
        """What every result records: each source's kind, commit, how it was chosen, a local copy's path."""
        return {name: found.describe() for name, found in self.found.items()}

    def write_lock(self) -> None:
        """Record the commit of every Hub or GitHub source loaded at a known commit in OUT/sources.lock.json (atomic;
        entries of other sources kept, unchanged ones untouched)."""
        if self.out is None:
            return
        lock = read_lock(self.out)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        changed = {repo: {"revision": r.revision, "kind": r.pin.kind, "recorded": stamp}
                   for repo, r in self.found.items()
                   if r.pin is not None and r.revision and (lock.get(repo) or {}).get("revision") != r.revision}
        if changed:
            from .results import write_json_atomic

            write_json_atomic(Path(self.out) / LOCK, {**lock, **changed})


def shown_revision(pin: Pin, out: str | os.PathLike | None, given: Mapping[str, str] | None = None) -> str:
    """A dry run's view of the commit a run would load (no request): --revision, the pin, the lock file's, or
    "recorded at first download"."""
    if given and pin.repo in given:
        return f"{pin.repo} @ {given[pin.repo]} (--revision)"
    if pin.revision:
        return pin.label
    recorded = (read_lock(out).get(pin.repo) or {}).get("revision")
    return f"{pin.repo} @ {recorded} ({LOCK})" if recorded else pin.label


def source_table(rows: list[tuple[str, str, str, Expected | None]], out: str | os.PathLike | None) -> list[str]:
    """The dry run's data sources as Markdown: per (name, source @ revision, splits used, expected counts) a row with
    the counts' citation."""
    intro = (f"Data sources (--revision ID=SHA overrides a commit; one without a pin is recorded in {out or 'OUT'}/"
             f"{LOCK} at first download; every load is checked against the expected counts before the model loads):")
    lines = ["", intro, "", "| data | source @ revision | splits used | expected | counts from |",
             "|---|---|---|---|---|"]
    for name, where, splits, expected in rows:
        counts, cite = (expected.text(), expected.cite) if expected else ("—", "—")
        lines.append(f"| {name} | {where} | {splits} | {counts} | {cite} |")
    return lines


# --- verification --------------------------------------------------------------------------------------------------
def _class_count(data: Any, label_key: str) -> int:
    feature = getattr(data, "features", {}).get(label_key)
    declared = getattr(feature, "num_classes", None)
    return declared or len(set(data[label_key]))


def verify(name: str, splits: Mapping[str, Any], expected: Expected | None, *, label_key: str | None = "label",
           image_key: str | None = None, accept_subset: bool = False, where: str = "") -> None:
    """Stop with one DataVerificationError unless `splits` (the loaded data set, before any split of our own) is what
    `expected` describes: the rows of every expected split, the class count, the same labels in every split, images
    that decode to a non-empty picture, no id in two splits. With `accept_subset`, fewer rows and classes (and a
    missing split) pass: a subset on purpose; more never do."""
    if expected is None:
        return
    source = f" ({where})" if where else ""
    hint = (" If this copy is a subset on purpose, pass --accept-subset; otherwise download the data set again "
            "(--data-dir: a complete copy).")
    missing = [split for split in expected.splits if split not in splits]
    if missing and not accept_subset:
        raise DataVerificationError(f"Dataset {name!r}{source}: no split {missing[0]!r} (found {sorted(splits)}); "
                                    f"expected {expected.text()} ({expected.cite}).")
    for split, rows in expected.splits.items():
        if split in missing:
            continue
        found = len(splits[split])
        if found != rows and not (accept_subset and found <= rows):
            raise DataVerificationError(f"Dataset {name!r}{source}, split {split!r}: expected {rows:,} rows "
                                        f"({expected.cite}), found {found:,}." + hint)
    present = [s for s in expected.splits if s in splits] or [s for s in splits]
    if label_key is not None and expected.num_classes is not None:
        _check_labels(name, source, {s: splits[s] for s in present}, label_key, expected, accept_subset, hint)
    if image_key is not None:
        for split in present:
            _check_images(name, source, split, splits[split], image_key)
    if expected.id_key:
        _check_ids(name, source, {s: splits[s] for s in present}, expected.id_key)


def _check_labels(name: str, source: str, splits: Mapping[str, Any], key: str, expected: Expected,
                  accept_subset: bool, hint: str) -> None:
    first, *rest = splits
    classes = _class_count(splits[first], key)
    if classes != expected.num_classes and not (accept_subset and classes <= expected.num_classes):
        raise DataVerificationError(f"Dataset {name!r}{source}, split {first!r}: expected {expected.num_classes} "
                                    f"classes ({expected.cite}), found {classes}." + hint)
    seen = set(splits[first][key])
    for split in rest:
        other = set(splits[split][key])
        if other != seen:
            only = sorted(seen ^ other)[:10]
            raise DataVerificationError(
                f"Dataset {name!r}{source}: splits {first!r} and {split!r} have different label sets ({len(seen)} vs "
                f"{len(other)} labels; in one only: {only}); a copy of another granularity (e.g. FGVC families "
                "instead of variants) or a broken download.")


def _check_images(name: str, source: str, split: str, data: Any, key: str, sample: int = 4) -> None:
    for i in range(min(sample, len(data))):
        image = data[i][key]
        if getattr(image, "mode", None) not in ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F") or \
                min(getattr(image, "size", (0, 0))) < 1:
            raise DataVerificationError(f"Dataset {name!r}{source}, split {split!r}: item {i} is not a decodable "
                                        f"image (mode {getattr(image, 'mode', None)!r}, size "
                                        f"{getattr(image, 'size', None)}).")


def _check_ids(name: str, source: str, splits: Mapping[str, Any], key: str) -> None:
    names = [s for s in splits if key in getattr(splits[s], "column_names", ())]
    ids = {s: set(splits[s][key]) for s in names}
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            both = ids[first] & ids[second]
            if both:
                raise DataVerificationError(
                    f"Dataset {name!r}{source}: {len(both)} id(s) in both {first!r} and {second!r} (e.g. "
                    f"{sorted(both)[:3]}): evaluation images would be trained on.")


# --- one message per way a Hub load fails -------------------------------------------------------------------------
def _chain(err: BaseException) -> Iterator[BaseException]:
    """`err` and the errors it was raised from (libraries wrap the Hub's errors in their own)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def hub_error(err: BaseException, pin: Pin, revision: str | None, instead: str) -> str | None:
    """The message for a failed load of `pin` at `revision` (None: not a failure this module knows); `instead`: the
    flag that takes a local copy (e.g. "--data-dir DIR")."""
    from huggingface_hub import errors as hub

    from neat_core.remote import offline_mode

    at = f"{pin.repo} @ {revision or 'main'}"
    errors = list(_chain(err))
    text = " ".join(str(e) for e in errors)
    kinds = tuple(type(e).__name__ for e in errors)
    if any(isinstance(e, hub.GatedRepoError) for e in errors) or "gated" in text.lower() and "access" in text.lower():
        return (f"{at} is gated: request access on {pin.page}, then log in with `hf auth login` (or set HF_TOKEN) and "
                f"run again; or pass {instead}.")
    if any(isinstance(e, (hub.RepositoryNotFoundError, hub.RevisionNotFoundError)) for e in errors) or \
            "DatasetNotFoundError" in kinds:
        return (f"{at} was not found on the Hub: check the id ({pin.page}) and the revision (a commit of that "
                f"repository), and that you are logged in if it is private; or pass {instead}.")
    if "scripts are no longer supported" in text or "loading script" in text.lower():
        return (f"{at} is a script-based repository, which `datasets` >= 4 no longer runs: load its parquet "
                f"conversion (--revision {pin.repo}=<the commit of its refs/convert/parquet branch>) or download the "
                f"data and pass {instead}.")
    offline = offline_mode()   # then a failure to read files is the empty cache; any other failure is itself
    if any(isinstance(e, (hub.OfflineModeIsEnabled, hub.LocalEntryNotFoundError)) for e in errors) or \
            offline and any(isinstance(e, OSError) for e in errors):
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
        return (f"{at} is not in the local cache and {why}: run once where the Hub is reachable (it fills the "
                f"Hugging Face cache, HF_HOME; copy that here), or download it and pass {instead}.")
    if pin.kind == "github" and any(isinstance(e, FileNotFoundError) for e in errors):
        return (f"{at}: a file was not found ({errors[-1]}); check the repository ({pin.page}), the commit and the "
                f"path, or pass {instead}.")
    return None


def hub_call(load: Callable[[], T], pin: Pin, revision: str | None, instead: str, what: str = "") -> T:
    """load(), with a Hub failure of `pin` turned into one HubError "[`what`: ]what went wrong and what to do"; a
    network failure without a known remedy is one too (its type and first line); other errors pass."""
    try:
        return load()
    except (SetupError, KeyboardInterrupt):
        raise
    except Exception as err:  # only those hub_error knows, and network failures, are turned; others pass
        message = hub_error(err, pin, revision, instead)
        if message is None and isinstance(err, (OSError, ConnectionError)):
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            message = (f"{pin.repo} @ {revision or 'main'} could not be loaded ({type(err).__name__}: {first}); "
                       f"check the network, or pass {instead}.")
        if message is None:
            raise
        raise HubError(f"{what}: {message}" if what else message) from None


def load_hub_dataset(pin: Pin, sources: Sources, instead: str, what: str, config: str | None = None,
                     split: Any = None) -> tuple[Any, str]:
    """`datasets.load_dataset` of `pin` (its `config`, `split`: a name or a list) at the commit `sources` resolves,
    through `hub_call`; and where it came from ("repo @ commit")."""
    import datasets

    revision = sources.revision(pin, instead)
    data = hub_call(lambda: datasets.load_dataset(pin.repo, config, revision=revision, split=split), pin, revision,
                    instead, what)
    return data, f"{pin.repo} @ {revision or 'the cached copy'}"
