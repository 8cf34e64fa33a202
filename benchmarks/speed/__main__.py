"""`python -m benchmarks.speed`: see benchmarks/speed/cli.py."""

import sys

from .cli import main

sys.exit(main())
