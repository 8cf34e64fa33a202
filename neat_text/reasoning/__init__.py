"""neat_text.reasoning: the commonsense and arithmetic reasoning tasks of the NEAT paper's LLM experiments.

Tasks and test sets as data (`tasks`), loading into one instruction/input/output/answer schema (`data`), the
lineage's Alpaca-style prompts with the prompt masked out of the loss (`prompts`), and answer extraction and
scoring per task (`answers`). The training and generation loops live in `benchmarks.llm_train`.
"""

from .answers import extract, is_correct
from .data import DATA_DIR_HELP, ReasoningDataError, load_split, load_task, unavailable_without_network
from .prompts import IGNORE_INDEX, eval_prompt, supervised_example, train_prompt
from .tasks import TASKS, Source, Task, Template, TestSet, get_task

__all__ = ["DATA_DIR_HELP", "IGNORE_INDEX", "ReasoningDataError", "Source", "TASKS", "Task", "Template", "TestSet",
           "eval_prompt", "extract", "get_task", "is_correct", "load_split", "load_task", "supervised_example",
           "train_prompt", "unavailable_without_network"]
