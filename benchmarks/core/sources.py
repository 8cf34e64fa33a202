"""Where data sets and pretrained models come from, pinned, and checked on load.

* `Pin`: a Hub repository (data set or model) or a file URL at a commit, with where that commit was found. A source
  whose commit could not be found from here has `revision=None`: the first online run resolves the branch's current
  commit and records it in the results folder's lock file (`sources.lock.json`) and in every result; later runs into
  that folder load that commit, and refuse a source whose branch has moved unless told (`--allow-source-change`).
  `--revision ID=SHA` overrides any pin.
* `Expected`: the rows per split and the class count a data set's card or paper gives, cited; `verify` checks a
  loaded copy (from the Hub or --data-dir alike) against them before any model is loaded, and stops with one message
  naming the data set, the split, what was expected and what was found (`accept_subset`: fewer rows or classes on
  purpose).
* `hub_error`: one message per way a Hub load fails (gated, not found, a script-based repository, offline with an
  empty cache), each saying what to do.

Light at import (huggingface_hub and datasets load inside the functions that need them).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import SetupError

LOCK = "sources.lock.json"
SHA = re.compile(r"^[0-9a-f]{40}$")
AT_FIRST_DOWNLOAD = "recorded at first download"


class DataVerificationError(RuntimeError):
    """A loaded data set is not the one its card describes (rows, classes, labels, images, overlapping ids)."""


class SourceChangedError(SetupError):
    """A source's branch moved since the results folder recorded its commit."""


@dataclass(frozen=True)
class Pin:
    """A Hub repository (`kind` "dataset" or "model") or a file URL ("url") at a commit. `revision`: a 40-hex commit,
    or None (recorded at first download); `cite`: where the commit was found."""

    repo: str
    revision: str | None
    cite: str
    kind: str = "dataset"

    def __post_init__(self) -> None:
        if self.revision is not None and not SHA.match(self.revision):
            raise ValueError(f"{self.repo}: a pinned revision is a 40-hex commit, got {self.revision!r}.")

    @property
    def label(self) -> str:
        return f"{self.repo} @ {self.revision or AT_FIRST_DOWNLOAD}"


@dataclass(frozen=True)
class Expected:
    """The rows per split a data set's card or paper gives (the splits this suite loads), its class count (None:
    not a classification data set), and where both come from."""

    splits: Mapping[str, int]
    num_classes: int | None
    cite: str
    id_key: str | None = None   # a column of ids that must not repeat between train and test

    def text(self) -> str:
        rows = " / ".join(f"{split} {n:,}" for split, n in self.splits.items())
        return rows + (f"; {self.num_classes} classes" if self.num_classes else "")


# --- revisions and the lock file ------------------------------------------------------------------------------------
def overrides(given: list[str] | None) -> dict[str, str]:
    """--revision ID=SHA flags as {id: sha}, or a ValueError saying what is expected."""
    found = {}
    for item in given or []:
        repo, _, sha = item.partition("=")
        if not repo or not SHA.match(sha):
            raise ValueError(f"--revision expects ID=SHA with a 40-hex commit, got {item!r}.")
        found[repo] = sha
    return found


def read_lock(out: str | os.PathLike) -> dict[str, Any]:
    path = Path(out) / LOCK
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as err:
        raise SetupError(f"{path} is not readable JSON ({err}); restore it or remove it to record the sources "
                         "again.") from None


def _write_lock(out: str | os.PathLike, lock: dict[str, Any]) -> None:
    from .results import write_json_atomic

    write_json_atomic(Path(out) / LOCK, lock)


def current_commit(pin: Pin) -> str:
    """The commit the repository's default branch points at now (a network request)."""
    from huggingface_hub import HfApi

    api = HfApi()
    info = api.dataset_info(pin.repo) if pin.kind == "dataset" else api.model_info(pin.repo)
    return info.sha


def resolve(pin: Pin, out: str | os.PathLike | None, given: Mapping[str, str] | None = None,
            allow_change: bool = False, online: bool = True) -> tuple[str | None, str]:
    """(the commit to load, where it comes from): --revision, else the pin, else the lock file under `out` (checked
    against the branch when online: a moved branch is refused unless `allow_change`), else (online) the branch's
    current commit, recorded in the lock file. Offline with neither pin nor lock: (None, why) — the cached copy loads
    and the result says its commit is unknown."""
    if given and pin.repo in given:
        return given[pin.repo], "--revision"
    if pin.revision:
        return pin.revision, pin.cite
    lock = read_lock(out) if out is not None else {}
    recorded = (lock.get(pin.repo) or {}).get("revision")
    if not online:
        return (recorded, f"{LOCK} (recorded {lock[pin.repo]['recorded']})") if recorded else (
            None, "unknown: offline, no pin and no lock file entry (the cached copy is used)")
    now = current_commit(pin)
    if recorded and recorded != now and not allow_change:
        raise SourceChangedError(
            f"{pin.repo} has moved since {Path(out) / LOCK} recorded it ({recorded} -> {now}): the results in {out} "
            "were made with the old data. Write to another --out, or pass --allow-source-change to load the new "
            f"commit here, or --revision {pin.repo}={recorded} to keep the old one.")
    if recorded and recorded == now:
        return recorded, f"{LOCK} (recorded {lock[pin.repo]['recorded']})"
    if out is not None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _write_lock(out, {**lock, pin.repo: {"revision": now, "kind": pin.kind, "recorded": stamp}})
    return now, f"{LOCK} (recorded now: the branch's commit at first download)"


