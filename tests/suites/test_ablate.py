"""benchmarks.ablate: each study's plan (runs, lrs, ranks that keep parameters equal), the dry run's counts and time
estimate, end to end on the smoke data (and tiny GLUE data) with resume, tables and plots from fixture results, and
bad study / dataset names."""

from __future__ import annotations

import json

import pytest
from conftest import killed_after
from support.cli import bad_flag

from benchmarks.ablate import cli as ablate
from benchmarks.ablate import plan as ablate_runs
from benchmarks.ablate import report as ablate_report
from benchmarks.ablate.studies import RECIPE_LR_NOTE, SWEEP_GRID_NOTE, SWEEP_GRIDS
from benchmarks.core import budget
from benchmarks.core.results import SCHEMA, write_json_atomic
from benchmarks.core.runner import Job
from benchmarks.glue.recipes import DEV_NOTE
from benchmarks.vtab import plan as image_runs
from benchmarks.vtab.recipes import PAPER_DATASETS

pytestmark = pytest.mark.usefixtures("datasets_cache")  # arrow files in the test's own folder

VIT_B = "vit_base_patch16_224.orig_in21k"




# --- plans --------------------------------------------------------------------------------------------------
def _plan(*argv: str) -> list[Job]:
    return ablate_runs.image_plan(ablate.parse_args(list(argv)))


def test_depth_plan_trains_every_depth_at_the_recipes_lr_on_stanford_cars():
    planned = _plan("--study", "depth")
    assert [(p.run.method, p.run.dataset, p.run.lr) for p in planned] == [
        (f"neat-depth{d}", "cars", 0.01) for d in (2, 4, 6, 8, 10)]   # NEAT's published StanfordCars lr
    assert [p.options.depth for p in planned] == [2, 4, 6, 8, 10] and {p.options.rank for p in planned} == {7}
    assert {p.method for p in planned} == {"neat"} and all(p.grid == (0.01,) for p in planned)
    assert planned[0].recipe.sources["lrs"] == RECIPE_LR_NOTE
    assert planned[2].config == {"study": "depth", "variant": {"name": "neat-depth6", "label": "6", "method": "neat",
                                                              "options": {"depth": 6}}}


def test_activation_plan_gives_each_activation_its_own_grid_on_the_eight_datasets():
    planned = _plan("--study", "activation", "--seeds", "0,1")
    assert len(planned) == 2 * 8 * 2 * 4
    assert {p.run.dataset for p in planned} == set(PAPER_DATASETS)
    sin = [p for p in planned if p.run.method == "neat-sin"]
    assert {p.options.activation for p in sin} == {"sin"} and {p.run.lr for p in sin} == set(SWEEP_GRIDS["paper"])
    assert sin[0].recipe.sources["lrs"] == SWEEP_GRID_NOTE


@pytest.mark.slow
def test_targets_plan_sets_neats_rank_so_the_parameters_stay_as_equal_as_the_rank_allows():
    args = ablate.parse_args(["--study", "targets", "--dataset", "dtd"])
    planned = ablate_runs.image_plan(args)
    options = {p.run.method: p.options for p in planned}
    assert {n: (o.preset, o.rank) for n, o in options.items()} == {
        "neat-qv": ("qv", 7), "neat-qv-mlp": ("qv_mlp", 2), "neat-all-linear": ("all_linear", 2)}
    count = lambda name, rank: ablate_runs.image_counts(  # noqa: E731
        args, ablate_runs.variants(args)[name], budget.resized("neat", options[name], rank))["method_params"]
    target = count("neat-qv", 7)
    assert target == 12 * 2 * 2 * 768 * 7 == 258_048
    # ViT-B per block: q,v 2 x 1536 r, fc1 2 x 3072 r, fc2 2 x 768 r (qkv whole: 2 x 2304 r, proj 2 x 768 r)
    assert (count("neat-qv-mlp", 2), count("neat-all-linear", 2)) == (12 * 10_752 * 2, 12 * 13_824 * 2)
    for name in ("neat-qv-mlp", "neat-all-linear"):
        chosen = abs(count(name, 2) - target)
        assert chosen <= abs(count(name, 1) - target) and chosen <= abs(count(name, 3) - target)


