"""The one pipeline every suite is a plan over: plain-data catalogs (methods, options), recipes with their
sources, flags, the method registry, the training loop on Accelerate, runs and their result files, reports.

A suite (benchmarks.vtab, .glue, .llm, .ablate) holds only its data tables, its plan and its report shape;
`docs/ARCHITECTURE.md` ("Benchmarks") draws the data flow: suite -> plan -> jobs -> loop -> results -> report.
"""
