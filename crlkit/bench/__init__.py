"""Benchmarks behind `crlkit bench ...`: speed and memory are measured here, never in tests.

`learner.py`: compile time, step time, FLOP rate against the measured matmul peak, and peak memory
of the CRL update across depths (each depth in a fresh subprocess).
"""
