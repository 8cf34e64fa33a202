"""The GLUE suite (`python -m benchmarks.glue`): RoBERTa on the eight GLUE tasks.

cli.py (flags, light), recipes.py (every value cited), data.py (tasks, their pinned sources and expected counts,
tokenisation, metrics), shape.py (the report's shape), plan.py (the plan, one run, the dry run).
"""
