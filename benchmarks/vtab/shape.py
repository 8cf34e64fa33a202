"""How the image-classification suite's report reads (core.report.Shape): plain data."""

from ..core.catalog import descriptions
from ..core.report import Shape
from .published import ORDER, ROWS
from .recipes import IMAGE_DATASETS

SHAPE = Shape("vtab", "Image classification results", IMAGE_DATASETS, "Top-1 test accuracy (%)", "top-1 accuracy",
              "validation accuracy", descriptions("image"), published=ROWS, published_average=ORDER)
