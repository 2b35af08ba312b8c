"""Tests of the benchmark harness's pure parts (bench/report.py): no timing, no servers."""
