"""benchmarks.speed on the CPU: every method timed on a tiny model, ratios from the same run, JSON written."""

import json

import pytest

from benchmarks.speed import cli as speed


# every test here reads one timing run of every method
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    assert speed.main(["--steps", "2", "--warmup", "0", "--rank", "4", "--out", str(out), "--device", "cpu"]) == 0
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())


def test_every_method_is_timed_and_counted(result):
    rows = result["methods"]
    assert set(rows) == set(speed.ALL_METHODS)
    assert all(r["step_ms"] > 0 for r in rows.values())
    assert rows["floor"]["trainable_params"] == 0
    head = 192 * 10 + 10  # vit_tiny width 192, 10 classes
    assert rows["head"]["trainable_params"] == head
    # whole attn.qkv (192 -> 576) in 2 blocks, rank 4: NEAT A (576x4) + B (4x576); LoRA A (4x192) + B (576x4)
    assert rows["neat"]["trainable_params"] == head + 2 * (576 * 4 + 4 * 576)
    assert rows["lora"]["trainable_params"] == head + 2 * (4 * 192 + 576 * 4)
    assert rows["peanut"]["trainable_params"] == rows["neat"]["trainable_params"]
    assert rows["full"]["trainable_params"] > 5_000_000 // 10


def test_ratios_come_from_the_same_run(result):
    rows, ratios = result["methods"], result["ratios"]
    assert ratios["neat_over_lora"] == pytest.approx(rows["neat"]["step_ms"] / rows["lora"]["step_ms"])
    assert ratios["neat_over_peanut"] == pytest.approx(rows["neat"]["step_ms"] / rows["peanut"]["step_ms"])
    assert ratios["neat_over_floor"] == pytest.approx(rows["neat"]["step_ms"] / rows["floor"]["step_ms"])
    for method in ("neat", "lora", "peanut", "dora"):
        assert rows[method]["merged_over_base"] > 0
    assert "merged_over_base" not in rows["fourierft"]
    assert ratios["neat_unmerged_over_lora_unmerged"] == pytest.approx(
        rows["neat"]["unmerged_inference_ms"] / rows["lora"]["unmerged_inference_ms"])
    assert {m for m, r in rows.items() if "unmerged_inference_ms" in r} == {"neat", "lora", "peanut", "dora",
                                                                           "fourierft"}
    assert all(r["unmerged_inference_ms"] > 0 for r in rows.values() if "unmerged_inference_ms" in r)
    assert result["device"] == "cpu" and result["versions"]["torch"]


def test_llm_case_runs_on_the_cpu(tmp_path):
    assert speed.main(["--llm", "--methods", "floor,lora,neat", "--targets", "all", "--steps", "1", "--warmup", "0",
                       "--out", str(tmp_path), "--device", "cpu"]) == 0
    (path,) = tmp_path.glob("*.json")
    rows = json.loads(path.read_text())["methods"]
    # 2 layers x (q,k,v,o: 128x128, gate/up: 128->352, down: 352->128), rank 8
    per_layer = 4 * 2 * 128 * 8 + 2 * (352 * 8 + 8 * 352) + (128 * 8 + 8 * 128)
    assert rows["neat"]["trainable_params"] == 2 * per_layer


def test_unknown_method_is_refused(capsys):
    with pytest.raises(SystemExit):
        speed.parse_args(["--methods", "neat,adapterx"])
    assert "unknown method(s) adapterx; choose from floor, head, full, lora, peanut, dora, fourierft, neat" \
        in capsys.readouterr().err


def test_table_shows_unmerged_inference_for_adapter_methods_only(result):
    lines = speed.table(result["methods"]).splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    column = cells[0].index("unmerged inference ms")
    shown = {row[0]: row[column] for row in cells[2:]}
    assert shown["neat"] == f"{result['methods']['neat']['unmerged_inference_ms']:.1f}"
    assert shown["lora"] == f"{result['methods']['lora']['unmerged_inference_ms']:.1f}"
    assert shown["floor"] == shown["head"] == shown["full"] == "—"


def test_dry_run_counts_what_the_timing_run_counts_without_timing(result, tmp_path, capsys):
    assert speed.main(["--rank", "4", "--device", "cpu", "--dry-run", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Plan: vit_tiny_patch16_224 bs4 32px, targets qkv (attn.qkv), rank 4, eager, on cpu: "
                              "1 untimed then 3 timed steps of training per method")
    for method, row in result["methods"].items():
        assert f"| {method} | {row['trainable_params']:,} |" in printed
    assert not list(tmp_path.iterdir())
