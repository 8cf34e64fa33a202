"""One flag builder for every suite: the flags that mean the same thing everywhere (--method, --seeds, --lrs,
--out, --dry-run, --device, --no-progress, --data-dir, --model, --model-path, --threads, --save-adapters), the
method-option and recipe flags, and range-checked argparse types.

Nothing heavy is imported here: a suite parses and validates its flags with this module and plain data first, so
a bad flag (an unknown method, a number out of range, a device this machine does not have) fails before torch,
timm or transformers load.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from dataclasses import fields
from glob import glob
from pathlib import Path
from typing import Any

from .catalog import ACTIVATIONS, PRESETS, MethodOptions, check_methods, size_knob
from .recipe import COMMAND_LINE, Recipe
from .sources import LOCK, overrides

DEFAULT_CACHE = Path(".cache") / "neat-peft"   # the smoke suites' generated assets (--cache-dir)


def names(text: str) -> list[str]:
    """A comma list as a list of its non-empty, stripped items."""
    return [t.strip() for t in text.split(",") if t.strip()]


def seed_list(text: str) -> list[int]:
    """--seeds as integers, or a ValueError saying what is expected."""
    try:
        return [int(s) for s in names(text)]
    except ValueError:
        raise ValueError(f"--seeds must be a comma list of integers, got {text!r}.") from None


def numbers(text: str) -> tuple[float, ...]:
    """A comma list of numbers (argparse type of --lrs)."""
    try:
        values = tuple(float(t) for t in names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of numbers such as 1e-3,3e-3,1e-2, got {text!r}")
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _bounded(kind: type, what: str, low: float, high: float = math.inf, above: bool = False
             ) -> Callable[[str], Any]:
    """An argparse type: `kind(text)` with low <= value < high (low < value when `above`), else an argparse error
    saying what was expected."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not (low < value if above else low <= value) or not value < high:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive_int = _bounded(int, "a positive integer", 1)
nonnegative_int = _bounded(int, "a non-negative integer", 0)
positive_float = _bounded(float, "a positive number", 0.0, above=True)
nonnegative_float = _bounded(float, "a non-negative number", 0.0)
fraction = _bounded(float, "a number from 0 to below 1", 0.0, 1.0)


def depth_value(text: str) -> int:
    """NEAT's --depth: an even integer >= 2, counted as the paper does (argparse type)."""
    value = positive_int(text)
    if value < 2 or value % 2:
        raise argparse.ArgumentTypeError(f"expected an even integer >= 2 (2 = A, B; 4 = A, e1, d1, B; ...), "
                                         f"got {text!r}")
    return value


