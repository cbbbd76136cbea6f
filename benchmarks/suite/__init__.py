"""The benchmark's pieces, imported by the scripts in `benchmarks/` (run from the repository
root: `python benchmarks/bench.py`, which puts `benchmarks/` on the path). Nothing in
`multinode`, `temporal_workers` or the CLI may import them."""
