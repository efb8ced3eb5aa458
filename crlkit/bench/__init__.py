"""Benchmarks behind `crlkit bench ...`: speed and memory are measured here, never in tests.

- `learner.py`: compile time, step time, FLOP rate against the measured matmul peak, and peak
  memory of the CRL update across depths (each depth in a fresh subprocess).
- `env.py`: env and physics steps/s of one env on one backend, against single-thread MuJoCo C.
- `plan.py`: memory and FLOPs of a planned online run, from the compiled epoch (no allocation).
"""
