"""Recipes cite every value; micro-batches make the effective batch exactly; adapter sizes match within each method's
granularity; --dry-run lists the plan with exact parameter counts; DTD's split rule."""

import argparse

import pytest
import timm

from benchmarks.core import budget
from benchmarks.core.catalog import MethodOptions, methods_for, size_knob
from benchmarks.core.errors import SetupError
from benchmarks.core.flags import with_recipe_flags
from benchmarks.core.loop import accumulation
from benchmarks.glue import recipes as glue_recipes
from benchmarks.vtab import cli as vtab
from benchmarks.vtab import recipes
from benchmarks.vtab.data import load_splits

from support.images import write_image_folder

pytestmark = pytest.mark.usefixtures("datasets_cache")  # arrow files in the test's own folder


@pytest.mark.parametrize("dataset", recipes.IMAGE_DATASETS)
@pytest.mark.parametrize("method", methods_for("image"))
def test_every_image_recipe_cites_every_value(method, dataset):
    recipe = recipes.recipe_for(method, dataset)
    assert recipe.uncited() == []
    assert all(note.strip() for note in recipe.sources.values())


@pytest.mark.parametrize("task", glue_recipes.GLUE_TASKS)
@pytest.mark.parametrize("method", methods_for("text"))
def test_every_glue_recipe_cites_every_value(method, task):
    recipe = glue_recipes.glue_recipe(method, task)
    assert recipe.uncited() == []
    assert all(recipe.sources[k].strip() for k in (*recipe.options, *recipe.data))


def test_published_image_recipes():
    for dataset in recipes.PAPER_DATASETS:
        fourier, neat = recipes.recipe_for("fourierft", dataset), recipes.recipe_for("neat", dataset)
        assert fourier.lr == (0.2 if dataset in ("eurosat", "cifar100") else 0.3)   # FourierFT's spectral lr
        assert (fourier.batch_size, neat.batch_size, neat.clip_grad, neat.epochs) == (200, 256, 1.0, 10)
        assert fourier.grid == (fourier.lr,) and neat.grid == (neat.lr,)              # published: no sweep
        assert fourier.sources["lr"] == f"Chaos96/fourierft experiments/ViT/{dataset}-base-3000.bash"
    assert recipes.recipe_for("neat", "cars").lr == 1e-2 and recipes.recipe_for("neat", "resisc45").head_lr == 1e-2
    assert recipes.recipe_for("neat", "dtd").weight_decay == recipes.recipe_for("fourierft", "dtd").weight_decay == 7e-5
    assert recipes.recipe_for("neat", "dtd").sources["lr"].startswith("unknown (run.sh has no DTD line)")
    lora, head = recipes.recipe_for("lora", "pets"), recipes.recipe_for("head", "pets")
    assert lora.grid == (1e-3, 3e-3, 1e-2) and lora.sources["lr"].startswith("unknown")
    assert (head.sweep, head.grid, head.at(3e-3).head_lr) == ("head_lr", (1e-3, 3e-3, 1e-2), 3e-3)


VERA_TABLE_11 = {"cifar100": (2e-2, 4e-3), "food101": (4e-2, 4e-2), "flowers102": (4e-2, 4e-3),
                 "resisc45": (7e-2, 5e-3)}   # VeRA paper Table 11, ViT-Base: (VeRA lr, head lr)


