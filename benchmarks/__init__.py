"""Benchmarks: speed of the models, the face detectors and the HTTP service, measured in one run as ratios.

``python -m benchmarks`` (or ``make bench``) runs everything and writes ``benchmarks/history/*.json`` and
``docs/benchmarks.md``. Timings never appear in tests; tests check correctness, these check speed.
"""
