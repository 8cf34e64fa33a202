"""The Gradio demo driven through gradio_client on localhost, on tiny adapters laid out as the smoke suite
saves them (no downloads): predictions, stats, bad uploads, loading errors, Hub ids, the text tab."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import zlib
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the test server

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402

import neat_core  # noqa: E402
import neat_text  # noqa: E402
import neat_vision  # noqa: E402
from benchmarks.core.methods import VIT_PEFT_TARGETS as PEFT_TARGETS, split_for_peft  # noqa: E402
from demo.ui import EXAMPLES, build_app  # noqa: E402
from demo.compare import stats, top_k, verdict  # noqa: E402
from demo.models import MAKE_TEXT, Choice, load_pair, missing_message, saved_choice  # noqa: E402

from conftest import randomize_adapters  # noqa: E402
from support.hub_cache import fill_cache  # noqa: E402

VIT = dict(img_size=24, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=5)
MAX_BYTES = 100_000  # the test app's upload limit
WORDS = ["good", "bad", "film", "great", "dull", "long", "a", "the", "is", "was"]



def _perturb_lora(model: torch.nn.Module) -> None:
    """LoRA's B starts at zero; give it values so that the adapter changes outputs."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


def _vision_adapters(root: Path) -> None:
    """A timm base folder (as the smoke suite caches it), a NEAT and a PEFT LoRA adapter, and result files."""
    from peft import LoraConfig, get_peft_model
    from timm.models import save_for_hf

    torch.manual_seed(0)
    save_for_hf(timm.create_model("vit_tiny_patch16_224", pretrained=False, **VIT), str(root / "base"),
                safe_serialization=True, model_config={"pretrained_cfg": {"tag": "digits04"}})
    neat = neat_vision.patch(timm.create_model(f"local-dir:{root / 'base'}", pretrained=True), rank=4)
    randomize_adapters(neat)
    neat_core.save_adapter(neat, root / "results" / "adapters" / "neat_digits59_seed0")
    targets = list(PEFT_TARGETS["qv"])   # the vtab suite's default: q and v of the split attn.qkv
    lora = get_peft_model(split_for_peft(timm.create_model(f"local-dir:{root / 'base'}", pretrained=True), targets),
                          LoraConfig(r=4, target_modules=targets, modules_to_save=["head"]))
    _perturb_lora(lora)
    lora.save_pretrained(str(root / "results" / "adapters" / "lora_digits59_seed0"))
    (root / "results" / "runs").mkdir()
    for method in ("neat", "lora", "head"):
        result = {"method": method, "dataset": "digits59", "seed": 0, "accuracy": 0.5,
                  "config": {"model_path": str(root / "base")}}
        if method != "head":
            result["adapter_path"] = str(root / "results" / "adapters" / f"{method}_digits59_seed0")
        (root / "results" / "runs" / f"{method}_digits59_seed0.json").write_text(json.dumps(result))


def _text_adapters(root: Path) -> None:
    """A tiny BERT with a word-level tokenizer saved as a base folder, a NEAT and a PEFT LoRA adapter."""
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForSequenceClassification, BertConfig, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    words = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]").save_pretrained(root / "bert")
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=len(vocab), max_position_embeddings=32, id2label={0: "negative", 1: "positive"})
    AutoModelForSequenceClassification.from_config(config).save_pretrained(root / "bert")
    neat = neat_text.patch(AutoModelForSequenceClassification.from_pretrained(root / "bert"), rank=4)
    randomize_adapters(neat)
    neat_core.save_adapter(neat, root / "text-neat")
    lora = get_peft_model(AutoModelForSequenceClassification.from_pretrained(root / "bert"),
                          LoraConfig(r=4, target_modules=["query", "value"], modules_to_save=["classifier"]))
    _perturb_lora(lora)
    lora.save_pretrained(str(root / "text-lora"))
    (root / "glue" / "runs").mkdir(parents=True)
    for method, adapter in (("neat-s", "text-neat"), ("lora", "text-lora")):
        result = {"suite": "glue", "method": method, "dataset": "sst2", "seed": 0, "metric": "accuracy",
                  "score": 0.5, "adapter_path": str(root / adapter), "config": {"model_path": str(root / "bert")}}
        (root / "glue" / "runs" / f"{method}_sst2_seed0.json").write_text(json.dumps(result))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    _vision_adapters(root)
    _text_adapters(root)
    return root


@pytest.fixture(scope="module")
def choice(root) -> Choice:
    return saved_choice(root / "results")