def test_vera_on_vit_trains_table_11_where_it_has_a_row_and_sweeps_a_grid_holding_its_lrs_elsewhere():
    for dataset in ("cifar100", "resisc45"):
        vera = recipes.recipe_for("vera", dataset)
        assert (vera.lr, vera.head_lr) == VERA_TABLE_11[dataset] and vera.grid == (vera.lr,)
        assert (vera.weight_decay, vera.schedule, vera.epochs, vera.batch_size) == (0.01, "linear", 10, 256)
        assert vera.sources["lr"] == vera.sources["head_lr"] == vera.sources["weight_decay"] == (
            f"VeRA paper (arXiv 2310.11454) Table 11 (ViT-Base) ({dataset}; rank 256 on query and value); stated "
            "deviation: VeRA trained on 10 images per class (Sec. 4.4); this suite trains on the full train split")
        assert vera.sources["batch_size"].startswith("unknown (Table 11 gives no batch size, clipping or warm-up)")
    published = {lr for lr, _ in VERA_TABLE_11.values()}
    for dataset in ("pets", "cifar10", "dtd", "eurosat", "cars", "fgvc"):
        vera, neat = recipes.recipe_for("vera", dataset), recipes.recipe_for("neat", dataset)
        assert vera.grid == (3e-3, 1e-2, 2e-2, 4e-2, 7e-2) and published <= set(vera.grid)
        assert (vera.head_lr, vera.weight_decay) == (neat.head_lr, neat.weight_decay)   # no Table 11 row here
        assert vera.sources["lrs"].startswith("unknown (VeRA's Table 11 covers CIFAR100, Food101, Flowers102 and "
                                              "RESISC45 only) — our choice: a grid holding every VeRA lr")


LORA_SCRIPTS = "microsoft/LoRA examples/NLU/roberta_base_{}.sh@c18b175ee040ae1254c37e540a244f75a06dc0a0"


