"""Benchmarks for the design targets in DESIGN.md ("measured in benchmarks, not timed tests")."""
