"""How the GLUE suite's report reads (core.report.Shape): plain data."""

from ..core.catalog import descriptions
from ..core.report import Shape
from .recipes import GLUE_TASKS

SHAPE = Shape("glue", "GLUE results", GLUE_TASKS, "GLUE validation score (%)", "GLUE score", "selection score",
              descriptions("text"), metric_in_score=True, notes=(
                  "GLUE has no public test labels: the reported score is on the validation set (MNLI matched). With "
                  "one lr (a published recipe) it is the best epoch's, as the papers report; a sweep holds out a "
                  "seeded slice of train, chooses lr and epoch on it, and reports validation at that choice.",))
