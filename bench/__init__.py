"""What `make bench` measures (bench/RESULTS.md), `make bench-scale` (bench/SCALE.md) and
`make bench-llm-build` (bench/LLM_BUILD.md). Run from the repository root as modules:
`python -m bench.run`, `python -m bench.stores`, `python -m bench.scale`. Finished studies are in
studies/."""
