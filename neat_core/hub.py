"""The Hugging Face Hub: `push_to_hub` uploads an adapter with a model card; `resolve_adapter` turns a local
folder or a Hub repo id into a folder (through huggingface_hub's cache; HF_HUB_OFFLINE is honoured)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import NeatConfig
from .io import CONFIG_NAME, WEIGHTS_NAME, library_version, save_adapter

# "owner/name" as the Hub spells repo ids; anything else is taken for a local path.
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
DEFAULT_COMMIT_MESSAGE = "Upload NEAT adapter"


class AdapterNotFoundError(FileNotFoundError):
    """An adapter repo that can be neither downloaded nor found in the local Hugging Face cache."""


# --- download ------------------------------------------------------------------------------------------
def is_repo_id(value: str | os.PathLike) -> bool:
    """Whether `value` names a Hub repo ("owner/name") rather than an existing local path."""
    return isinstance(value, str) and REPO_ID.fullmatch(value) is not None and not Path(value).exists()


def resolve_adapter(repo_id_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """The local folder holding the adapter: `repo_id_or_path` itself when it is a path, else the
    huggingface_hub cache snapshot of the repo's adapter_config.json + adapter_model.safetensors at
    `revision` (branch, tag or commit; default main), downloaded if needed."""
    if not is_repo_id(repo_id_or_path):
        if revision is not None:
            raise ValueError(f"revision={revision!r} applies to Hub repo ids; {str(repo_id_or_path)!r} is a local "
                             "path.")
        return Path(repo_id_or_path)
    return _download(str(repo_id_or_path), revision)


def _download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    at = f"{repo_id}@{revision}" if revision else repo_id
    kw = dict(library_name="neat-peft", library_version=library_version())
    try:
        config_file = hf_hub_download(repo_id, CONFIG_NAME, revision=revision, **kw)
        commit = Path(config_file).parent.name  # cache layout: snapshots/<commit>/<file>
        hf_hub_download(repo_id, WEIGHTS_NAME, revision=commit, **kw)
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE=1 is set" if constants.is_offline_mode() else "the Hub cannot be reached"
        raise AdapterNotFoundError(
            f"Adapter {at!r} is neither a local folder nor in the Hugging Face cache ({constants.HF_HUB_CACHE}), "
            f"and {why}. To work offline, download it once while online (`hf download {repo_id} "
            f"{CONFIG_NAME} {WEIGHTS_NAME}`), point HF_HUB_CACHE at a cache that has it, or pass the path of a "
            "folder written by neat_core.save_adapter.") from None
    except RevisionNotFoundError:
        raise AdapterNotFoundError(f"Adapter repo {repo_id!r} has no revision {revision!r}.") from None
    except RepositoryNotFoundError:
        raise AdapterNotFoundError(
            f"No Hub repo {repo_id!r} (nor a local folder of that name); if it is private or gated, log in "
            "with `hf auth login` or pass a token.") from None
    except EntryNotFoundError:
        raise AdapterNotFoundError(f"Hub repo {at!r} is not a NEAT adapter: it lacks {CONFIG_NAME} or "
                                   f"{WEIGHTS_NAME}.") from None
    except HfHubHTTPError as err:
        raise AdapterNotFoundError(f"Could not download adapter {at!r} from the Hub: {err}") from None
    return Path(config_file).parent


def saved_classes(config: NeatConfig, tensors: dict[str, torch.Tensor]) -> int | None:
    """The class count of the head saved with an adapter: output rows of the last weight (by name) inside the
    last of `modules_to_save` that has one (timm `head`, HF `classifier`, `classifier.out_proj`, `score`)."""
    for module in reversed(config.modules_to_save):
        weights = sorted(k for k, t in tensors.items() if k.startswith(f"{module}.") and k.endswith("weight")
                         and t.ndim >= 2)
        if weights:
            return int(tensors[weights[-1]].shape[0])
    return None


# --- upload --------------------------------------------------------------------------------------------
def _framework(model: nn.Module) -> str | None:
    if isinstance(getattr(model, "pretrained_cfg", None), dict):
        return "timm"
    if hasattr(getattr(model, "config", None), "model_type"):
        return "transformers"
    return None


def _hub_base_model(model: nn.Module, meta: dict[str, Any]) -> str | None:
    """The base model as a Hub repo id for the card's `base_model` (timm's hf_hub_id, HF name_or_path)."""
    hub_id = (getattr(model, "pretrained_cfg", None) or {}).get("hf_hub_id")
    candidate = hub_id or meta.get("base_model")
    return candidate if isinstance(candidate, str) and REPO_ID.fullmatch(candidate) else None


def read_results(results: str | os.PathLike | dict | list | None) -> list[dict[str, Any]]:
    """Benchmark results (dicts, or paths of result JSON files) as a list; each needs a numeric `accuracy`
    (benchmarks.vtab) or `metric` + `score` (benchmarks.glue)."""
    if results is None:
        return []
    items = results if isinstance(results, list) else [results]
    found = []
    for item in items:
        if not isinstance(item, dict):
            try:
                item = json.loads(Path(item).read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise ValueError(f"results: cannot read benchmark result JSON {str(item)!r} ({err}).") from None
        if not isinstance(item, dict) or metric(item) is None:
            raise ValueError(f"results: a benchmark result needs a numeric 'accuracy' (or 'metric' and 'score'), "
                             f"got {item!r:.200}.")
        found.append(item)
    return found


def metric(result: dict[str, Any]) -> tuple[str, float] | None:
    """(metric name, value) of a benchmark result: its `metric` and `score` if given, else `accuracy`."""
    name, value = (result.get("metric"), result.get("score")) if "score" in result else ("accuracy",
                                                                                         result.get("accuracy"))
    if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return name, float(value)


def _title(result: dict[str, Any]) -> str:
    """A result's dataset name for people: benchmarks.vtab's config.data.title, else its dataset key."""
    data = (result.get("config") or {}).get("data") or {}
    return str(data.get("title") or result.get("dataset") or "unknown")


def _usage(repo_id: str, framework: str | None) -> str:
    if framework in ("timm", "transformers"):
        front = {"timm": "neat_vision", "transformers": "neat_text"}[framework]
        return (f"import {front}\n\n"
                f"model = {front}.from_pretrained(\"{repo_id}\")  # base model + this adapter, ready to use")
    return ("import neat_core\n\n"
            f"neat_core.load_adapter(model, \"{repo_id}\")  # model: the base model the adapter was trained on")


def model_card(meta: dict[str, Any], repo_id: str, results: list[dict[str, Any]] = (),
               base_model: str | None = None, framework: str | None = None) -> str:
    """README.md for an adapter repo: YAML metadata (library_name, base_model, tags, model-index with the
    results' metrics) and a body that shows how to load it."""
    from huggingface_hub import EvalResult, ModelCardData

    task = "text-classification" if framework == "transformers" else "image-classification"
    evals = [EvalResult(task_type=task, dataset_type=str(r.get("dataset", "unknown")), dataset_name=_title(r),
                        metric_type=metric(r)[0], metric_value=metric(r)[1]) for r in results]
    data = ModelCardData(library_name="neat-peft", base_model=base_model,
                         tags=["neat", "peft", *([framework] if framework else [])],
                         metrics=list(dict.fromkeys(e.metric_type for e in evals)) or None,
                         model_name=repo_id if evals else None,
                         eval_results=evals or None)
    config = meta["config"]
    rows = "\n".join(f"| {_title(r)} | {metric(r)[0]} | {metric(r)[1]:.4f} |" for r in results)
    metrics = f"\n## Results\n\n| dataset | metric | value |\n|---|---|---|\n{rows}\n" if results else ""
    return (f"---\n{data.to_yaml()}\n---\n\n# {repo_id}\n\n"
            f"A [NEAT](https://arxiv.org/abs/2410.01870) adapter (nonlinear parameter-efficient fine-tuning, "
            f"made with neat-peft) for `{meta.get('base_model') or meta.get('model_class')}`: "
            f"rank {config['rank']}, depth {config['depth']}, activation `{config['activation']}`, "
            f"targets `{', '.join(config['targets'])}`; trained modules saved with it: "
            f"`{', '.join(config['modules_to_save']) or 'none'}`.\n{metrics}\n"
            f"## Load it\n\n```python\n{_usage(repo_id, framework)}\n```\n\n"
            f"Files: `{CONFIG_NAME}` (config) and `{WEIGHTS_NAME}` (adapter and head weights, safetensors).\n")


def push_to_hub(model: nn.Module, repo_id: str, private: bool = False,
                results: str | os.PathLike | dict | list | None = None,
                commit_message: str = DEFAULT_COMMIT_MESSAGE, adapter: str | None = None,
                token: str | None = None, revision: str | None = None):
    """Upload `adapter` (default: the active one) of `model` to Hub repo `repo_id` (created if missing) with
    a generated model card README.md; `results`: benchmark result JSON path(s) or dict(s) whose metric goes
    into the card. Returns huggingface_hub's CommitInfo. The adapter and results are checked before any
    network call."""
    from huggingface_hub import HfApi

    if not isinstance(repo_id, str) or REPO_ID.fullmatch(repo_id) is None:
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r}.")
    found = read_results(results)
    with tempfile.TemporaryDirectory(prefix="neat-push-") as tmp:
        folder = save_adapter(model, tmp, adapter)
        meta = json.loads((folder / CONFIG_NAME).read_text())
        card = model_card(meta, repo_id, found, _hub_base_model(model, meta), _framework(model))
        (folder / "README.md").write_text(card)
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                                 revision=revision)
