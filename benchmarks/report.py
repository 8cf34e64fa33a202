"""`python -m benchmarks.report RESULTS_DIR`: a suite's report rebuilt from its result files (report.md,
summary.json and the plot), the same files the suite writes when it finishes.

The results say which suite wrote them (their "suite"; an ablation's also their config.study); each suite's shape
(benchmarks/<suite>/shape.py, plain data) decides how its tables read, core.report writes them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def write_report(out: str) -> tuple[Path, Path, str]:
    """The report of the results under `out`, in the shape of the suite that wrote them."""
    from .ablate import report as ablate_report
    from .core.report import write_report as write
    from .core.results import load_results
    from .glue.shape import SHAPE as GLUE
    from .llm.shape import SHAPE as LLM
    from .vtab.shape import SHAPE as VTAB

    results = load_results(out)
    if not results:
        raise FileNotFoundError(f"No results in {Path(out) / 'runs'}; run a suite (python -m benchmarks.vtab, .glue, "
                                f".llm or .ablate) with --out {out} first.")
    studies = {(r.get("config") or {}).get("study") for r in results} - {None}
    if len(studies) == 1:
        return ablate_report.write_report(out, studies.pop(), results)
    suites = {r["suite"] for r in results}
    if len(suites) > 1:
        raise FileNotFoundError(f"{out} holds results of several suites ({', '.join(sorted(suites))}); give each "
                                "suite its own --out folder.")
    return write(out, {"vtab": VTAB, "glue": GLUE, "llm": LLM}[suites.pop()], results)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results_dir", help="the --out folder of benchmarks.vtab, .glue, .llm or .ablate")
    args = p.parse_args(argv)
    try:
        table, image, text = write_report(args.results_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text)
    print(f"wrote {table} and {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
