"""Measurement: benchmarks, cgroups for memory sizes, cost and the report."""