def test_lora_on_glue_trains_the_official_scripts_effective_batch_from_their_per_device_micro_batches():
    lora = {t: glue_recipes.glue_recipe("lora", t) for t in glue_recipes.GLUE_TASKS}
    # (lr, epochs, batch per step = GPUs x per-device, micro-batch = per-device), read from each script
    assert {t: (r.lr, r.epochs, r.batch_size, r.micro_batch) for t, r in lora.items()} == {
        "cola": (4e-4, 80, 64, 32), "sst2": (5e-4, 60, 128, 16), "mrpc": (4e-4, 30, 128, 16),
        "stsb": (4e-4, 40, 128, 16), "qqp": (5e-4, 25, 128, 16), "mnli": (5e-4, 30, 128, 16),
        "qnli": (4e-4, 25, 256, 32), "rte": (5e-4, 80, 256, 32)}
    for task, r in lora.items():
        assert (r.head_lr, r.weight_decay, r.warmup, r.clip_grad, r.grid) == (r.lr, 0.1, 0.06, 1.0, (r.lr,))
        assert r.options == {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0} and r.data["max_length"] == 512
        assert r.sources["lr"].startswith(LORA_SCRIPTS.format(task) + " (--learning_rate, --num_train_epochs")
        assert accumulation(r.batch_size, r.micro_batch) == (r.micro_batch, r.batch_size // r.micro_batch)
    assert lora["cola"].sources["batch_size"] == (LORA_SCRIPTS.format("cola") + ": 2 GPUs x "
                                                  "--per_device_train_batch_size 32, no gradient accumulation = 64 "
                                                  "per step (Table 9's 32 is per device)")
    assert lora["sst2"].sources["micro_batch"] == (LORA_SCRIPTS.format("sst2") + ": --per_device_train_batch_size 16; "
                                                   "here micro-batches of 16 accumulated to the step's 128 "
                                                   "(--micro-batch: memory only)")
    assert lora["rte"].sources["lora_alpha"] == (
        "microsoft/LoRA examples/NLU/roberta_base_<task>.sh@c18b175ee040ae1254c37e540a244f75a06dc0a0 pass "
        "--lora_alpha 16 (α/r = 2) for every task, and these scripts produced the LoRA paper's rows; its Table 9 "
        "prints α = 8 — our choice: the scripts' 16")
    assert [t for t, r in lora.items() if "init" in r.data] == ["mrpc", "stsb", "rte"]   # the stated deviation
    dora = glue_recipes.glue_recipe("dora", "qnli")
    assert (dora.batch_size, dora.micro_batch, dora.options) == (256, 32, lora["qnli"].options)
    assert dora.sources["batch_size"].endswith("(DoRA on GLUE: unknown — our choice: LoRA's recipe)")


def test_micro_batch_flag_replaces_the_recipes_micro_batch_only():
    args = argparse.Namespace(lr=None, lrs=None, clip_grad=None, epochs=None, batch_size=None, head_lr=None,
                              weight_decay=None, micro_batch=8)
    given = with_recipe_flags(args, glue_recipes.glue_recipe("lora", "sst2"))
    assert (given.batch_size, given.micro_batch, given.sources["micro_batch"]) == (128, 8, "command line")
    assert accumulation(given.batch_size, given.micro_batch) == (8, 16)


def test_published_glue_recipes():
    cola = glue_recipes.glue_recipe("fourierft", "cola")
    assert (cola.options, cola.lr, cola.head_lr, cola.epochs) == (
        {"n_frequency": 1000, "fourier_scaling": 49.0}, 0.12, 8e-3, 100)
    assert cola.sources["lr"] == ("Chaos96/fourierft experiments/GLUE/cola-base-best.sh@1b660d143e787b9e7c6bcdda7a054ab8f65968ad"
                                  " and NLU_GLUE.py@ace4fe40a051d62066b97157e6888ea6d7f714c0")
    # the scripts' values where the FourierFT paper's Table 9 differs (MRPC scale 141, QNLI spectral lr 1e-2)
    mrpc, qnli = glue_recipes.glue_recipe("fourierft", "mrpc"), glue_recipes.glue_recipe("fourierft", "qnli")
    assert (mrpc.options["fourier_scaling"], qnli.lr) == (151.0, 0.1)
    assert "--scale 151" in mrpc.sources["fourier_scaling"] and "Table 9 prints 141" in mrpc.sources["fourier_scaling"]
    assert "--fft_lr 0.1" in qnli.sources["lr"] and "Table 9 prints 1e-2" in qnli.sources["lr"]
    assert mrpc.sources["lr"] == qnli.sources["fourier_scaling"].replace("qnli", "mrpc")   # the rest: the script
    for task in ("mnli", "qqp"):   # no script, no Table 9 row: QNLI's row, every value cited as such
        reused = glue_recipes.glue_recipe("fourierft", task)
        assert (reused.options, reused.lr, reused.head_lr, reused.epochs) == (qnli.options, 0.1, 1e-3, 40)
        assert {reused.sources[k] for k in ("lr", "head_lr", "epochs", "fourier_scaling")} == {
            glue_recipes.FOURIER_REUSE}
        assert glue_recipes.FOURIER_REUSE.startswith("unknown: FourierFT has no MNLI or QQP script")
    neat = glue_recipes.glue_recipe("neat-s", "qqp")
    assert (neat.options, neat.clip_grad, neat.warmup, neat.data) == ({"scale": 1.0, "rank": 1}, None, 0.06,
                                                                      {"max_length": 512})
    assert glue_recipes.glue_recipe("bitfit", "rte").options == {}   # NEAT-L's loop, not its options
    with pytest.raises(ValueError, match="Unknown GLUE task 'wnli'; choose from cola, sst2"):
        glue_recipes.glue_recipe("lora", "wnli")


def test_command_line_values_replace_and_cite():
    base = recipes.recipe_for("lora", "pets")
    args = argparse.Namespace(lr=2e-3, lrs=None, clip_grad=0.0, epochs=None, batch_size=None, head_lr=None,
                              weight_decay=None)
    given = with_recipe_flags(args, base)
    assert (given.grid, given.clip_grad, given.sources["lr"]) == ((2e-3,), None, "command line")
    swept = with_recipe_flags(argparse.Namespace(**{**vars(args), "lrs": (1e-4, 1e-3), "lr": None}), base)
    assert swept.grid == (1e-4, 1e-3) and swept.sources["lrs"] == "command line"


@pytest.mark.parametrize("batch, micro, world, expected", [
    (256, 64, 1, (64, 4)), (200, 64, 1, (50, 4)), (256, 64, 2, (64, 2)), (256, 512, 1, (256, 1)), (8, 3, 1, (2, 4)),
    (7, 4, 1, (1, 7)),
])
def test_micro_batches_make_the_effective_batch_exactly(batch, micro, world, expected):
    got = accumulation(batch, micro, world)
    assert got == expected and got[0] * got[1] * world == batch


def test_an_effective_batch_that_does_not_split_over_the_processes_is_refused():
    with pytest.raises(SetupError, match="The effective batch 256 does not split over 3 processes"):
        accumulation(256, 64, 3)


def test_closest_size_within_the_granularity():
    assert budget.closest_size(10_752, lambda r: 1536 * r) == (7, 10_752)
    assert budget.closest_size(250, lambda n: 100 * n) == (2, 200)     # a tie: the smaller size
    assert budget.closest_size(260, lambda n: 100 * n) == (3, 300)
    assert budget.closest_size(5, lambda n: 100 * n) == (1, 100)       # never below 1


@pytest.mark.slow
def test_match_to_sizes_every_adapter_method_to_the_reference():
    def tiny():
        return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3, img_size=32, patch_size=8,
                                 depth=2, embed_dim=64, num_heads=2)

    def count(method, options):
        return budget.method_params(tiny, method, options)

    methods = ["neat", "lora", "dora", "fourierft", "vera", "peanut", "head"]
    matched = budget.match_to("neat", methods, lambda m: MethodOptions(), count)
    target = count("neat", MethodOptions())
    assert target == 2 * 2 * (64 * 7 + 7 * 64)
    assert (matched["lora"].lora_r, matched["lora"].lora_alpha) == (7, 7)        # alpha / r stays 1
    assert count("lora", matched["lora"]) == target == count("fourierft", matched["fourierft"])
    for method in ("dora", "vera", "peanut"):
        size, knob = size_knob(method), matched[method]
        step = count(method, budget.resized(method, knob, getattr(knob, size) + 1)) - count(method, knob)
        assert abs(count(method, knob) - target) <= step / 2, method
    assert matched["head"] == MethodOptions()


