"""The recorded schemas of the suites' data sets (tests/suites/data/schemas, see its README) and a stand-in for the
Hub at the one call every loader makes, `datasets.load_dataset`.

Each JSON file is one repository: per config (a Hub config, "default", or a GitHub file's path) its split names, its
features in `datasets.Features.to_dict()` form and a few rows per split the suites use. Image columns are left out of
the rows and made here: an 8x8 RGB picture per row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SCHEMAS = Path(__file__).resolve().parents[1] / "suites" / "data" / "schemas"
RAW = "https://raw.githubusercontent.com/"


def recorded(repo: str) -> dict[str, Any]:
    """The recorded file of repository `repo` ("owner/name")."""
    return json.loads((SCHEMAS / (repo.replace("/", "__") + ".json")).read_text())


def config(repo: str, name: str | None = None) -> dict[str, Any]:
    """One config of `repo` (None: its only one)."""
    configs = recorded(repo)["configs"]
    return configs[name] if name is not None else next(iter(configs.values()))


def rows(repo: str, name: str | None, split: str) -> list[dict[str, Any]]:
    return config(repo, name)["rows"][split]


def dataset(repo: str, name: str | None, split: str, renames: dict[str, str] | None = None) -> Any:
    """The recorded rows of one split as a `datasets.Dataset` with the recorded features (images made here);
    `renames`: columns named otherwise, in their places (as an upstream rename leaves them)."""
    import datasets
    from PIL import Image

    conf, new = config(repo, name), (lambda key: (renames or {}).get(key, key))
    features = datasets.Features.from_dict({new(key): value for key, value in conf["features"].items()})
    data = []
    for i, row in enumerate(conf["rows"][split]):
        row = {new(key): value for key, value in row.items()}
        picture = Image.new("RGB", (8, 8), (40 * i, 100, 200))
        data.append({key: picture if isinstance(feature, datasets.Image) else row[key]
                     for key, feature in features.items()})   # in the features' order
    return datasets.Dataset.from_list(data, features=features)


def write_rows(path: Path, data: list[dict[str, Any]]) -> Path:
    """`data` as a JSON list (.json) or JSON lines (.jsonl), as the lineage's files hold them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in data))
    else:
        path.write_text(json.dumps(data, indent=1))
    return path


class RecordedHub:
    """Stands in for `datasets.load_dataset`: a recorded Hub repository (its config, the splits asked for) or a raw
    GitHub file of a recorded repository is answered from the recorded rows, a GitHub file through the real JSON
    reader; local files go to the real function; anything else fails the test. Every Hub and GitHub request is
    logged in `calls` as (repository, config or file path, revision, split(s)); `renames[repo]` ({old: new})
    renames columns of what a Hub repository answers (an upstream rename), `dropped[repo]` names splits it lacks
    (a copy of another layout)."""

    def __init__(self, real: Any, folder: Path) -> None:
        self.real, self.folder = real, folder
        self.calls: list[tuple[str, str | None, str | None, Any]] = []
        self.renames: dict[str, dict[str, str]] = {}
        self.dropped: dict[str, set[str]] = {}

    def __call__(self, path: str, name: str | None = None, *, revision: str | None = None, split: Any = None,
                 data_files: Any = None, **kwargs: Any) -> Any:
        from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

        if isinstance(data_files, str) and data_files.startswith(RAW):
            return self._github(data_files, split, path, **kwargs)
        if not (SCHEMAS / (path.replace("/", "__") + ".json")).is_file():
            if path in _PACKAGED_DATASETS_MODULES and revision is None:   # a local copy (--data-dir)
                return self.real(path, name, split=split, data_files=data_files, **kwargs)
            pytest.fail(f"a request for {path!r}, which has no recorded schema")
        self.calls.append((path, name, revision, split))
        if split is None:
            pytest.fail(f"{path}: every split of the repository asked for; the loaders name the splits they use")
        splits = [s for s in config(path, name)["splits"] if s not in self.dropped.get(path, ())]
        parts = [split] if isinstance(split, str) else list(split)
        unknown = [s for s in parts if s not in splits]
        if unknown:   # datasets' words for a split the repository lacks
            raise ValueError(f'Unknown split "{unknown[0]}". Should be one of {splits}.')
        loaded = [dataset(path, name, s, self.renames.get(path)) for s in parts]
        return loaded[0] if isinstance(split, str) else loaded

    def _github(self, url: str, split: Any, builder: str, **kwargs: Any) -> Any:
        owner, repo, revision, file = url[len(RAW):].split("/", 3)
        self.calls.append((f"{owner}/{repo}", file, revision, split))
        local = write_rows(self.folder / revision / file, rows(f"{owner}/{repo}", file, "train"))
        return self.real(builder, data_files=str(local), split=split, **kwargs)
