"""Benchmarks: one script per question, JSON + markdown (+ plot) out (see bench/README.md)."""
