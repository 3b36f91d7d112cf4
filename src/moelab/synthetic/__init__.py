"""Synthetic routing traces in the trace format: power-law sampler, loads, assignment, drift,
scenarios."""

# How tokens pair with experts within an iteration (moelab.synthetic.assign). Here, not there, so that checking a
# scenario's config does not import numba: the workflow checks the config at every job start.
PAIRINGS = ("blocked", "shuffled")
