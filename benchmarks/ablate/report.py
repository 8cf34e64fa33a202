"""The ablation suite's report: per study a table shaped like the paper's figure (with parameter counts and the
paper's statements where they are citable), the lr chosen per cell (core.report.selection_table), summary.json and a
plot shaped like the figure: accuracy vs depth (one line per dataset), else grouped bars per dataset.

Rows come from core.report.summarise on the study's results (each variant at its selected lr, or the recipe's lr for
the depth study); the scale study adds each NEAT variant at LoRA's selected lr ("at LoRA's lr"), read from the
same sweep (NEAT's grid holds LoRA's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.published import rows_for
from ..core.report import (PARAMS_NOTE, SUMMARY_NAME, TABLE_NAME, Shape, cell_text, count_text, selection_note,
                           selection_table, summarise, titles)
from ..core.results import load_results, write_json_atomic, write_text_atomic
from ..core.sweep import choose
from ..glue.shape import SHAPE as GLUE
from ..vtab.published import ROWS, STUDY_CLAIMS
from ..vtab.shape import SHAPE as VTAB
from .studies import STUDIES

AT_LORA = " @ LoRA's lr"


@dataclass(frozen=True)
class Row:
    """One row of a study table: its label, the summary row it reads (report.summarise), and its options."""

    label: str
    key: str
    options: dict[str, Any]


def shape_of(results: list[dict[str, Any]]) -> Shape:
    """The GLUE suite's shape when the study ran on GLUE tasks, else the image suite's."""
    return GLUE if results and all(r["suite"] == "glue" for r in results) else VTAB


def study_results(out: str | os.PathLike, study: str,
                  results: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The finished results under `out` (`results`: those already read from it) that belong to `study`."""
    return [r for r in (load_results(out) if results is None else results)
            if (r.get("config") or {}).get("study") == study]


def order(study: str) -> tuple[str, ...]:
    """The study's variant names in its order (for tables)."""
    return tuple(dict.fromkeys(v.name for vs in STUDIES[study].variants.values() for v in vs))


def _variants_in_order(results: list[dict[str, Any]], study: str) -> list[dict[str, Any]]:
    """Each variant's record ({name, label, method, options}) in the study's order."""
    found = {r["config"]["variant"]["name"]: r["config"]["variant"] for r in results}
    known = order(study)
    return [found[n] for n in sorted(found, key=lambda n: known.index(n) if n in known else len(known))]


