"""benchmarks.report, core.report and core.sweep: the lr chosen on validation only, the Table-4-shaped table, the
selection table, published rows with differences, summary and plot, from fixture results in the shared schema."""

import dataclasses
import json

import pytest

from benchmarks import report as report_cli
from benchmarks.core import report, sweep
from benchmarks.core.published import rows_for
from benchmarks.core.results import SCHEMA, read_result, result_path, write_json_atomic
from benchmarks.core.sweep import Run
from benchmarks.vtab import published
from benchmarks.vtab.shape import SHAPE

VIT_B = "vit_base_patch16_224.orig_in21k"


def fixture_result(method, dataset, seed, lr, val, test, method_params, head_params=100, model=VIT_B, **options):
    return {"schema": SCHEMA, "suite": "vtab", "method": method, "dataset": dataset, "seed": seed, "lr": lr,
            "lr_grid": [], "metric": "accuracy", "selection_score": val, "score": test,
            "scores": {"test": test, "validation": val},
            "method_params": method_params, "head_params": head_params, "trainable_params": method_params + head_params,
            "config": {"model": model, "method_options": options,
                       "data": {"title": {"pets": "OxfordPets", "cifar10": "CIFAR10"}[dataset]}}}


RESULTS = [
    # neat on pets: lr 0.003 is best on validation (mean 0.80), lr 0.01 is best on test (0.99): 0.003 must win
    fixture_result("neat", "pets", 0, 0.003, 0.81, 0.90, 21504), fixture_result("neat", "pets", 1, 0.003, 0.79, 0.92, 21504),
    fixture_result("neat", "pets", 0, 0.01, 0.78, 0.99, 21504), fixture_result("neat", "pets", 1, 0.01, 0.80, 0.99, 21504),
    fixture_result("neat", "cifar10", 0, 0.003, 0.90, 0.98, 21504), fixture_result("neat", "cifar10", 1, 0.003, 0.90, 0.99, 21504),
    fixture_result("full", "pets", 0, 1e-5, 0.9, 0.93, 85_800_000), fixture_result("full", "cifar10", 0, 1e-5, 0.9, 0.99, 85_800_000),
    fixture_result("head", "pets", 0, 0.001, 0.80, 0.85, 0), fixture_result("head", "pets", 0, 0.003, 0.80, 0.86, 0),
]


@pytest.fixture
def results_dir(tmp_path):
    for r in RESULTS:
        write_json_atomic(result_path(tmp_path, Run(r["method"], r["dataset"], r["seed"], r["lr"])), r)
    (tmp_path / "runs" / "broken_pets_seed0.json").write_text('{"method": "neat", "accur')  # a torn file
    return tmp_path


def test_the_lr_is_chosen_on_validation_never_on_test():
    chosen = sweep.choose(RESULTS)
    assert chosen[("neat", "pets")] == 0.003            # validation mean 0.80 beats 0.79, though test says 0.01
    assert chosen[("head", "pets")] == 0.001            # a tie on validation: the smaller lr
    assert {(r["method"], r["lr"]) for r in sweep.selected(RESULTS) if r["dataset"] == "pets"} == {
        ("neat", 0.003), ("full", 1e-5), ("head", 0.001)}
    nan = [dict(RESULTS[0], lr=0.1, selection_score=float("nan"))]
    assert sweep.choose(RESULTS[:1] + nan)[("neat", "pets")] == 0.003   # a NaN score never wins


def test_expand_lists_every_lr_of_every_grid_once():
    runs = sweep.expand(["neat", "head"], ["pets"], [0, 1], lambda m, d: (0.01, 0.03, 0.01) if m == "neat" else (0.1,))
    assert [r.name for r in runs] == ["neat_pets_seed0_lr0.01", "neat_pets_seed0_lr0.03", "neat_pets_seed1_lr0.01",
                                      "neat_pets_seed1_lr0.03", "head_pets_seed0_lr0.1", "head_pets_seed1_lr0.1"]


