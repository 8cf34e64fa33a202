"""`python -m benchmarks.glue`: see benchmarks/glue/cli.py."""

import sys

from .cli import main

sys.exit(main())
