"""Benchmarks of papers-bot against loopback fakes; `python -m bench` runs them all."""
