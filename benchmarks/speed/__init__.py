"""Speed and memory of every method on the same targets (`python -m benchmarks.speed`): cli.py (flags, the table),
timing.py (the cases, the measurements, ratios against references measured in the same run)."""
