"""pihub's benchmark suite (issue 6): ``python -m benchmarks`` (see docs/PERFORMANCE.md)."""