def test_summary_means_stds_and_averages_of_the_chosen_lr():
    s = report.summarise(RESULTS, SHAPE)
    assert s["methods"] == ["neat", "head", "full"]          # the order of core.catalog.METHODS
    assert s["datasets"] == ["pets", "cifar10"]              # the recipe table's order
    neat = s["rows"]["neat"]
    assert neat["cells"]["pets"]["mean"] == pytest.approx(91.0)
    assert neat["cells"]["pets"]["std"] == pytest.approx(1.4142135, rel=1e-6)
    assert (neat["cells"]["pets"]["lr"], neat["cells"]["pets"]["grid"]) == (0.003, [0.003, 0.01])
    assert neat["cells"]["pets"]["selection"] == pytest.approx(80.0)
    assert neat["average"] == pytest.approx((91.0 + 98.5) / 2)
    assert s["rows"]["head"]["complete"] is False


def test_markdown_table_is_shaped_like_table_4():
    lines = report.markdown_table(RESULTS, SHAPE).splitlines()
    assert lines[:5] == [
        "| Method | Params | OxfordPets | CIFAR10 | Avg. |",
        "|---|---:|---:|---:|---:|",
        "| neat | 21.5K | 91.0 ± 1.4 | 98.5 ± 0.7 | 94.8 |",
        "| head | 0 | 85.0 | — | 85.0* |",
        "| full | 85.80M | 93.0 | 99.0 | 96.0 |",
    ]
    assert "Top-1 test accuracy (%), seeds 0, 1 (mean ± std)." in lines
    assert report.PARAMS_NOTE in lines
    assert "*: average over the datasets this method has results for." in lines


def test_selection_table_shows_grid_chosen_lr_validation_and_test():
    lines = report.selection_table(RESULTS, SHAPE).splitlines()
    assert lines[0] == "| Method | Dataset | Params | lr grid | Chosen lr | Validation accuracy | Top-1 accuracy |"
    assert "| neat | OxfordPets | 21,504 | 0.003, 0.01 | 0.003 | 80.0 | 91.0 ± 1.4 |" in lines
    assert "| head | OxfordPets | 0 | 0.001, 0.003 | 0.001 | 80.0 | 85.0 |" in lines
    renamed = report.selection_table(RESULTS, dataclasses.replace(SHAPE, titles={"pets": "Pets (shape)"}))
    assert "| neat | Pets (shape) | 21,504 | 0.003, 0.01 | 0.003 | 80.0 | 91.0 ± 1.4 |" in renamed.splitlines()


def test_published_rows_sit_beside_ours_with_differences():
    text = report.published_table(RESULTS, SHAPE)
    lines = text.splitlines()
    assert lines[0] == "| Row | Params | OxfordPets | CIFAR10 | Avg. |"
    # head = LP, full = FF (FourierFT Table 5); OxfordPets LP 90.28, CIFAR10 FF 98.92
    assert "| head (ours) | 0 | 85.0 | — | 85.0* |" in lines
    assert "| LP (published) | 0 | 90.28 | 96.41 | 68.36 |" in lines
    assert "| Δ | | -5.3 | — | — |" in lines
    assert "| FF (published) | — | 93.14 | 98.92 | 86.49 |" in lines
    assert "| Δ | | -0.1 | +0.1 | — |" in lines
    # NEAT: only the average the NEAT paper's text gives (and its depth-6 StanfordCars row needs depth 6)
    assert "| NEAT (published) | — | — | — | 86.15 |" in lines
    assert not any("depth 6" in line for line in lines)
    assert "FourierFT paper (arXiv 2405.03003) Table 5" in text and "NEAT paper (arXiv 2410.01870)" in text
    tiny = [dict(r, config=dict(r["config"], model="vit_tiny_patch16_224")) for r in RESULTS]
    assert report.published_table(tiny, SHAPE) == ""   # no published numbers for another backbone


def test_the_average_delta_needs_exactly_the_papers_eight_datasets():
    def probe(dataset):   # a linear probe at 50% test accuracy
        result = fixture_result("head", "pets", 0, 0.001, 0.8, 0.5, 0)
        return {**result, "dataset": dataset, "config": {**result["config"], "data": {"title": dataset}}}

    eight = [probe(d) for d in published.ORDER]
    lines = report.published_table(eight, SHAPE).splitlines()
    columns = report.summarise(eight, SHAPE)["datasets"]   # the recipe table's order
    assert lines[4] == "| Δ | | " + " | ".join(f"{50 - published.ROWS[0].scores[d]:+.1f}" for d in columns) \
        + f" | {50 - 68.36:+.1f} |"
    other = eight[:7] + [probe("digits59")]
    assert report.published_table(other, SHAPE).splitlines()[4].endswith(" | — |")   # 8 datasets, not the paper's 8