def scale_value(text: str) -> float | str:
    """NEAT's --scale: a finite non-zero number or "auto" (argparse type)."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value == 0:
        raise argparse.ArgumentTypeError(f"expected a finite non-zero number or 'auto', got {text!r}")
    return value


# --- the device -------------------------------------------------------------------------------------------
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")   # what core.loop.accelerator_for and benchmarks.speed run on


def visible_cuda_devices() -> int:
    """How many CUDA GPUs this process can see, read without importing torch: the NVIDIA device files, narrowed by
    CUDA_VISIBLE_DEVICES (a light check; torch confirms it once it is loaded)."""
    found = len(glob("/dev/nvidia[0-9]*"))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        listed = [v for v in names(visible) if v != "-1"]
        found = min(found, len(listed)) if not visible.strip().startswith("-1") else 0
    return found


def available_devices() -> list[str]:
    count = visible_cuda_devices()
    return ["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(count)] if count else [])


def device_value(text: str) -> str:
    """--device: a torch device this machine has (argparse type): cpu, cuda, cuda:N."""
    if not DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"expected a torch device such as cpu, cuda or cuda:1, got {text!r}")
    available = available_devices()
    missing = text != "cpu" and text not in available
    if missing:
        raise argparse.ArgumentTypeError(f"{text} is not available on this machine; available: "
                                         f"{', '.join(available)}")
    return text


def check_device_loaded(requested: str | None) -> None:
    """After torch is loaded: a SetupError when the requested CUDA device is not usable by this torch build (the
    light check above only saw device files)."""
    if requested is None or not requested.startswith("cuda"):
        return
    import torch

    from .errors import SetupError

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(requested.partition(":")[2] or 0)
    if index >= count:
        usable = ["cpu"] + [f"cuda:{i}" for i in range(count)]
        raise SetupError(f"--device {requested} is not usable with this torch build ({torch.__version__}, CUDA "
                         f"{torch.version.cuda or 'none'}); usable: {', '.join(usable)}.")


# --- method options and recipe values ------------------------------------------------------------------------
RECIPE_FLAGS: dict[str, Callable[[str], Any]] = {
    "epochs": positive_int, "batch_size": positive_int, "lr": positive_float, "head_lr": positive_float,
    "weight_decay": nonnegative_float, "clip_grad": nonnegative_float, "warmup_steps": nonnegative_int}
CLASSIFIER_RECIPE = ("epochs", "batch_size", "lr", "head_lr", "weight_decay", "clip_grad")
# MethodOptions fields whose flag is not simply a positive int / positive number / string / comma list
OPTION_TYPES: dict[str, Callable[[str], Any]] = {"scale": scale_value, "depth": depth_value,
                                                 "lora_dropout": fraction, "lora_alpha": positive_float}


def _option_type(f) -> Callable[[str], Any]:
    if f.name in OPTION_TYPES:
        return OPTION_TYPES[f.name]
    if isinstance(f.default, tuple):
        return lambda text: tuple(names(text))
    return {int: positive_int, float: positive_float}.get(type(f.default), type(f.default))


def add_option_flags(p: argparse.ArgumentParser, skip: tuple[str, ...] = (),
                     recipe: tuple[str, ...] = CLASSIFIER_RECIPE) -> None:
    """--<field> for every MethodOptions field (but `skip`) and the recipe values named in `recipe`; numbers are
    range-checked by argparse, names by `check_options`."""
    for f in fields(MethodOptions):
        if f.name not in skip:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=_option_type(f),
                           help=f"method option (default {f.default})")
    for name in recipe:
        p.add_argument(f"--{name.replace('_', '-')}", type=RECIPE_FLAGS[name], help="recipe override (default: "
                       "recipe table" + ("; 0 turns clipping off)" if name == "clip_grad" else ")"))


def check_options(args: argparse.Namespace, methods: list[str]) -> None:
    """A ValueError for a --preset or --activation that does not exist (plain data: catalog.py), or --scale auto
    with a method that takes one number only (PEFT's peanut)."""
    for flag, known in (("preset", PRESETS), ("activation", ACTIVATIONS)):
        value = getattr(args, flag, None)
        if value is not None and value not in known:
            raise ValueError(f"Unknown {flag} {value!r}; choose from {', '.join(known)}.")
    if getattr(args, "scale", None) == "auto" and "peanut" in methods:
        raise ValueError("--scale auto is NEAT's: PEFT's peanut takes one number. Drop peanut from --method or "
                         "give --scale a number.")


def check_match(method: str | None, known: tuple[str, ...]) -> str | None:
    """The --match-params reference among the `known` methods (None for 'none'), or a ValueError."""
    if method in (None, "none"):
        return None
    if method not in known or size_knob(method) is None:
        choices = [m for m in known if size_knob(m)]
        raise ValueError(f"--match-params {method}: not a method of this suite with an adapter size; choose from "
                         f"{', '.join(choices)}.")
    return method


def method_options(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> MethodOptions:
    """MethodOptions from `defaults` (a recipe's options), then the flags given on the command line."""
    given = {f.name: getattr(args, f.name) for f in fields(MethodOptions) if getattr(args, f.name, None) is not None}
    return MethodOptions(**{**(defaults or {}), **given})


def with_recipe_flags(args: argparse.Namespace, recipe: Recipe) -> Recipe:
    """`recipe` with the values given on the command line (cited as such): --lrs replaces the grid; giving the
    swept value itself (--lr, or --head-lr for the linear probe) without --lrs trains that value only; method
    options the recipe holds (--rank, --lora-r, ...) replace its values, so a result records what ran."""
    given = {k: getattr(args, k) for k in RECIPE_FLAGS if getattr(args, k, None) is not None}
    if "clip_grad" in given and given["clip_grad"] <= 0:
        given["clip_grad"] = None
    if getattr(args, "micro_batch", None) and recipe.micro_batch is not None:
        given["micro_batch"] = args.micro_batch
    if getattr(args, "lrs", None):
        given["lrs"] = tuple(args.lrs)
    elif recipe.sweep in given:
        given["lrs"] = ()
    recipe = recipe.with_values(COMMAND_LINE, **given) if given else recipe
    options = {k: getattr(args, k) for k in recipe.options if getattr(args, k, None) is not None}
    return recipe.with_options(COMMAND_LINE, **options) if options else recipe


# --- the flags every suite shares ----------------------------------------------------------------------------
def suite_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_run_flags(p: argparse.ArgumentParser, out_help: str) -> None:
    """--seeds, --out, --dry-run: what to run and where its results go."""
    p.add_argument("--seeds", help="comma list of seeds (mean ± std in the report; default: the "
                   "suite's, shown by --dry-run)")
    p.add_argument("--out", help=out_help)
    p.add_argument("--dry-run", action="store_true", help="list the plan (runs, lr grids, batches, data sources; the "
                   "classifier suites also each adapter's exact parameters) without data or training")


def add_source_flags(p: argparse.ArgumentParser, data_help: str, model_help: str, path_help: str) -> None:
    """--data-dir, --model, --model-path: where data and the pretrained model come from."""
    p.add_argument("--data-dir", help=data_help)
    p.add_argument("--model", help=model_help)
    p.add_argument("--model-path", help=path_help)


def add_pin_flags(p: argparse.ArgumentParser) -> None:
    """--revision, --allow-source-change, --accept-subset: which commit of a source loads, and what a run accepts."""
    p.add_argument("--revision", action="append", metavar="ID=SHA", help="load Hub data set, model or GitHub "
                   "repository ID at commit SHA instead of its pin (repeatable); the results and OUT/" + LOCK
                   + " record it")
    p.add_argument("--allow-source-change", action="store_true", help=f"run although OUT/{LOCK} records another "
                   "commit of a source (its branch moved, or another pin or --revision); the lock file then records "
                   "the new one")
    p.add_argument("--accept-subset", action="store_true", help="train on data with fewer rows or classes than the "
                   "data set's card lists (on purpose: a subset); otherwise such data stops the run")


def check_pins(args: argparse.Namespace) -> None:
    """--revision flags as args.revisions ({id: sha}), or a ValueError."""
    args.revisions = overrides(getattr(args, "revision", None))


def add_sweep_flags(p: argparse.ArgumentParser, micro_help: str, match: bool = True) -> None:
    """--lrs, --match-params (unless `match` is False), --micro-batch."""
    p.add_argument("--lrs", type=numbers, help="comma list of learning rates every method sweeps (default: each "
                   "recipe's grid, or its published lr); the lr with the best validation score is reported")
    if match:
        p.add_argument("--match-params", metavar="METHOD", help="size every other method's adapter (LoRA/DoRA r, "
                       "NEAT rank, FourierFT n, VeRA r) to METHOD's trainable parameters; 'none' turns it off")
    p.add_argument("--micro-batch", type=positive_int, help=micro_help)


def add_process_flags(p: argparse.ArgumentParser, workers: bool = True) -> None:
    """--workers, --threads, --device, --no-progress."""
    if workers:
        p.add_argument("--workers", type=nonnegative_int, help="DataLoader workers per process (default: the "
                                                               "suite's)")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: the suite's, else torch's)")
    p.add_argument("--device", type=device_value, help="torch device: cpu, cuda or cuda:N (default cuda when "
                                                       "available); one this machine lacks is refused at once")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_save_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--save-adapters", help="comma list of methods whose trained adapters are saved under "
                                           "OUT/adapters/ (default: the suite's; 'none' for none)")