def at_lora_lr(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The NEAT variants' results at the lr LoRA selected on each dataset, renamed "<variant> @ LoRA's lr"."""
    chosen = {d: lr for (m, d), lr in choose(results).items() if m == "lora"}
    return [{**r, "method": r["method"] + AT_LORA} for r in results
            if r["method"] != "lora" and r["dataset"] in chosen and r.get("lr") == chosen[r["dataset"]]]


def rows(results: list[dict[str, Any]], study: str) -> tuple[list[Row], dict[str, Any]]:
    """The table's rows and the summary they read."""
    variants = _variants_in_order(results, study)
    extra = at_lora_lr(results) if study == "scale" else []
    summary = summarise(results + extra, shape_of(results), order(study))
    options = {r["method"]: (r.get("config") or {}).get("method_options", {}) for r in results}
    found = []
    for v in variants:
        if study == "scale":
            found.append(Row(f"{v['label']}, own lr", v["name"], options[v["name"]]))
            if v["name"] + AT_LORA in summary["rows"]:
                found.append(Row(f"{v['label']}, at LoRA's lr", v["name"] + AT_LORA, options[v["name"]]))
        else:
            found.append(Row(v["label"], v["name"], options[v["name"]]))
    return found, summary


def _cell(cell: dict[str, Any], with_lr: bool) -> str:
    return cell_text(cell) + (f" (lr {cell['lr']:g})" if with_lr and cell.get("lr") is not None else "")


def study_table(results: list[dict[str, Any]], study: str) -> str:
    """The paper-shaped table with its notes."""
    found, summary = rows(results, study)
    datasets, named = summary["datasets"], titles(results)
    first = {"depth": "Depth", "activation": "Activation", "targets": "Adapted modules", "scale": "Setting"}[study]
    rank = study == "targets"
    heads = [named.get(d, d) for d in datasets] + (["Avg."] if len(datasets) > 1 else [])
    lines = [f"| {first} | " + ("Rank | " if rank else "") + "Params | " + " | ".join(heads) + " |",
             "|---|" + ("---:|" if rank else "") + "---:|" + "---:|" * len(heads)]
    for row in found:
        data = summary["rows"][row.key]
        cells = [_cell(data["cells"][d], study == "scale") if d in data["cells"] else "—" for d in datasets]
        if len(datasets) > 1:
            cells.append(f"{data['average']:.1f}" + ("" if data["complete"] else "*"))
        lines.append(f"| {row.label} | " + (f"{row.options.get('rank', '—')} | " if rank else "")
                     + f"{count_text(data['method_params'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + notes(results, study, found, summary)) + "\n"


def notes(results: list[dict[str, Any]], study: str, found: list[Row], summary: dict[str, Any]) -> list[str]:
    shape, seeds = shape_of(results), sorted({r["seed"] for r in results})
    text = [f"{shape.score}, seeds {', '.join(map(str, seeds))}" + (" (mean ± std)." if len(seeds) > 1 else "."),
            PARAMS_NOTE]
    if STUDIES[study].lrs == "recipe":
        text.append("Every variant trains at the recipe's lr (the same hyper-parameters for all, as the paper).")
    else:
        text.append(selection_note(shape, "row"))
    if shape is GLUE:
        text.append("GLUE: every variant (LoRA at its single published lr too) trains on train less a seeded "
                    "held-out slice and chooses its lr and epoch there; the reported validation score (MNLI: "
                    "matched) chooses nothing.")
        text += GLUE.result_notes(results)
    if study == "targets":
        text.append("NEAT's rank is set per target set so its trainable parameters are as close to q, v's as the "
                    "rank allows (benchmarks.core.budget.match_to).")
    if study == "scale":
        text.append("At LoRA's lr: the NEAT variant's runs at the lr LoRA selected on the same dataset; LoRA is sized "
                    "to s = 1's adapter parameters and sweeps the same grid.")
        text += scale_findings(summary, found, titles(results)) + auto_scale_line(results)
    if study == "activation":
        text += activation_findings(summary, found, titles(results))
    text += paper_lines(results, study)
    return text


def activation_findings(summary: dict[str, Any], found: list[Row], named: dict[str, str]) -> list[str]:
    """On how many datasets sin(2πx) scores above ReLU (each at its selected lr)."""
    cells = {r.key: summary["rows"][r.key]["cells"] for r in found}
    if set(cells) != {"neat-relu", "neat-sin"}:
        return []
    both = [d for d in summary["datasets"] if d in cells["neat-relu"] and d in cells["neat-sin"]]
    wins = [named.get(d, d) for d in both if cells["neat-sin"][d]["mean"] > cells["neat-relu"][d]["mean"]]
    return [f"Here sin(2πx) beats ReLU on {len(wins)} of {len(both)} dataset(s)"
            + (f" ({', '.join(wins)})." if wins else ".")]


def scale_findings(summary: dict[str, Any], found: list[Row], named: dict[str, str]) -> list[str]:
    """The lrs each variant selected: whether s = auto selects LoRA's lr where s = 1 does not."""
    lines = []
    for d in summary["datasets"]:
        chosen = {r.key: summary["rows"][r.key]["cells"][d]["lr"] for r in found
                  if not r.key.endswith(AT_LORA) and d in summary["rows"][r.key]["cells"]}
        lines.append(f"Selected lrs on {named.get(d, d)}: " + ", ".join(f"{k} {lr:g}" for k, lr in chosen.items())
                     + ".")
    return lines


def auto_scale_line(results: list[dict[str, Any]]) -> list[str]:
    """What s = auto came out as on this backbone (the runs' `auto_scales`; the same A init per seed)."""
    found = [r["auto_scales"] for r in results if r.get("auto_scales")]
    if not found:
        return []
    return [f"s = auto came out as {sum(f['mean'] for f in found) / len(found):.3g} on average per slice on this "
            f"backbone (from {min(f['min'] for f in found):.3g} to {max(f['max'] for f in found):.3g}; "
            f"{found[0]['count']} slices), where s = 1 is the paper's and PEFT's default."]


def paper_lines(results: list[dict[str, Any]], study: str) -> list[str]:
    """Published numbers for the same variant and backbone (benchmarks/vtab/published.py), and the paper's words."""
    found = []
    for r in {r["method"]: r for r in results}.values():
        config = r.get("config") or {}
        variant = config["variant"]
        for pub in rows_for(ROWS, variant["method"], config.get("model", ""), config.get("method_options", {}),
                            r["method_params"]):
            if pub.options and all(variant["options"].get(k) == v for k, v in pub.options.items()):
                cells = ", ".join(f"{d} {score:.2f}" for d, score in pub.scores.items())
                found.append(f"Published, {pub.label}: {cells} ({pub.source}), beside our {variant['label']} row.")
    if study in STUDY_CLAIMS:
        claim, source = STUDY_CLAIMS[study]
        found.append(f"The paper ({source}): {claim}. Compare on its backbone and datasets only.")
    return found


# --- the plot ---------------------------------------------------------------------------------------------
def plot(results: list[dict[str, Any]], study: str, path: str | os.PathLike) -> Path:
    """Accuracy vs depth (one line per dataset, the published depth-6 point where there is one), else grouped bars
    per dataset (one bar per row, its parameters in the legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found, summary = rows(results, study)
    shape, named = shape_of(results), titles(results)
    datasets = summary["datasets"]
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.4, 1.0 + 0.5 * len(datasets) * len(found))), 4.4), dpi=120)
    if study == "depth":
        depths = [r.options.get("depth") for r in found]
        for d in datasets:
            points = [(x, summary["rows"][r.key]["cells"][d]) for x, r in zip(depths, found)
                      if d in summary["rows"][r.key]["cells"]]
            ax.errorbar([x for x, _ in points], [c["mean"] for _, c in points], [c["std"] for _, c in points],
                        marker="o", capsize=3, label=named.get(d, d))
        for line in paper_points(results):
            ax.scatter([line[0]], [line[1]], marker="*", s=120, zorder=3, label=line[2])
        ax.set_xticks(depths, [f"{x}\n{count_text(summary['rows'][r.key]['method_params'])}"
                               for x, r in zip(depths, found)])
        ax.set_xlabel("depth of the weight network (adapter parameters below)")
    else:
        width = 0.8 / max(1, len(found))
        for i, r in enumerate(found):
            data = summary["rows"][r.key]
            xs = [j + (i - (len(found) - 1) / 2) * width for j, d in enumerate(datasets) if d in data["cells"]]
            cells = [data["cells"][d] for d in datasets if d in data["cells"]]
            rank = f"r={r.options.get('rank')}, " if study == "targets" else ""
            ax.bar(xs, [c["mean"] for c in cells], width, yerr=[c["std"] for c in cells], capsize=2,
                   label=f"{r.label} ({rank}{count_text(data['method_params'])})")
        ax.set_xticks(range(len(datasets)), [named.get(d, d) for d in datasets])
        low = min(summary["rows"][r.key]["cells"][d]["mean"] for r in found for d in summary["rows"][r.key]["cells"])
        ax.set_ylim(max(0.0, low - 10), None)
    ax.set_ylabel(f"{shape.score_short} (%)")
    ax.set_title(STUDIES[study].title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def paper_points(results: list[dict[str, Any]]) -> list[tuple[int, float, str]]:
    """(depth, accuracy, label) of published depth rows for the datasets and backbone of `results`."""
    points = []
    datasets = {r["dataset"] for r in results}
    for r in {r["method"]: r for r in results}.values():
        config = r.get("config") or {}
        options = config.get("method_options", {})
        for pub in rows_for(ROWS, "neat", config.get("model", ""), options, r["method_params"]):
            if "depth" in pub.options:
                points += [(pub.options["depth"], score, f"{pub.label}, {d} (paper)")
                           for d, score in pub.scores.items() if d in datasets]
    return points


# --- writing ----------------------------------------------------------------------------------------------
def write_report(out: str | os.PathLike, study: str,
                 results: list[dict[str, Any]] | None = None) -> tuple[Path, Path, str]:
    """OUT/report.md, OUT/summary.json and OUT/<study>.png for the study's results under `out` (`results`: those
    already read from it); returns their paths and the report's text."""
    results = study_results(out, study, results)
    if not results:
        raise FileNotFoundError(f"No {study} study results in {Path(out) / 'runs'}; run python -m benchmarks.ablate "
                                f"--study {study} --out {out} first.")
    text = (f"{STUDIES[study].question}\n\n" + study_table(results, study)
            + "\n## Learning rates chosen on validation\n\n" + selection_table(results, shape_of(results), order(study)))
    out = Path(out)
    table = write_text_atomic(out / TABLE_NAME, f"# {STUDIES[study].title}\n\n" + text)
    found, summary = rows(results, study)
    write_json_atomic(out / SUMMARY_NAME, {"study": study, "rows": [vars(r) for r in found], **summary})
    return table, plot(results, study, out / f"{study}.png"), text
