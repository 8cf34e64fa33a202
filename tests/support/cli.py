"""Running a command line in a fresh interpreter to see whether a bad flag fails before heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).parents[1]


HEAVY = ("torch", "timm", "transformers", "gradio", "peft", "datasets")


PROBE = """
import json, sys
from importlib import import_module
module = import_module({module!r})
try:
    module.main({argv!r})
    code = 0
except SystemExit as done:
    code = done.code
print(json.dumps({{"code": code, "heavy": [m for m in {heavy!r} if m in sys.modules]}}), file=sys.stderr)
"""


def bad_flag(module: str, argv: list[str]) -> tuple[int, list[str], str]:
    """(exit code, heavy modules loaded, the error line) of `module.main(argv)` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(module=module, argv=argv, heavy=HEAVY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    *lines, last = done.stderr.strip().splitlines()
    found = json.loads(last)
    return found["code"], found["heavy"], lines[-1]

