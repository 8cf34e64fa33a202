"""Published reasoning numbers, as data with their sources, for the report to put beside ours: accuracies (%) per
test set as each source prints them, and the source's own printed average (never recomputed from rounded cells: the
sources averaged unrounded accuracies, so a recomputation can differ in the last digit, e.g. MiLoRA's math LoRA row
prints 38.7 where its rounded cells give 38.75). A row run by another paper than the method's own says so in its
note. PEFT's MetaMathQA results are in published_data/peft_metamathqa.json (benchmarks/llm/peft_board.py).
"""

from __future__ import annotations

from ..core.published import Published
from .recipes import TASK_TESTS

MILORA_SHA = "4740756d5d74700527d799a8d4a0c40dc9e92235"
MILORA_T1 = (f"MiLoRA paper Table 1 (sufenlp/MiLoRA assets/imgs/Commonsense_reasoning_result.png@{MILORA_SHA}, "
             "the README's image of it)")
MILORA_T2 = (f"MiLoRA paper Table 2 (sufenlp/MiLoRA assets/imgs/Math_reasoning_result.png@{MILORA_SHA}, the "
             "README's image of it)")
DORA = "DoRA README (NVlabs/DoRA commonsense_reasoning/README.md@7e2f10abbe8efe212c8fca1d983ae1d04ef13a18), r 32"
LLAMA2, LLAMA3 = "meta-llama/Llama-2-7b-hf", "meta-llama/Meta-Llama-3-8B"
DORA_RUN = "LoRA as run by DoRA's authors (not the LoRA paper's); MiLoRA's Table 1 cites the same row from DoRA"
MILORA_RERUN = "{method} as re-run by MiLoRA's authors (arXiv 2406.09044), not {method}'s own paper"


def _row(method: str, model: str, task: str, values: tuple[float, ...], average: float, source: str,
         note: str = "") -> Published:
    scores = dict(zip(TASK_TESTS[task], values, strict=True))
    return Published(method, method, model, {**scores, "average": average}, source, note=note)


# NEAT's own LLM tables could not be retrieved here, so no NEAT row is listed rather than one typed in from memory.
ROWS: tuple[Published, ...] = (
    _row("lora", LLAMA2, "commonsense", (69.8, 79.9, 79.5, 83.6, 82.6, 79.8, 64.7, 81.0), 77.6, DORA, DORA_RUN),
    _row("dora", LLAMA2, "commonsense", (71.8, 83.7, 76.0, 89.1, 82.6, 83.7, 68.2, 82.4), 79.7, DORA),
    _row("pissa", LLAMA2, "commonsense", (67.6, 78.1, 78.4, 76.6, 78.0, 75.8, 60.2, 75.6), 73.8, MILORA_T1,
         MILORA_RERUN.format(method="PiSSA")),
    _row("milora", LLAMA2, "commonsense", (67.6, 83.8, 80.1, 88.2, 82.0, 82.8, 68.8, 80.6), 79.2, MILORA_T1),
    _row("lora", LLAMA3, "commonsense", (70.8, 85.2, 79.9, 91.7, 84.3, 84.2, 71.2, 79.0), 80.8, DORA, DORA_RUN),
    _row("dora", LLAMA3, "commonsense", (74.6, 89.3, 79.9, 95.5, 85.6, 90.5, 80.4, 85.8), 85.2, DORA),
    _row("pissa", LLAMA3, "commonsense", (67.1, 81.1, 77.2, 83.6, 78.9, 77.7, 63.2, 74.6), 75.4, MILORA_T1,
         MILORA_RERUN.format(method="PiSSA")),
    _row("milora", LLAMA3, "commonsense", (68.8, 86.7, 77.2, 92.9, 85.6, 86.8, 75.5, 81.8), 81.9, MILORA_T1),
    _row("lora", LLAMA2, "math", (60.6, 16.9), 38.7, MILORA_T2, MILORA_RERUN.format(method="LoRA")),
    _row("pissa", LLAMA2, "math", (58.2, 15.8), 37.0, MILORA_T2, MILORA_RERUN.format(method="PiSSA")),
    _row("milora", LLAMA2, "math", (63.5, 17.8), 40.7, MILORA_T2),
)
