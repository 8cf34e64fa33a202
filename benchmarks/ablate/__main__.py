"""`python -m benchmarks.ablate`: see benchmarks/ablate/cli.py."""

import sys

from .cli import main

sys.exit(main())