@pytest.mark.slow
def test_dry_run_lists_the_paper_plan_with_exact_parameters(capsys):
    assert vtab.main(["--suite", "paper", "--dry-run", "--method", "neat,fourierft,lora,vera", "--dataset",
                      "pets,dtd,cifar100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("Plan: 26 runs (1 seed(s)), model vit_base_patch16_224.orig_in21k (random init from timm's "
                        "config for the counts).")
    assert "| vera | pets | 0.003,0.01,0.02,0.04,0.07 (lr) | 256 | 64 x 4 x 1 | 10 | 24,576 | 28,453 |" in lines
    assert "| vera | cifar100 | 0.02 (lr) | 256 | 64 x 4 x 1 | 10 | 24,576 | 76,900 |" in lines   # Table 11
    assert "| neat | pets | 0.005 (lr) | 256 | 64 x 4 x 1 | 10 | 258,048 | 28,453 |" in lines
    assert "| fourierft | pets | 0.3 (lr) | 200 | 50 x 4 x 1 | 10 | 72,000 | 28,453 |" in lines
    assert "| lora | dtd | 0.001,0.003,0.01 (lr) | 256 | 64 x 4 x 1 | 10 | 589,824 | 36,143 |" in lines


@pytest.mark.slow
def test_dry_run_with_matched_sizes(capsys):
    assert vtab.main(["--suite", "paper", "--dry-run", "--method", "neat,lora,fourierft", "--dataset", "pets",
                      "--match-params", "neat", "--micro-batch", "32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(", adapters sized to neat's.")
    assert "| lora | pets | 0.001,0.003,0.01 (lr) | 256 | 32 x 8 x 1 | 10 | 258,048 | 28,453 |" in lines  # r = 7
    assert "| fourierft | pets | 0.3 (lr) | 200 | 25 x 8 x 1 | 10 | 258,048 | 28,453 |" in lines     # n = 10,752


def test_dtd_keeps_its_partition_and_holds_out_10_percent_of_train_for_validation(tmp_path):
    root = write_image_folder(tmp_path / "dtd", {"train": 20, "test": 10})   # 3 classes: 60 train, 30 test
    splits = load_splits("dtd", root, accept_subset=True)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54, 6, 30)   # never pooled: test stays test
    again = load_splits("dtd", root, accept_subset=True)
    assert again.val["label"] == splits.val["label"] and again.train["label"] == splits.train["label"]   # seeded
