"""The demo's page: one base model, a NEAT and a LoRA adapter, their top-5 predictions side by side.

`build_app()` returns the `gr.Blocks` (demo.app serves it; tests drive it through gradio_client). By default it
loads the adapters the offline smoke suite saved (`make bench`) and, for text, those `python -m benchmarks.glue
--save-adapters ...` saved; any adapter folder or Hub id can be entered in the page.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline by default: no calls home

import gradio as gr  # noqa: E402

from .compare import stats, top_k, verdict  # noqa: E402
from .images import MAX_BYTES, BadImage, load_rgb  # noqa: E402
from .models import (GLUE_RESULTS, MAKE_TEXT, SMOKE_RESULTS, Choice, LoadError, load_pair,  # noqa: E402
                     missing_message, saved_choice)

EXAMPLES = Path(__file__).parent / "examples"
LOG = logging.getLogger("demo")
TEXT_EXAMPLES = ["A gripping, beautifully acted film.", "Dull, far too long and badly written."]
INTRO = """# NEAT vs LoRA
NEAT adapts a frozen weight with a small network of the weight itself (ΔW = σ(W₀A)B); LoRA learns ΔW = BA.
Pick a base model and one adapter of each kind (local folders or Hugging Face Hub ids), then compare their
top-5 predictions, latency and trainable parameters. Both run unmerged, beside the frozen weights as when serving
several adapters; NEAT evaluates its weight network once and reuses the result (its inference cache), so each
forward costs what LoRA's does."""


def _failure(message: str, with_preview: bool) -> tuple:
    return (f"⚠️ {message}", *([None] if with_preview else []), None, "", None, "", "")


def _on_page(with_preview: bool):
    """Decorate a handler so that every failure becomes a message on the page; the app keeps serving."""
    def wrap(handler):
        @functools.wraps(handler)
        def run(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except (BadImage, LoadError) as err:
                return _failure(str(err), with_preview)
            except Exception as err:  # noqa: BLE001  never a stack trace in the page
                LOG.exception("demo handler failed")
                return _failure(f"Unexpected error ({type(err).__name__}: {err}).", with_preview)
        return run
    return wrap


def _choice(*fields: str | None) -> Choice:
    return Choice(*(f or "" for f in fields))


def _compare(kind: str, choice: Choice, raw, note: str = "") -> tuple:
    """Run both models of `choice` on `raw`: (message, neat plot, neat stats, lora plot, lora stats, verdict)."""
    try:
        neat, lora = load_pair(kind, choice)
    except Exception as err:  # noqa: BLE001  a loading failure of any kind is reported as such
        text = str(err) if isinstance(err, (LoadError, FileNotFoundError)) else f"{type(err).__name__}: {err}"
        raise LoadError(f"Could not load the models: {text}") from None
    (p_neat, ms_neat), (p_lora, ms_lora) = neat(raw), lora(raw)
    top_neat, top_lora = top_k(p_neat, neat.labels), top_k(p_lora, lora.labels)
    return (note, top_neat, stats(neat, ms_neat), top_lora, stats(lora, ms_lora), verdict(top_neat, top_lora))


@_on_page(with_preview=True)
def compare_images(base: str, neat: str, lora: str, labels: str, path: str | None,
                   max_bytes: int = MAX_BYTES) -> tuple:
    """Handler of the image tab: checks the upload, then compares the two models on it."""
    image, note = load_rgb(path, max_bytes)
    message, *rest = _compare("image", _choice(base, neat, lora, labels), image, note)
    return (message, image, *rest)


@_on_page(with_preview=False)
def compare_texts(base: str, neat: str, lora: str, labels: str, text: str | None) -> tuple:
    """Handler of the text tab."""
    if not text or not text.strip():
        return _failure("Enter a text to classify.", with_preview=False)
    return _compare("text", _choice(base, neat, lora, labels), text.strip())


def _adapter_inputs(choice: Choice, base_help: str) -> list[gr.Textbox]:
    with gr.Row():
        fields = [gr.Textbox(label="Base model", value=choice.base, placeholder=base_help),
                  gr.Textbox(label="NEAT adapter (folder or Hub id)", value=choice.neat),
                  gr.Textbox(label="LoRA adapter (PEFT folder or Hub id)", value=choice.lora),
                  gr.Textbox(label="Class names (comma separated; empty: the model's)", value=choice.labels)]
    return fields


def _result_panels(prefix: str) -> list[gr.components.Component]:
    outputs = []
    with gr.Row():
        for method in ("NEAT", "LoRA"):
            with gr.Column(elem_id=f"{prefix}-{method.lower()}-panel"):
                outputs.append(gr.BarPlot(x="label", y="probability", sort="-y", y_lim=[0, 100],
                                          y_title="probability (%)", label=f"{method}: top 5", height=260))
                outputs.append(gr.Markdown(elem_id=f"{prefix}-{method.lower()}-stats"))
    outputs.append(gr.Markdown(elem_id=f"{prefix}-verdict"))
    return outputs


def build_app(results_dir: str | Path = SMOKE_RESULTS, text_results_dir: str | Path = GLUE_RESULTS,
              max_bytes: int = MAX_BYTES) -> gr.Blocks:
    """The demo's `gr.Blocks`: an image tab (timm; defaults: the smoke suite's adapters under `results_dir`) and a
    text tab (transformers; defaults: adapters benchmarks.glue saved under `text_results_dir`)."""
    choice, text_choice = saved_choice(results_dir), saved_choice(text_results_dir)
    start = "" if choice else missing_message(results_dir)
    text_start = "" if text_choice else missing_message(text_results_dir, MAKE_TEXT)
    with gr.Blocks(title="NEAT vs LoRA") as app:
        gr.Markdown(INTRO)
        with gr.Tab("Images"):
            inputs = _adapter_inputs(choice or Choice(), "a local timm folder or .safetensors file; empty: the "
                                                          "base the NEAT adapter names (Hub or cache)")
            with gr.Row():
                upload = gr.File(label="Image file", type="filepath", elem_id="image-upload")
                preview = gr.Image(label="What the models see (RGB)", interactive=False, height=200)
            button = gr.Button("Compare", variant="primary", elem_id="image-compare")
            message = gr.Markdown(start, elem_id="image-message")
            panels = _result_panels("image")
            gr.Examples([[str(p)] for p in sorted(EXAMPLES.glob("*.png"))], inputs=[upload], label="Examples")
            button.click(lambda *args: compare_images(*args, max_bytes=max_bytes), [*inputs, upload],
                         [message, preview, *panels], api_name="compare_images")
        with gr.Tab("Text"):
            text_inputs = _adapter_inputs(text_choice or Choice(), "a local save_pretrained folder; empty: the base "
                                                                   "the NEAT adapter names (Hub or cache)")
            text = gr.Textbox(label="Text", lines=3, elem_id="text-input")
            text_button = gr.Button("Compare", variant="primary", elem_id="text-compare")
            text_message = gr.Markdown(text_start, elem_id="text-message")
            text_panels = _result_panels("text")
            gr.Examples([[t] for t in TEXT_EXAMPLES], inputs=[text], label="Examples")
            text_button.click(compare_texts, [*text_inputs, text], [text_message, *text_panels],
                              api_name="compare_texts")
    return app