# --- verification ------------------------------------------------------------------------------------------------------
def _labels(data: Any, label_key: str) -> list:
    return list(data[label_key])


def _class_count(data: Any, label_key: str) -> int:
    feature = getattr(data, "features", {}).get(label_key)
    declared = getattr(feature, "num_classes", None)
    return declared or len(set(_labels(data, label_key)))


def verify(name: str, splits: Mapping[str, Any], expected: Expected | None, *, label_key: str | None = "label",
           image_key: str | None = None, accept_subset: bool = False, where: str = "") -> None:
    """Stop with one DataVerificationError unless `splits` (the loaded data set, before any split of our own) is what
    `expected` describes: the rows of every expected split, the class count, the same labels in train and test, images
    that decode to a non-empty picture, no id in both train and test. With `accept_subset`, fewer rows and classes
    pass (a subset on purpose); more never do."""
    if expected is None:
        return
    source = f" ({where})" if where else ""
    hint = (" If this copy is a subset on purpose, pass --accept-subset; otherwise download the data set again "
            "(--data-dir: a complete copy).")
    for split, rows in expected.splits.items():
        if split not in splits:
            raise DataVerificationError(f"Dataset {name!r}{source}: no split {split!r} (found {sorted(splits)}); "
                                        f"expected {expected.text()} ({expected.cite}).")
        found = len(splits[split])
        if found != rows and not (accept_subset and found <= rows):
            raise DataVerificationError(f"Dataset {name!r}{source}, split {split!r}: expected {rows:,} rows "
                                        f"({expected.cite}), found {found:,}." + hint)
    if label_key is None or expected.num_classes is None:
        return
    names = list(expected.splits)
    train, test = names[0], names[-1]
    classes = _class_count(splits[train], label_key)
    if classes != expected.num_classes and not (accept_subset and classes <= expected.num_classes):
        raise DataVerificationError(f"Dataset {name!r}{source}, split {train!r}: expected {expected.num_classes} classes "
                                    f"({expected.cite}), found {classes}." + hint)
    seen = {s: set(_labels(splits[s], label_key)) for s in (train, test)}
    if seen[train] != seen[test]:
        only = sorted(seen[train] ^ seen[test])[:10]
        raise DataVerificationError(f"Dataset {name!r}{source}: splits {train!r} and {test!r} have different label sets "
                                    f"({len(seen[train])} vs {len(seen[test])} labels; in one only: {only}); a copy "
                                    "of another granularity (e.g. FGVC families instead of variants) or a broken "
                                    "download.")
    if image_key is not None:
        _check_images(name, source, splits[train], image_key)
    if expected.id_key and all(expected.id_key in getattr(splits[s], "column_names", ()) for s in (train, test)):
        both = set(splits[train][expected.id_key]) & set(splits[test][expected.id_key])
        if both:
            raise DataVerificationError(f"Dataset {name!r}{source}: {len(both)} id(s) in both {train!r} and {test!r} "
                                        f"(e.g. {sorted(both)[:3]}): test images would be trained on.")


def _check_images(name: str, source: str, data: Any, key: str, sample: int = 8) -> None:
    for i in range(min(sample, len(data))):
        image = data[i][key]
        if getattr(image, "mode", None) not in ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F") or \
                min(getattr(image, "size", (0, 0))) < 1:
            raise DataVerificationError(f"Dataset {name!r}{source}: item {i} is not a decodable image (mode "
                                        f"{getattr(image, 'mode', None)!r}, size {getattr(image, 'size', None)}).")


# --- one message per way a Hub load fails -------------------------------------------------------------------------
def hub_error(err: BaseException, pin: Pin, revision: str | None, instead: str) -> str | None:
    """The message for a failed Hub load of `pin` (None: not a failure this module knows); `instead`: the flag that
    takes a local copy (e.g. "--data-dir DIR (an ImageFolder tree ...)")."""
    from huggingface_hub import errors as hub

    at = f"{pin.repo} @ {revision or 'main'}"
    page = f"https://huggingface.co/{'datasets/' if pin.kind == 'dataset' else ''}{pin.repo}"
    text = str(err)
    if isinstance(err, hub.GatedRepoError) or "gated" in text.lower() and "access" in text.lower():
        return (f"{at} is gated: request access on {page}, then log in with `hf auth login` (or set HF_TOKEN) and "
                f"run again; or pass {instead}.")
    if isinstance(err, (hub.RepositoryNotFoundError, hub.RevisionNotFoundError)) or \
            type(err).__name__ == "DatasetNotFoundError":
        return (f"{at} was not found on the Hub: check the id ({page}) and the revision (a commit of that "
                f"repository), and that you are logged in if it is private; or pass {instead}.")
    if "scripts are no longer supported" in text or "loading script" in text.lower():
        return (f"{at} is a script-based repository, which `datasets` >= 4 no longer runs: load its parquet "
                f"conversion (--revision {pin.repo}=<the commit of refs/convert/parquet>) or download the data and "
                f"pass {instead}.")
    return None
