"""MoE layer kernels and their benchmark.

Kept importable with numpy, pyarrow and torch alone (no polars, no snakemake), so that
``python -m moelab.kernels.standalone`` runs on a GPU machine that lacks the rest of our environment."""
