"""The image-classification suite (`python -m benchmarks.vtab`): the NEAT paper's eight datasets on ViT-B/16, and
the offline smoke suite on sklearn's digits.

cli.py (flags, light), recipes.py (recipes and suites, every value cited), data.py (datasets, their pinned sources
and expected counts, transforms), published.py (published rows), shape.py (the report's shape), smoke.py (the smoke
suite's pre-trained backbone), plan.py (the plan, one run, the dry run).
"""