@pytest.fixture(scope="module")
def server(root):
    """The app on a free localhost port; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = build_app(root / "results", root / "glue", max_bytes=MAX_BYTES)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
               allowed_paths=[str(EXAMPLES)])
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server, verbose=False)


def compare(client: Client, choice: Choice, path, **changes) -> tuple:
    fields = {**choice.__dict__, **changes}
    return client.predict(fields["base"], fields["neat"], fields["lora"], fields["labels"],
                          handle_file(str(path)) if path is not None else None, api_name="/compare_images")


def plot_rows(plot: dict) -> list[list]:
    assert plot["columns"] == ["label", "probability"]
    return plot["data"]


STATS = (r"^\*\*{}\*\* · unmerged · latency \*\*\d+\.\d ms\*\* \(best of 5, batch 1, CPU\) · \*\*{}\*\* trainable "
         r"parameters \(adapter \+ head\)$")


# --- defaults -----------------------------------------------------------------------------------------
def test_defaults_are_the_smoke_suites_adapters(root, choice):
    assert choice == Choice(str(root / "base"), str(root / "results/adapters/neat_digits59_seed0"),
                            str(root / "results/adapters/lora_digits59_seed0"), "5, 6, 7, 8, 9")


def test_without_smoke_adapters_the_page_says_which_command_makes_them(tmp_path):
    assert saved_choice(tmp_path) is None
    assert missing_message(tmp_path) == (
        f"No NEAT and LoRA adapters saved in `{tmp_path}`: run `make bench` (the offline smoke suite: `python -m "
        "benchmarks.vtab --suite smoke`), which trains and saves a NEAT and a LoRA adapter there. Or enter adapter "
        "folders or Hub ids above.")
    app = build_app(tmp_path, tmp_path / "glue")
    shown = {b.elem_id: getattr(b, "value", None) for b in app.blocks.values() if getattr(b, "elem_id", None)}
    assert shown["image-message"] == missing_message(tmp_path)
    assert shown["text-message"] == missing_message(tmp_path / "glue", MAKE_TEXT)
    assert "python -m benchmarks.glue --method neat-s,lora --save-adapters neat-s,lora" in shown["text-message"]


# --- predictions --------------------------------------------------------------------------------------
def test_example_image_gives_both_top5_plots_stats_and_verdict(client, choice):
    message, preview, neat_plot, neat_stats, lora_plot, lora_stats, text = compare(
        client, choice, EXAMPLES / "digit_7.png")
    assert message == ""
    assert Image.open(preview).size == (24, 24)
    neat, lora = load_pair("image", choice)
    image = Image.open(EXAMPLES / "digit_7.png").convert("RGB")
    expected = [top_k(model(image)[0], model.labels) for model in (neat, lora)]
    for plot, frame in zip((neat_plot, lora_plot), expected):
        assert plot_rows(plot) == frame.values.tolist()
        assert sorted(row[0] for row in plot_rows(plot)) == ["5", "6", "7", "8", "9"]
        assert sum(row[1] for row in plot_rows(plot)) == pytest.approx(100, abs=0.05)
    assert plot_rows(neat_plot) != plot_rows(lora_plot)
    # NEAT and LoRA: 2 blocks x (q, v) x (A 48x4 + B 4x48); head 48x5 + 5 each
    assert re.match(STATS.format("NEAT", "1,781"), neat_stats), neat_stats
    assert re.match(STATS.format("LoRA", "1,781"), lora_stats), lora_stats
    assert text == verdict(*expected)


def test_neat_runs_unmerged_from_its_cached_factors_and_the_page_says_merged_or_unmerged(choice):
    neat, lora = load_pair("image", choice)
    image = Image.open(EXAMPLES / "digit_7.png").convert("RGB")
    probs, _ = neat(image)
    layers = [layer for _, layer in neat_core.neat_layers(neat.model)]
    assert layers and all(set(layer._inference_cache) == {"default"} for layer in layers)
    assert all(not t.requires_grad for layer in layers for t in layer._inference_cache["default"][2])
    assert not neat.merged and not lora.merged
    neat_core.merge(neat.model)
    lora.model.merge_adapter()
    try:
        assert neat.merged and lora.merged
        assert stats(neat, 1.0).startswith("**NEAT** · merged · latency **1.0 ms** (best of 5, batch 1, CPU)")
        assert stats(lora, 2.0).startswith("**LoRA** · merged · latency **2.0 ms**")
        assert (neat(image)[0] - probs).abs().max() < 1e-5
    finally:
        neat_core.unmerge(neat.model)
        lora.model.unmerge_adapter()
    assert not neat.merged and not lora.merged


def test_verdict_wording():
    a = pd.DataFrame({"label": ["7", "9", "5"], "probability": [60.0, 30.0, 10.0]})
    b = pd.DataFrame({"label": ["9", "7", "6"], "probability": [50.0, 45.0, 5.0]})
    assert verdict(a, b) == ("**Disagree:** NEAT predicts **7** (60.0%), LoRA predicts **9** (50.0%).\n\n"
                             "Only in NEAT's top 3: 5; only in LoRA's top 3: 6.")
    assert verdict(a, a) == ("**Agree:** both predict **7** (NEAT 60.0%, LoRA 60.0%).\n\n"
                             "Same top-3 labels in the same order.")


def test_lora_adapter_by_hub_id_from_the_offline_cache(client, choice, offline_cache):
    fill_cache(offline_cache, "org/lora-digits", Path(choice.lora))
    by_id = compare(client, choice, EXAMPLES / "digit_5.png", lora="org/lora-digits")
    by_folder = compare(client, choice, EXAMPLES / "digit_5.png")
    assert by_id[0] == "" and by_id[4] == by_folder[4]
    missing = compare(client, choice, EXAMPLES / "digit_5.png", lora="org/not-cached")
    assert missing[0].startswith("⚠️ Could not load the models: Adapter 'org/not-cached' is neither a local "
                                 "folder nor in the Hugging Face cache")


# --- bad input ----------------------------------------------------------------------------------------
def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height pixels but carries no pixel data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def _bad_files(tmp: Path) -> dict[str, Path]:
    noise = Image.fromarray(torch.randint(0, 255, (64, 64, 3), dtype=torch.uint8).numpy())
    noise.save(tmp / "whole.png")
    (tmp / "notes.txt").write_text("not an image")
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "big.png").write_bytes(b"\0" * (MAX_BYTES + 1))
    (tmp / "cut.png").write_bytes((tmp / "whole.png").read_bytes()[:6000])
    return {"text": tmp / "notes.txt", "empty": tmp / "empty.png", "bytes": tmp / "big.png",
            "pixels": _png_header_only(tmp / "wide.png", 10_000, 5_000), "corrupt": tmp / "cut.png",
            "bomb": _png_header_only(tmp / "bomb.png", 20_000, 20_000)}


BAD = {
    "none": "⚠️ Upload an image first (PNG, JPEG, WebP, ...) or pick one of the examples.",
    "text": "⚠️ The uploaded file 'notes.txt' is not an image this demo can read (PNG, JPEG, WebP, GIF, BMP, TIFF).",
    "empty": "⚠️ The uploaded file 'empty.png' is empty (0 bytes); upload an image file.",
    "bytes": "⚠️ The uploaded file 'big.png' is 0.1 MB; the limit is 0.1 MB.",
    "pixels": "⚠️ The image 'wide.png' is 10000 x 5000 pixels; the limit is 40,000,000 pixels: scale it down first.",
    "bomb": "⚠️ The image 'bomb.png' is too large to decode (over 40,000,000 pixels): scale it down first.",
    "corrupt": "⚠️ The image 'cut.png' is corrupt or truncated and cannot be decoded (",
}


def test_bad_uploads_give_a_message_and_the_app_keeps_serving(client, choice, tmp_path):
    files = {"none": None, **_bad_files(tmp_path)}
    for kind, path in files.items():
        message, preview, neat_plot, neat_stats, lora_plot, lora_stats, text = compare(client, choice, path)
        assert message.startswith(BAD[kind]), (kind, message)
        assert (preview, neat_plot, neat_stats, lora_plot, lora_stats, text) == (None, None, "", None, "", ""), kind
    assert compare(client, choice, EXAMPLES / "digit_9.png")[0] == ""


@pytest.mark.parametrize("mode, note", [
    ("L", "The image was L (grayscale); it was converted to RGB."),
    ("RGBA", "The image had transparency (RGBA); it was put on a white background."),
])
def test_grayscale_and_rgba_are_converted_with_a_note(client, choice, tmp_path, mode, note):
    path = tmp_path / f"digit_{mode}.png"
    Image.open(EXAMPLES / "digit_6.png").convert(mode).save(path)
    message, preview, neat_plot, *_ = compare(client, choice, path)
    assert message == note
    assert Image.open(preview).mode == "RGB" and len(plot_rows(neat_plot)) == 5


def test_loading_problems_are_messages(client, choice, root):
    cases = {
        "neat": (dict(neat=str(root / "nowhere")), "⚠️ Could not load the models: No adapter_config.json in "),
        "lora": (dict(lora=choice.neat), f"⚠️ Could not load the models: {choice.neat!r} is not a PEFT LoRA adapter "
                                         "(peft_type None)."),
        "labels": (dict(labels="a, b, c"), "⚠️ Could not load the models: 3 class names given, but the models "
                                           "have 5 classes."),
        "base": (dict(base=str(root / "no-base")), f"⚠️ Could not load the models: Base model "
                                                   f"{str(root / 'no-base')!r} does not exist"),
    }
    for name, (changes, expected) in cases.items():
        message = compare(client, choice, EXAMPLES / "digit_8.png", **changes)[0]
        assert message.startswith(expected), (name, message)


# --- text tab -----------------------------------------------------------------------------------------
def test_text_tab_compares_text_classifiers(client, root):
    text_choice = saved_choice(root / "glue")
    assert text_choice == Choice(str(root / "bert"), str(root / "text-neat"), str(root / "text-lora"), "")
    args = ("", text_choice.neat, text_choice.lora, "")  # base empty: the one the NEAT adapter names
    message, neat_plot, neat_stats, lora_plot, lora_stats, text = client.predict(
        *args, "a good film", api_name="/compare_texts")
    assert message == ""
    assert sorted(r[0] for r in plot_rows(neat_plot)) == sorted(r[0] for r in plot_rows(lora_plot)) == \
        ["negative", "positive"]
    assert re.match(STATS.format("NEAT", r"[\d,]+"), neat_stats) and re.match(STATS.format("LoRA", r"[\d,]+"),
                                                                                lora_stats)
    assert text.startswith(("**Agree:**", "**Disagree:**"))
    empty = client.predict(*args, "   ", api_name="/compare_texts")
    assert empty == ("⚠️ Enter a text to classify.", None, "", None, "", "")


# --- a real browser -----------------------------------------------------------------------------------
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def test_headless_chromium_uploads_an_image_and_sees_both_panels(server, tmp_path, monkeypatch):
    """Upload, press Compare, wait for both result panels; the screenshot goes to $DEMO_SCREENSHOT if set."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:  # not a skip: .ci/run installs them, and a browser test that silently skips proves nothing
        pytest.fail(f"{', '.join(missing)} missing: install Debian's chromium and chromium-driver "
                    "(`apt-get install chromium chromium-driver`, as .ci/run does).")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager never downloads a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1400"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        browser.get(server)
        wait = WebDriverWait(browser, 60)
        text = lambda elem_id: browser.find_element(By.ID, elem_id).text  # noqa: E731
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#image-upload input[type=file]")).send_keys(
            str(EXAMPLES / "digit_7.png"))
        wait.until(lambda b: "digit_7" in text("image-upload"))  # the uploaded file is listed
        browser.find_element(By.ID, "image-compare").click()
        wait.until(lambda b: "latency" in text("image-neat-stats") and "latency" in text("image-lora-stats"))
        for method in ("neat", "lora"):
            assert re.match(r"^(NEAT|LoRA) · unmerged · latency \d+\.\d ms \(best of 5, batch 1, CPU\) · 1,781 "
                            r"trainable parameters",
                            text(f"image-{method}-stats"))
            wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, f"#image-{method}-panel svg, "
                                                                  f"#image-{method}-panel canvas"))
        assert text("image-verdict").startswith(("Agree:", "Disagree:"))
        shot = Path(os.environ.get("DEMO_SCREENSHOT") or tmp_path / "demo.png")
        assert browser.save_screenshot(str(shot)) and Image.open(shot).size[0] >= 1000
        (tmp_path / "notes.txt").write_text("not an image")  # a bad upload: a message in the page
        browser.get(server)
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#image-upload input[type=file]")).send_keys(
            str(tmp_path / "notes.txt"))
        wait.until(lambda b: "notes" in text("image-upload"))
        browser.find_element(By.ID, "image-compare").click()
        wait.until(lambda b: "is not an image" in text("image-message"))
        assert text("image-message") == ("⚠️ The uploaded file 'notes.txt' is not an image this demo can read "
                                         "(PNG, JPEG, WebP, GIF, BMP, TIFF).")
    finally:
        browser.quit()
