"""benchmarks.llm end to end on the smoke assets (tiny random LLaMA, generated data in the real layouts):
results, predictions, adapters, report, resume; DDP on two CPU processes against one; bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.llm import cli as llm
from benchmarks.llm import plan as llm_setup
from benchmarks.llm import smoke as llm_smoke
from benchmarks.llm.answers import extract
from benchmarks.llm.tasks import TASKS

from support.distributed import become_rank, free_port

pytestmark = pytest.mark.usefixtures("datasets_cache")  # arrow files in the test's own folder

ROOT = Path(__file__).parents[2]




@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """The smoke assets without pre-training (random weights: the pipeline, not the accuracy, is tested)."""
    folder = tmp_path_factory.mktemp("llm-cache")
    llm_smoke.assets(folder, pretrain_epochs=0)
    return folder


def cli(cache: Path, out: Path, *extra: str) -> list[str]:
    return ["--suite", "smoke", "--cache-dir", str(cache), "--pretrain-epochs", "0", "--out", str(out), "--threads",
            "1", "--no-progress", "--eval-limit", "4", *extra]


@pytest.mark.slow
def test_end_to_end_neat_and_lora_then_resume(cache, tmp_path, capsys):
    out = tmp_path / "out"
    args = cli(cache, out, "--method", "neat,lora", "--tasks", "commonsense,math", "--tests", "boolq,piqa,gsm8k,MATH",
               "--epochs", "1")
    assert llm.main(args) == 0
    printed = capsys.readouterr().out
    assert "neat on commonsense seed 0 lr 0.005: accuracy" in printed and "train tokens/s" in printed
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["lora_commonsense_seed0_lr0.005.json", "lora_math_seed0_lr0.005.json",
                    "neat_commonsense_seed0_lr0.005.json", "neat_math_seed0_lr0.005.json"]
    for name in runs:
        r = json.loads((out / "runs" / name).read_text())
        task = TASKS[r["dataset"]]
        assert r["suite"] == "llm" and set(r["tests"]) == ({"boolq", "piqa"} if task.name == "commonsense"
                                                           else {"gsm8k", "MATH"})
        assert r["score"] == pytest.approx(sum(t["accuracy"] for t in r["tests"].values()) / 2)
        assert r["scores"] == {name: t["accuracy"] for name, t in r["tests"].items()} and r["metric"] == "accuracy"
        assert all(t["total"] == 4 and t["accuracy"] == t["correct"] / 4 for t in r["tests"].values())
        # smoke data sizes, batch 16, one epoch: commonsense holds 16 of its 288 rows out (the recipe's hold-out,
        # shrunk), math trains on its first 48 rows (MiLoRA's slice, shrunk)
        steps = (288 - 16 if task.name == "commonsense" else 48) // 16
        assert len(r["step_losses"]) == r["optimizer_steps"] == steps
        assert r["train_tokens_per_s"] > 0 and r["config"]["recipe"]["epochs"] == 1
        rank = r["config"]["recipe"]["options"]["rank" if r["method"] == "neat" else "lora_r"]
        assert rank == 8 and r["config"]["targets"] == ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]
        predictions = json.loads(Path(r["predictions_path"]).read_text())
        for test, records in predictions.items():
            kind = task.test(test).answer_kind
            assert sum(x["correct"] for x in records) == r["tests"][test]["correct"]
            assert all(x["prediction"] == extract(kind, x["generation"]) for x in records)
    neat = json.loads((out / "runs" / "neat_commonsense_seed0_lr0.005.json").read_text())
    assert neat["method_params"] == 2 * 2 * 8 * (4 * 64 + 128)  # 2 layers, A and B of width in (down: 128), rank 8
    assert {p.name for p in Path(neat["adapter"]["neat_adapter"]).iterdir()} == {"adapter_config.json",
                                                                                  "adapter_model.safetensors"}
    assert "orientation" in neat["adapter"]["peft_adapter_unavailable"]
    lora = json.loads((out / "runs" / "lora_math_seed0_lr0.005.json").read_text())
    assert (Path(lora["adapter"]["peft_adapter"]) / "adapter_config.json").is_file()
    table = (out / "report.md").read_text()
    assert "| Method | Params | BoolQ | PIQA | Avg. |" in table and "| Method | Params | GSM8K | MATH | Avg. |" in table
    assert "Only the first 4 examples of each test set were answered." in table and "NEAT/LoRA training" in table
    assert (out / "accuracy_vs_params.png").read_bytes()[:4] == b"\x89PNG"
    from benchmarks import report

    assert report.main([str(out)]) == 0 and (out / "report.md").read_text() == table  # same report from the tool

    finished = {p.name: p.read_bytes() for p in (out / "runs").iterdir()}
    (out / "runs" / "lora_math_seed0_lr0.005.json").unlink()
    assert llm.main(args) == 0
    printed = capsys.readouterr().out
    assert "3 of 4 runs already finished" in printed and printed.count(" seed 0 lr 0.005: accuracy") == 1
    assert "lora on math seed 0" in printed
    kept = "lora_math_seed0_lr0.005.json"
    assert {p.name: p.read_bytes() for p in (out / "runs").iterdir() if p.name != kept} == {
        k: v for k, v in finished.items() if k != kept}


def _ddp_rank(rank: int, argv: list[str], port: int) -> None:
    """One torchrun-style worker: the environment torchrun sets, then the CLI."""
    become_rank(rank, port)
    assert llm.main(argv) == 0


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(cache, tmp_path, capfd):
    import torch.multiprocessing as mp

    common = ["--method", "neat", "--tasks", "commonsense", "--tests", "boolq,winogrande", "--epochs", "1",
              "--batch-size", "16", "--micro-batch", "8", "--save-adapters", "neat"]
    assert llm.main(cli(cache, tmp_path / "one", *common)) == 0         # 2 micro-batches accumulated per step
    port = free_port()
    mp.start_processes(_ddp_rank, args=(cli(cache, tmp_path / "two", *common), port), nprocs=2, start_method="fork")
    assert capfd.readouterr().out.count("neat on commonsense seed 0 lr 0.005: accuracy") == 2  # one run, two processes
    one, two = (json.loads((tmp_path / d / "runs" / "neat_commonsense_seed0_lr0.005.json").read_text())
                for d in ("one", "two"))
    assert (one["gradient_accumulation"], two["gradient_accumulation"]) == (2, 1)
    assert two["device"]["distributed"] == "MULTI_CPU" and two["device"]["world_size"] == 2
    assert one["optimizer_steps"] == two["optimizer_steps"] == (288 - 16) // 16   # 16 rows held out
    torch.testing.assert_close(torch.tensor(two["step_losses"]), torch.tensor(one["step_losses"]), atol=1e-5,
                               rtol=1e-5)
    from safetensors.torch import load_file

    a, b = (load_file(Path(r["adapter"]["neat_adapter"]) / "adapter_model.safetensors") for r in (one, two))
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=1e-4)
    assert two["tests"] == one["tests"]  # the same weights answer the same (prompts split across the processes)


# --- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag, value, message", [
    ("--method", "neat,adapterx", "Unknown method(s) adapterx; choose from neat, lora, dora, pissa, milora, peanut."),
    ("--task", "physics", "Unknown task(s) physics; choose from commonsense, math, metamathqa."),
    ("--tests", "boolq,gsm8k", "Unknown test set(s) gsm8k; choose from boolq, piqa, social_i_qa, hellaswag, "
                               "winogrande, ARC-Easy, ARC-Challenge, openbookqa."),
    ("--rank", "0", "argument --rank: expected a positive integer, got '0'"),
    ("--device", "cuda:7", "argument --device: cuda:7 is not available on this machine; available: cpu"),
    ("--device", "mps", "argument --device: expected a torch device such as cpu, cuda or cuda:1, got 'mps'"),
    ("--model-path", "/nowhere/model", "--model-path /nowhere/model does not exist."),
    ("--lrs", "1e-4,3e-4", "--lrs: the reasoning suite trains one lr per run (each source publishes one, and its "
                           "hold-out only picks the checkpoint, so no validation score chooses between lrs); pass "
                           "--lr, or one value to --lrs."),
])
def test_bad_flags_are_one_argparse_error(capsys, flag, value, message):
    with pytest.raises(SystemExit) as done:
        llm.parse_args([flag, value])
    assert done.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"error: {message}")


@pytest.mark.slow
def test_flags_are_checked_before_torch_is_imported():
    code = ("import sys\nfrom benchmarks.llm import cli as llm\ntry:\n    llm.parse_args(['--method', 'x'])\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_model_without_the_recipes_layers_suggests_targets_and_writes_nothing(cache, tmp_path, capsys):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    model_dir = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=512, n_positions=64)).save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(next(cache.glob("smoke-llm-*/model"))).save_pretrained(model_dir)
    out = tmp_path / "out"
    assert llm.main(cli(cache, out, "--method", "neat", "--tasks", "commonsense", "--model-path", str(model_dir))) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ("error: Targets q_proj, k_proj, v_proj, up_proj, down_proj (the recipe's, or --targets) match no "
                   "linear layer of GPT2LMHeadModel; its linear layers are named lm_head. On the command line: "
                   "--targets with some of them.")
    assert not out.exists()


@pytest.mark.slow
def test_data_without_the_needed_fields_is_one_error_and_writes_nothing(cache, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "commonsense_170k.json").write_text(json.dumps([{"question": "q", "label": "true"}]))
    out = tmp_path / "out"
    assert llm.main(cli(cache, out, "--method", "lora", "--tasks", "commonsense", "--data-dir", str(data))) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {data / 'commonsense_170k.json'} lacks field(s) ['instruction', 'output', 'answer'] (it has "
        "['label', 'question']); expected instruction, input, output, answer.")
    assert not out.exists()


def test_no_network_and_no_data_dir_names_the_flag(monkeypatch, tmp_path, capsys):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(llm_setup, "hub_reachable", lambda: False)
    out = tmp_path / "out"
    assert llm.main(["--task", "math", "--method", "neat", "--out", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: math training data (meta-math/MetaMathQA) is not available: the Hugging Face Hub cannot be reached "
        "(no network) and no --data-dir was given. Download it where the network is reachable and pass --data-dir "
        "DIR (DIR in LLM-Adapters' layout: commonsense_170k.json and <test>/test.json (boolq, piqa, social_i_qa, "
        "hellaswag, winogrande, ARC-Easy, ARC-Challenge, openbookqa); for math MetaMathQA-395K.json, gsm8k_test.jsonl "
        "and MATH_test.jsonl (or gsm8k/test.json, MATH/test.json); JSON or JSON lines with instruction/input/output/"
        "answer, or the source's own columns).")
    assert not out.exists()


def test_a_micro_batch_that_does_not_divide_the_batch_takes_the_largest_that_does(capsys):
    assert llm.main(["--suite", "smoke", "--method", "neat", "--tasks", "math", "--batch-size", "10",
                     "--micro-batch", "4", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert ("| neat | math | 0.005 | 10 | 2 x 5 x 1 | 2 | warm-up 4 steps, linear, wd 0 | rank=8, scale=1.0, "
            "orientation in | q_proj,k_proj,v_proj,up_proj,down_proj | cutoff 192, prompt masked, first 48 rows | "
            "greedy, max new tokens gsm8k 24, MATH 24 |") in printed
    assert ("| math: train | --data-dir the smoke suite's generated files (MetaMathQA-395K.json or "
            "MetaMathQA/train.json or MetaMathQA/train.jsonl; generated: not checked) | train | — | — |") in printed
