"""Published reasoning numbers, as data with their sources, for the report to put beside ours: accuracies (%) per
test set as each source prints them, and the source's own average where it prints one (never recomputed from
rounded cells). A row that is a re-run by another paper than the method's own says so in its note.
"""

from __future__ import annotations

from ..core.published import Published
from .recipes import TASK_TESTS

MILORA_T1 = "MiLoRA paper Table 1 (README image, github sufenlp/MiLoRA)"
MILORA_T2 = "MiLoRA paper Table 2 (README image, github sufenlp/MiLoRA)"
DORA = "DoRA README (github NVlabs/DoRA commonsense_reasoning), r 32"
LLAMA2, LLAMA3 = "meta-llama/Llama-2-7b-hf", "meta-llama/Meta-Llama-3-8B"


def _row(method: str, model: str, task: str, values: tuple[float, ...], source: str, note: str = "",
         label: str = "") -> Published:
    return Published(label or method, method, model, dict(zip(TASK_TESTS[task], values, strict=True)), source,
                     note=note)


# NEAT's own LLM tables could not be retrieved here, so no NEAT row is listed rather than one typed in from memory.
ROWS: tuple[Published, ...] = (
    _row("lora", LLAMA2, "commonsense", (69.8, 79.9, 79.5, 83.6, 82.6, 79.8, 64.7, 81.0), f"{DORA}; {MILORA_T1}"),
    _row("dora", LLAMA2, "commonsense", (71.8, 83.7, 76.0, 89.1, 82.6, 83.7, 68.2, 82.4), DORA),
    _row("pissa", LLAMA2, "commonsense", (67.6, 78.1, 78.4, 76.6, 78.0, 75.8, 60.2, 75.6), MILORA_T1),
    _row("milora", LLAMA2, "commonsense", (67.6, 83.8, 80.1, 88.2, 82.0, 82.8, 68.8, 80.6), MILORA_T1),
    _row("lora", LLAMA3, "commonsense", (70.8, 85.2, 79.9, 91.7, 84.3, 84.2, 71.2, 79.0), f"{DORA}; {MILORA_T1}"),
    _row("dora", LLAMA3, "commonsense", (74.6, 89.3, 79.9, 95.5, 85.6, 90.5, 80.4, 85.8), DORA),
    _row("pissa", LLAMA3, "commonsense", (67.1, 81.1, 77.2, 83.6, 78.9, 77.7, 63.2, 74.6), MILORA_T1),
    _row("milora", LLAMA3, "commonsense", (68.8, 86.7, 77.2, 92.9, 85.6, 86.8, 75.5, 81.8), MILORA_T1),
    _row("lora", LLAMA2, "math", (60.6, 16.9), MILORA_T2),
    _row("pissa", LLAMA2, "math", (58.2, 15.8), MILORA_T2),
    _row("milora", LLAMA2, "math", (63.5, 17.8), MILORA_T2),
)
