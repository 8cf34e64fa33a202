"""The Hugging Face Hub, upload side: `push_to_hub` uploads an adapter with a generated model card.

Downloads live in `remote` (one probe; when offline, cache lookups that make no request) and
`io.resolve_adapter`; the names are re-exported here for code that imports them from neat_core.hub.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from .io import CONFIG_NAME, WEIGHTS_NAME, resolve_adapter, save_adapter, saved_classes
from .remote import (REPO_ID, AdapterNotFoundError, HubUnreachableError, hub_unavailable_reason, is_repo_id,
                     network_errors)

__all__ = ["AdapterNotFoundError", "HubUnreachableError", "is_repo_id", "model_card", "push_to_hub", "read_results",
           "resolve_adapter", "saved_classes"]

DEFAULT_COMMIT_MESSAGE = "Upload NEAT adapter"


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
    network call; without network (or with HF_HUB_OFFLINE) one HubUnreachableError says so and nothing is sent."""
    from huggingface_hub import HfApi

    if not isinstance(repo_id, str) or REPO_ID.fullmatch(repo_id) is None:
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r}.")
    found = read_results(results)
    with tempfile.TemporaryDirectory(prefix="neat-push-") as tmp:
        folder = save_adapter(model, tmp, adapter)
        meta = json.loads((folder / CONFIG_NAME).read_text())
        card = model_card(meta, repo_id, found, _hub_base_model(model, meta), _framework(model))
        (folder / "README.md").write_text(card)
        why = hub_unavailable_reason()
        if why is not None:
            raise _push_error(repo_id, why)
        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            return api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                                     revision=revision)
        except network_errors() as err:
            raise _push_error(repo_id, f"the connection failed ({type(err).__name__}: {err})") from None


def _push_error(repo_id: str, why: str) -> HubUnreachableError:
    return HubUnreachableError(
        f"Cannot push to Hub repo {repo_id!r}: {why}. Nothing was uploaded (a repo may have been created). Save the "
        "adapter locally with neat_core.save_adapter(model, folder) and upload that folder when online "
        f"(`hf upload {repo_id} folder`).")
