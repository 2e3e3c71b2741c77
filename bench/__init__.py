"""`make bench`: speed and memory measured as paired ratios (see ../shared/spec/benchmarks.md)."""