def chosen(text: str | None, default: tuple[str, ...] | list[str]) -> list[str]:
    """A comma-list flag's items, else `default`; 'none' for none."""
    if text is None:
        return list(default)
    return [] if text == "none" else names(text)


def check_paths(args: argparse.Namespace) -> None:
    """A ValueError for a --data-dir or --model-path that does not exist (checked before anything loads)."""
    for flag in ("data_dir", "model_path"):
        value = getattr(args, flag, None)
        if value and not Path(value).exists():
            raise ValueError(f"--{flag.replace('_', '-')} {value} does not exist.")


def check_suite(args: argparse.Namespace, known: tuple[str, ...], items: list[str], recipe: Callable[[str, str], Any],
                what: str) -> None:
    """The checks of a classifier suite's flags, each a ValueError: seeds, method names (--save-adapters' too), a
    recipe for every (method, dataset or task), --match-params, option names, paths, nothing empty."""
    args.seeds = seed_list(args.seeds or "0")
    check_methods(args.methods + args.save_adapters, known)
    for method in args.methods:
        for item in items:
            recipe(method, item)
    args.match_params = check_match(args.match_params, known)
    check_options(args, args.methods)
    check_paths(args)
    check_pins(args)
    if not (args.methods and items and args.seeds):
        raise ValueError(f"--method, {what} and --seeds each need at least one value.")
