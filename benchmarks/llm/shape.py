"""How the reasoning suite's report reads (core.report.Shape): plain data."""

from ..core.catalog import descriptions
from ..core.report import Shape
from .peft_board import board
from .published import ROWS
from .recipes import TASK_TESTS
from .tasks import TASKS

TASK_TITLES = {name: task.title for name, task in TASKS.items()}
TEST_TITLES = {test.name: test.title for task in TASKS.values() for test in task.tests}

SHAPE = Shape("llm", "Reasoning results", tuple(t for tests in TASK_TESTS.values() for t in tests),
              "Test accuracy (%) of the generated answers", "accuracy", None, descriptions("causal"),
              params_note="Params: trainable (adapter) parameters; a causal LM has no classifier head. Each method "
                          "runs at its recipe in benchmarks/llm/recipes.py (published values, each cited; the smoke "
                          "suite shrinks them: config.recipe of each result says which ran).",
              published=ROWS, per_test=True, speed=True, titles={**TASK_TITLES, **TEST_TITLES},
              task_sections={"metamathqa": board})
