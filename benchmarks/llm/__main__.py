"""`python -m benchmarks.llm`: see benchmarks/llm/cli.py."""

import sys

from .cli import main

sys.exit(main())
