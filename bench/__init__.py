"""Benchmarks: each module prints its figures as ratios against a baseline measured in the same run.

Run them all with ``python -m bench`` (each in its own process), or one with ``python -m bench.<module>``.
"""
