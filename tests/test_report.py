"""benchmarks.report: the Table-4-shaped Markdown table, summary and plot from fixture results."""

import json

import pytest

from benchmarks import report
from benchmarks.results import read_result, result_path, write_json_atomic


def fixture_result(method, dataset, seed, accuracy, method_params, head_params=100):
    return {"method": method, "dataset": dataset, "seed": seed, "accuracy": accuracy,
            "method_params": method_params, "head_params": head_params,
            "trainable_params": method_params + head_params}


RESULTS = [
    fixture_result("neat", "pets", 0, 0.90, 21504), fixture_result("neat", "pets", 1, 0.92, 21504),
    fixture_result("neat", "cifar10", 0, 0.98, 21504), fixture_result("neat", "cifar10", 1, 0.99, 21504),
    fixture_result("full", "pets", 0, 0.93, 85_800_000), fixture_result("full", "cifar10", 0, 0.99, 85_800_000),
    fixture_result("head", "pets", 0, 0.85, 0),
]


@pytest.fixture
def results_dir(tmp_path):
    for r in RESULTS:
        write_json_atomic(result_path(tmp_path, r["method"], r["dataset"], r["seed"]), r)
    (tmp_path / "runs" / "broken_pets_seed0.json").write_text('{"method": "neat", "accur')  # a torn file
    return tmp_path


def test_summary_means_stds_and_averages():
    s = report.summarise(RESULTS)
    assert s["methods"] == ["neat", "head", "full"]          # the order of benchmarks.methods.METHODS
    assert s["datasets"] == ["pets", "cifar10"]              # the registry's order
    neat = s["rows"]["neat"]
    assert neat["cells"]["pets"]["mean"] == pytest.approx(91.0)
    assert neat["cells"]["pets"]["std"] == pytest.approx(1.4142135, rel=1e-6)
    assert neat["average"] == pytest.approx((91.0 + 98.5) / 2)
    assert s["rows"]["head"]["complete"] is False


def test_markdown_table_is_shaped_like_table_4():
    lines = report.markdown_table(RESULTS).splitlines()
    assert lines[:5] == [
        "| Method | Params | OxfordPets | CIFAR10 | Avg. |",
        "|---|---:|---:|---:|---:|",
        "| neat | 21.5K | 91.0 ± 1.4 | 98.5 ± 0.7 | 94.8 |",
        "| head | 0 | 85.0 | — | 85.0* |",
        "| full | 85.80M | 93.0 | 99.0 | 96.0 |",
    ]
    assert "Top-1 test accuracy (%), seeds 0, 1 (mean ± std)." in lines
    assert "*: average over the datasets this method has results for." in lines


def test_report_cli_writes_table_summary_and_plot(results_dir, capsys):
    assert report.main([str(results_dir)]) == 0
    table = (results_dir / "report.md").read_text()
    assert table.startswith("# Image classification results\n\n| Method | Params | OxfordPets | CIFAR10 | Avg. |")
    assert "| neat | 21.5K | 91.0 ± 1.4 | 98.5 ± 0.7 | 94.8 |" in capsys.readouterr().out
    summary = json.loads((results_dir / "summary.json").read_text())
    assert summary["rows"]["full"]["trainable_params"] == 85_800_100
    png = (results_dir / "accuracy_vs_params.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_report_of_an_empty_folder_says_what_to_run(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: No results in {tmp_path / 'runs'}; run python -m "
                                                f"benchmarks.vtab --out {tmp_path} first.")


def test_torn_or_missing_result_files_count_as_unfinished(results_dir):
    assert read_result(results_dir / "runs" / "broken_pets_seed0.json") is None
    assert read_result(results_dir / "runs" / "missing.json") is None
    assert read_result(result_path(results_dir, "neat", "pets", 0))["accuracy"] == 0.90
