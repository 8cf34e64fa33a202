"""The ablation suite (`python -m benchmarks.ablate --study depth|activation|targets|scale`): the paper's sensitivity
studies and the scale study, on the image and GLUE suites' pieces.

cli.py (flags, light), studies.py (studies, variants, lr rules and the dry run's numbers, every value cited),
plan.py (the plans as image / GLUE jobs, the dry run), report.py (the study tables and plots).
"""
