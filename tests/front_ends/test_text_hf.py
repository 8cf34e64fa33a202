"""neat_text keeps transformers' own machinery working: Trainer, save_pretrained after merging, generate."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file, save_file
from support.tiny_text import TINY, LabelledIds, logits, randomize, tiny_inputs, tiny_model  # noqa: F401
from transformers import AutoConfig, AutoModelForCausalLM, Trainer, TrainingArguments

import neat_core
import neat_text


def test_trainer_two_steps_move_only_adapter_and_head(tmp_path) -> None:
    model = neat_text.patch(tiny_model("bert"), rank=4)
    randomize(model, std=0.1)  # non-zero B so that A receives gradients too
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, learning_rate=1e-2,
                             report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True,
                             dataloader_num_workers=0)
    Trainer(model=model, args=args, train_dataset=LabelledIds()).train()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    expected = {n for n in before if ".neat." in n or n.startswith("classifier.copies.default.")}  # the adapter's head
    assert moved == expected and len(expected) == 2 * 3 * 2 + 2  # A, B of q, v in 3 layers + classifier w, b


_LOAD_WITHOUT_NEAT = textwrap.dedent("""
    import sys
    sys.modules["neat_core"] = sys.modules["neat_text"] = None  # neither is importable here
    try:
        import neat_core
    except ImportError:
        pass
    else:
        raise SystemExit("neat_core is importable")
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForSequenceClassification
    outputs = {}
    for folder in sys.argv[2:]:
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        with torch.no_grad():
            outputs[folder] = model(**load_file(folder + "/inputs.safetensors")).logits
    save_file({str(i): outputs[f] for i, f in enumerate(sys.argv[2:])}, sys.argv[1])
""")


def test_merge_and_unload_then_save_pretrained_loads_without_neat(tmp_path) -> None:
    folders, expected = [], []
    for model_type in ("bert", "gpt2"):  # nn.Linear and Conv1D bases
        model = neat_text.patch(tiny_model(model_type), rank=4, depth=4)
        randomize(model)
        inputs = tiny_inputs(model)
        adapted = logits(model, inputs)
        model = neat_core.merge_and_unload(model)
        assert not list(neat_core.neat_layers(model))
        folder = tmp_path / model_type
        model.save_pretrained(folder)
        save_file(inputs, folder / "inputs.safetensors")
        assert not any(".neat." in k or "base_layer" in k for k in load_file(folder / "model.safetensors"))
        folders.append(str(folder))
        expected.append(adapted)
    out = tmp_path / "outputs.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_NEAT, str(out), *folders], check=True, env=env,
                   cwd=tmp_path, timeout=120)
    got = load_file(out)
    for i, adapted in enumerate(expected):
        torch.testing.assert_close(got[str(i)], adapted, atol=1e-5, rtol=1e-5)


def test_generate_works_on_a_patched_causal_lm() -> None:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **TINY["llama"])).eval()
    prompt = torch.randint(1, 100, (1, 4), generator=torch.Generator().manual_seed(0))
    kwargs = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    base = model.generate(prompt, **kwargs)
    neat_text.patch(model, preset="paper_llm")
    assert neat_text.head_names(model) == []  # lm_head is not a classification head: it stays frozen
    assert torch.equal(model.generate(prompt, **kwargs), base)  # identity at init
    randomize(model, std=1.0)
    adapted = model.generate(prompt, **kwargs)
    assert adapted.shape == (1, 9) and not torch.equal(adapted, base)
