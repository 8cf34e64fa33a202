"""`python -m benchmarks.vtab`: see benchmarks/vtab/cli.py."""

import sys

from .cli import main

sys.exit(main())
