"""Benchmarks, scoring protocols, the run store and reports.

A benchmark is one file in ``medlens.bench.benchmarks`` registered in ``BENCHMARKS``; a scoring
protocol is a named, versioned rule set registered in ``PROTOCOLS``.
"""
