"""Runnable benchmarks: each prints ratios against a baseline measured in the same run.

`make bench` runs them all (`python -m benchmarks.run`) and writes `benchmarks/results.json`.
"""
