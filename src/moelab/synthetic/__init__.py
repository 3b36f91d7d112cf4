"""Synthetic routing traces in the trace format: power-law sampler, loads, assignment, drift,
scenarios."""