def test_published_rows_of_the_closest_size_and_every_number_as_published():
    fourier = rows_for(published.ROWS, "fourierft", VIT_B, {}, 72_000)
    assert [r.label for r in fourier] == ["FourierFT (72K)"]
    assert [r.label for r in rows_for(published.ROWS, "fourierft", VIT_B, {}, 250_000)] == ["FourierFT (239K)"]
    assert [r.label for r in rows_for(published.ROWS, "neat", VIT_B, {"depth": 6}, 1e6)] == ["NEAT", "NEAT (depth 6)"]
    lora = rows_for(published.ROWS, "lora", VIT_B, {}, 589_824)[0]
    assert [lora.scores[d] for d in published.ORDER] + [lora.scores["average"]] == [
        93.19, 45.38, 98.78, 74.95, 98.44, 25.16, 92.70, 92.02, 77.58]
    for row in published.ROWS:   # a paper's average is the mean of its eight cells (to its rounding)
        if len(row.scores) == 9:
            cells = [row.scores[d] for d in published.ORDER]
            assert sum(cells) / 8 == pytest.approx(row.scores["average"], abs=0.006), row.label


def test_report_cli_writes_table_summary_and_plot(results_dir, capsys):
    assert report_cli.main([str(results_dir)]) == 0
    table = (results_dir / "report.md").read_text()
    assert table.startswith("# Image classification results\n\n| Method | Params | OxfordPets | CIFAR10 | Avg. |")
    assert "## Learning rates chosen on validation" in table and "## Published numbers beside ours" in table
    assert "| neat | 21.5K | 91.0 ± 1.4 | 98.5 ± 0.7 | 94.8 |" in capsys.readouterr().out
    summary = json.loads((results_dir / "summary.json").read_text())
    assert summary["rows"]["full"]["method_params"] == 85_800_000
    assert summary["rows"]["neat"]["cells"]["pets"]["lr"] == 0.003
    png = (results_dir / "accuracy_vs_params.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_report_of_an_empty_folder_says_what_to_run(tmp_path, capsys):
    assert report_cli.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: No results in {tmp_path / 'runs'}; run a suite (python -m "
                                                f"benchmarks.vtab, .glue, .llm or .ablate) with --out {tmp_path} first.")


def test_torn_or_missing_result_files_count_as_unfinished(results_dir):
    assert read_result(results_dir / "runs" / "broken_pets_seed0.json") is None
    assert read_result(results_dir / "runs" / "missing.json") is None
    assert read_result(result_path(results_dir, Run("neat", "pets", 0, 0.003)))["score"] == 0.90
    old = {k: v for k, v in RESULTS[0].items() if k != "schema"}   # a result of an older schema is redone
    write_json_atomic(results_dir / "runs" / "old.json", old)
    assert read_result(results_dir / "runs" / "old.json") is None


def test_the_image_report_says_where_its_protocol_differs_from_the_published_rows():
    assert "DTD:" not in report.markdown_report(RESULTS, SHAPE)   # pets and cifar10 only
    ran = [dict(r, dataset=d, config={**r["config"], "data": {"title": d}})
           for r, d in ((RESULTS[0], "dtd"), (dict(RESULTS[0], method="vera"), "resisc45"),
                        (dict(RESULTS[0], method="vera"), "cifar100"))]
    text = report.markdown_report(RESULTS + ran, SHAPE)
    assert ("DTD: its one train/test partition as the Hub copy holds it (3,760 / 1,880), never pooled; FourierFT's "
            "Table 5 pooled all 5,640 images and split them 80/20") in text
    assert text.count("VeRA on CIFAR100 and RESISC45: VeRA's Table 11 recipe (arXiv 2310.11454)") == 1
