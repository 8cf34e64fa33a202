"""Running a command line in a fresh interpreter to see whether a bad flag fails before heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).parents[2]   # the repository


HEAVY = ("torch", "timm", "transformers", "gradio", "peft", "datasets")


PROBE = """
import json, runpy, sys
sys.argv = [{module!r}, *{argv!r}]
try:
    runpy.run_module({module!r}, run_name="__main__", alter_sys=True)   # as `python -m MODULE ARGV` runs it
    code = 0
except SystemExit as done:
    code = done.code
print(json.dumps({{"code": code, "heavy": [m for m in {heavy!r} if m in sys.modules]}}), file=sys.stderr)
"""


def bad_flag(module: str, argv: list[str]) -> tuple[int, list[str], str]:
    """(exit code, heavy modules loaded, the error line) of `python -m module argv` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(module=module, argv=argv, heavy=HEAVY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    *lines, last = done.stderr.strip().splitlines()
    found = json.loads(last)
    return found["code"], found["heavy"], lines[-1]

