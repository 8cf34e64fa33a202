"""Gradio demo: one base model, a NEAT and a LoRA adapter, their top-5 predictions side by side.

    python -m demo.app [--results results/smoke] [--text-results results/glue] [--port 7860]

By default it loads the adapters the offline smoke suite saved (`make bench`) and, for text, those
`python -m benchmarks.glue --save-adapters ...` saved; any adapter folder or Hub id can be entered in the page
(demo.ui builds it). The flags are checked before gradio and torch load, so a bad one fails at once.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo.app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", help="vtab smoke-suite results (image adapters; default results/smoke)")
    parser.add_argument("--text-results", help="benchmarks.glue results (text adapters; default results/glue)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from .models import GLUE_RESULTS, SMOKE_RESULTS   # gradio and torch load only after the flags are valid
    from .ui import EXAMPLES, build_app

    build_app(args.results or SMOKE_RESULTS, args.text_results or GLUE_RESULTS).launch(
        server_name=args.host, server_port=args.port, allowed_paths=[str(EXAMPLES)], max_file_size="200mb")


if __name__ == "__main__":
    sys.exit(main())
