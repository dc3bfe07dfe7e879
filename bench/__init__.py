"""Benchmarks (not tests: see README.md). A package so that tests can run a benchmark's
scenario in small (tests/test_bench_smoke.py) and mypy names each file once."""