@pytest.mark.slow
def test_scale_plan_sizes_lora_to_neat_and_sweeps_one_grid_that_holds_loras_lrs():
    planned = _plan("--study", "scale", "--dataset", "cars,dtd")
    assert len(planned) == 3 * 2 * 4
    options = {p.run.method: p.options for p in planned}
    assert (options["neat-s1"].scale, options["neat-auto"].scale) == (1.0, "auto")
    assert (options["lora"].lora_r, options["lora"].lora_alpha) == (7, 7)   # 258,048 like NEAT rank 7
    grids = {p.run.method: p.grid for p in planned}
    assert grids == {m: SWEEP_GRIDS["paper"] for m in ("neat-s1", "neat-auto", "lora")}
    assert {p.method for p in planned} == {"neat", "lora"}
    assert {p.config["variant"]["label"] for p in planned} == {"s = 1", "s = auto", "LoRA"}


def test_dry_run_lists_runs_exact_parameters_and_a_labelled_time_estimate(capsys):
    assert ablate.main(["--study", "depth", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == f"Plan: 5 runs (1 seed(s)) on {VIT_B}."
    assert "| neat-depth2 | neat | rank=7, depth=2 | cars | 0.01 (1 run(s)) | 256 | 10 | 258,048 | 73,290 | 37 s |" \
        in lines
    assert "| neat-depth6 | neat | rank=7, depth=6 | cars | 0.01 (1 run(s)) | 256 | 10 | 262,752 | 73,290 | 37 s |" \
        in lines   # + 2 x 2 r x r matrices per slice, 24 slices; cars: 8,144 train less ceil(10%) held out = 7,329
    assert "Training items: epochs x training images (GLUE: samples) per run, summed: 366,450." in lines
    assert lines[-1].startswith("Estimated training time: 3.1 min at 2,000 items/s (assumed, not measured: ")
    assert lines[-1].endswith("An estimate, not a measurement: evaluation, data loading and start-up are not "
                              "counted.")
    assert ablate.main(["--study", "depth", "--dry-run", "--images-per-s", "50"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("Estimated training time: 2.0 h at 50 items/s "
                                                               "(--images-per-s).")


@pytest.mark.parametrize("argv, message", [
    (["--study", "bogus"], "argument --study: invalid choice: 'bogus' (choose from 'depth', 'activation', 'targets', "
                           "'scale')"),
    (["--study", "depth", "--dataset", "cars,bogus"],
     "Unknown dataset(s) bogus; choose image datasets (pets, cifar10, dtd, eurosat, resisc45, cars, fgvc, cifar100, "
     "digits59, digits04) or, for the scale study, GLUE tasks (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte)."),
    (["--study", "activation", "--tasks", "sst2"],
     "The activation study runs on image datasets (pets, cifar10, dtd, eurosat, resisc45, cars, fgvc, cifar100, "
     "digits59, digits04); GLUE tasks are for the scale study only."),
    (["--study", "scale", "--dataset", "cars,sst2"],
     "Give image datasets or GLUE tasks, not both in one run (their results go to different --out folders)."),
    (["--study", "depth", "--seeds", "0,x"], "--seeds must be a comma list of integers, got '0,x'."),
])
def test_bad_study_and_dataset_names_exit_2_before_any_heavy_import(argv, message):
    code, heavy, error = bad_flag("benchmarks.ablate", argv)
    assert (code, error, heavy) == (2, f"python -m benchmarks.ablate: error: {message}", [])


# --- end to end ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_scale_study_on_the_smoke_data_resumes_and_writes_its_report(tmp_path, monkeypatch, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["--study", "scale", "--suite", "smoke", "--seeds", "0", "--lrs", "0.01,0.03", "--epochs", "1",
            "--pretrain-epochs", "1", "--cache-dir", str(cache), "--out", str(out), "--no-progress"]
    real = image_runs.run_job
    monkeypatch.setattr(image_runs, "run_job", killed_after(3, real))
    with pytest.raises(KeyboardInterrupt):
        ablate.main(argv)
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "neat-auto_digits59_seed0_lr0.01.json", "neat-s1_digits59_seed0_lr0.01.json",
        "neat-s1_digits59_seed0_lr0.03.json"]
    rerun = []
    monkeypatch.setattr(image_runs, "run_job", lambda a, job, *rest: rerun.append(job.run) or real(a, job, *rest))
    assert ablate.main(argv) == 0
    assert [(r.method, r.lr) for r in rerun] == [("neat-auto", 0.03), ("lora", 0.01), ("lora", 0.03)]

    results = {p.stem: json.loads(p.read_text()) for p in (out / "runs").iterdir()}
    auto, s1, lora = (results[f"{m}_digits59_seed0_lr0.01"] for m in ("neat-auto", "neat-s1", "lora"))
    assert auto["config"]["study"] == "scale" and auto["config"]["method_options"]["scale"] == "auto"
    assert auto["config"]["variant"] == {"name": "neat-auto", "label": "s = auto", "method": "neat",
                                         "options": {"scale": "auto"}}
    assert auto["auto_scales"]["count"] == 4 * 2 and auto["auto_scales"]["min"] > 0   # q, v of 4 blocks
    assert "auto_scales" not in s1 and s1["config"]["method_options"]["scale"] == 1.0
    assert lora["method_params"] == s1["method_params"] == auto["method_params"] == 10_752
    assert lora["config"]["matched_to"] == "neat-s1" and lora["config"]["method"] == "LoRA (PEFT)"

    table = (out / "report.md").read_text()
    assert table.startswith("# NEAT's scale s: 1 or auto\n\n")
    chosen = {m: max((0.01, 0.03), key=lambda lr: (results[f"{m}_digits59_seed0_lr{lr:g}"]["selection_score"], -lr))
              for m in ("neat-s1", "neat-auto", "lora")}
    at_lora = results[f"neat-s1_digits59_seed0_lr{chosen['lora']:g}"]
    assert (f"| s = 1, at LoRA's lr | 10.8K | {100 * at_lora['score']:.1f} (lr {chosen['lora']:g}) |"
            in table)
    assert f"Selected lrs on Digits 5-9: neat-s1 {chosen['neat-s1']:g}, neat-auto {chosen['neat-auto']:g}, " \
           f"lora {chosen['lora']:g}." in table
    assert "s = auto came out as" in table and "| neat-auto | Digits 5-9 | 10,752 | 0.01, 0.03 |" in table
    assert (out / "scale.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "summary.json").read_text())["study"] == "scale"
    assert "3 of 6 runs already finished" in capsys.readouterr().out


@pytest.mark.slow
def test_scale_study_on_glue_tasks_runs_neat_l_at_its_and_loras_published_lr(offline_assets, tmp_path):  # noqa: F811
    out = tmp_path / "glue"
    argv = ["--study", "scale", "--tasks", "sst2", "--model-path", str(offline_assets / "model"), "--data-dir",
            str(offline_assets / "data"), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--workers", "0",
            "--threads", "1", "--no-progress", "--accept-subset"]
    assert ablate.main(argv) == 0
    names = sorted(p.stem for p in (out / "runs").iterdir())
    assert names == ["lora_sst2_seed0_lr0.0005", "neat-l-auto_sst2_seed0_lr0.0005", "neat-l-auto_sst2_seed0_lr0.005",
                     "neat-l-s1_sst2_seed0_lr0.0005", "neat-l-s1_sst2_seed0_lr0.005"]   # LoRA's 5e-4, NEAT-L's 5e-3
    found = {n: json.loads((out / "runs" / f"{n}.json").read_text()) for n in names}
    auto = found["neat-l-auto_sst2_seed0_lr0.005"]
    assert auto["config"]["method_options"]["scale"] == "auto" and auto["config"]["method_options"]["rank"] == 8
    # one protocol for every variant: LoRA (one published lr) too trains on train less the held-out slice and
    # chooses its epoch there, never on the validation set the table reports
    for result in found.values():
        assert result["config"]["data"]["sizes"] == {"train": 22, "validation": 12, "dev": 2}
        assert result["selection"] == DEV_NOTE and result["selection_score"] == result["scores"]["dev_accuracy"]
        assert result["config"]["hold_out"] is True
    assert {r["method_params"] for r in found.values()} == {3 * 2 * 2 * 16 * 8}   # LoRA r = 8 = NEAT-L's budget
    table = (out / "report.md").read_text()
    assert "| NEAT-L, s = auto, at LoRA's lr | 1.5K |" in table and "| LoRA, own lr | 1.5K |" in table
    assert "GLUE: every variant (LoRA at its single published lr too) trains on train less a seeded held-out " \
           "slice and chooses its lr and epoch there" in table
    assert "\nlora on SST-2: lora_alpha 16 — microsoft/LoRA examples/NLU/roberta_base_<task>.sh@" in table
    assert ablate.main(argv + ["--dry-run"]) == 0


# --- tables and plots from fixture results -------------------------------------------------------------------
def _result(study: str, name: str, label: str, method: str, options: dict, dataset: str, lr: float, seed: int,
            accuracy: float, val: float, params: int, model: str = VIT_B, title: str | None = None) -> dict:
    return {"schema": SCHEMA, "suite": "vtab", "method": name, "dataset": dataset, "seed": seed, "lr": lr,
            "metric": "accuracy", "score": accuracy, "selection_score": val, "scores": {"test": accuracy},
            "method_params": params, "head_params": 10, "trainable_params": params + 10,
            "config": {"study": study, "model": model, "method_options": {"rank": 7, "depth": 2, **options},
                       "variant": {"name": name, "label": label, "method": method, "options": options},
                       "data": {"title": title or dataset}}}


def test_depth_table_and_plot_with_the_papers_depth_6_number(tmp_path):
    accuracy = {2: 0.79, 4: 0.80, 6: 0.815, 8: 0.81, 10: 0.805}
    for d, acc in accuracy.items():
        params = 258_048 + (d - 2) // 2 * 2_352
        r = _result("depth", f"neat-depth{d}", str(d), "neat", {"depth": d}, "cars", 0.01, 0, acc, acc, params,
                    title="StanfordCars")
        write_json_atomic(tmp_path / "runs" / f"neat-depth{d}_cars_seed0_lr0.01.json", r)
    table, image, text = ablate_report.write_report(tmp_path, "depth")
    assert text.splitlines()[2:9] == ["| Depth | Params | StanfordCars |", "|---|---:|---:|", "| 2 | 0.26M | 79.0 |",
                                      "| 4 | 0.26M | 80.0 |", "| 6 | 0.26M | 81.5 |", "| 8 | 0.27M | 81.0 |",
                                      "| 10 | 0.27M | 80.5 |"]
    assert ("Published, NEAT (depth 6): cars 81.04 (NEAT paper (arXiv 2410.01870), text (StanfordCars, depth 6)), "
            "beside our 6 row.") in text
    assert "Every variant trains at the recipe's lr" in text
    assert ablate_report.paper_points(ablate_report.study_results(tmp_path, "depth")) == [
        (6, 81.04, "NEAT (depth 6), cars (paper)")]
    assert image.name == "depth.png" and image.read_bytes()[:4] == b"\x89PNG"


def test_activation_table_counts_where_sin_wins_and_quotes_the_paper(tmp_path):
    scores = {("relu", "dtd", 0.01): (0.70, 0.72), ("relu", "dtd", 0.03): (0.75, 0.70),
              ("sin", "dtd", 0.01): (0.74, 0.74), ("sin", "dtd", 0.03): (0.60, 0.60),
              ("relu", "fgvc", 0.01): (0.40, 0.45), ("sin", "fgvc", 0.01): (0.38, 0.44)}
    for (act, d, lr), (acc, val) in scores.items():
        r = _result("activation", f"neat-{act}", act, "neat", {"activation": act}, d, lr, 0, acc, val, 258_048,
                    title=d.upper())
        write_json_atomic(tmp_path / "runs" / f"neat-{act}_{d}_seed0_lr{lr:g}.json", r)
    _, _, text = ablate_report.write_report(tmp_path, "activation")
    # relu on DTD: 0.01 wins on validation (72 > 70), so 70.0 is reported, not the higher test score at 0.03
    assert "| relu | 0.26M | 70.0 | 40.0 | 55.0 |" in text and "| sin | 0.26M | 74.0 | 38.0 | 56.0 |" in text
    assert "Here sin(2πx) beats ReLU on 1 of 2 dataset(s) (DTD)." in text
    assert "The paper (NEAT paper (arXiv 2410.01870) Table 5): sin(2πx) beats ReLU on 6 of the 8 datasets" in text
    assert (tmp_path / "activation.png").read_bytes()[:4] == b"\x89PNG"


def test_targets_table_shows_each_sets_rank_and_parameters(tmp_path):
    for name, label, preset, rank, params, acc in (("neat-qv", "q, v", "qv", 7, 258_048, 0.8),
                                                   ("neat-qv-mlp", "q, v + MLP", "qv_mlp", 2, 258_048, 0.82),
                                                   ("neat-all-linear", "all linear", "all_linear", 2, 331_776, 0.81)):
        r = _result("targets", name, label, "neat", {"preset": preset}, "cars", 0.01, 0, acc, acc, params)
        r["config"]["method_options"]["rank"] = rank
        write_json_atomic(tmp_path / "runs" / f"{name}_cars_seed0_lr0.01.json", r)
    _, _, text = ablate_report.write_report(tmp_path, "targets")
    assert text.splitlines()[2:7] == ["| Adapted modules | Rank | Params | cars |", "|---|---:|---:|---:|",
                                      "| q, v | 7 | 0.26M | 80.0 |", "| q, v + MLP | 2 | 0.26M | 82.0 |",
                                      "| all linear | 2 | 0.33M | 81.0 |"]
    assert "as close to q, v's as the rank allows" in text


def test_scale_table_reads_each_neat_variant_at_loras_selected_lr(tmp_path):
    # (variant, lr, seed) -> (test, validation): LoRA selects 0.01, s = 1 selects 0.03, auto selects 0.01
    scores = {("lora", 0.01, 0): (0.90, 0.9), ("lora", 0.01, 1): (0.92, 0.9), ("lora", 0.03, 0): (0.70, 0.7),
              ("lora", 0.03, 1): (0.72, 0.7), ("neat-s1", 0.01, 0): (0.80, 0.8), ("neat-s1", 0.01, 1): (0.84, 0.8),
              ("neat-s1", 0.03, 0): (0.88, 0.9), ("neat-s1", 0.03, 1): (0.90, 0.9),
              ("neat-auto", 0.01, 0): (0.89, 0.9), ("neat-auto", 0.01, 1): (0.91, 0.9),
              ("neat-auto", 0.03, 0): (0.60, 0.6), ("neat-auto", 0.03, 1): (0.62, 0.6)}
    labels = {"lora": ("LoRA", "lora", {}), "neat-s1": ("s = 1", "neat", {"scale": 1.0}),
              "neat-auto": ("s = auto", "neat", {"scale": "auto"})}
    for (name, lr, seed), (acc, val) in scores.items():
        label, method, options = labels[name]
        r = _result("scale", name, label, method, options, "digits59", lr, seed, acc, val, 10_752, "vit_tiny",
                    "Digits 5-9")
        if name == "neat-auto":
            r["auto_scales"] = {"min": 1.5, "mean": 2.0, "max": 2.5, "count": 8}
        write_json_atomic(tmp_path / "runs" / f"{name}_digits59_seed{seed}_lr{lr:g}.json", r)
    _, _, text = ablate_report.write_report(tmp_path, "scale")
    assert text.splitlines()[2:9] == [
        "| Setting | Params | Digits 5-9 |", "|---|---:|---:|",
        "| s = 1, own lr | 10.8K | 89.0 ± 1.4 (lr 0.03) |", "| s = 1, at LoRA's lr | 10.8K | 82.0 ± 2.8 (lr 0.01) |",
        "| s = auto, own lr | 10.8K | 90.0 ± 1.4 (lr 0.01) |", "| s = auto, at LoRA's lr | 10.8K | 90.0 ± 1.4 (lr 0.01) |",
        "| LoRA, own lr | 10.8K | 91.0 ± 1.4 (lr 0.01) |"]
    assert "Selected lrs on Digits 5-9: neat-s1 0.03, neat-auto 0.01, lora 0.01." in text
    assert "s = auto came out as 2 on average per slice on this backbone (from 1.5 to 2.5; 8 slices)" in text
    assert "NEAT paper" not in text   # no published number for a tiny ViT or this study
    assert (tmp_path / "scale.png").read_bytes()[:4] == b"\x89PNG"


def test_a_report_without_results_of_the_study_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="No scale study results in .*runs; run python -m benchmarks.ablate "
                                                "--study scale --out"):
        ablate_report.write_report(tmp_path, "scale")
